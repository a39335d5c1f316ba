"""Scheduled runs: the cron schedule, data cut-offs and failed runs (issue 7)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from lifecycle.helpers import START, small_config

from shrek.lifecycle.promotion import PromotionPolicy
from shrek.lifecycle.registry import Registry
from shrek.lifecycle.rollback import check_consistency
from shrek.lifecycle.schedule import (
    ScheduleSettings,
    fire_times,
    run_cycle,
    snapshot_movielens,
    stage_pipeline,
)


def test_fire_times_follow_the_cron_expression():
    times = fire_times("0 3 * * MON", start=datetime(2024, 1, 3, tzinfo=UTC), n=3)
    assert times == [datetime(2024, 1, d, 3, tzinfo=UTC) for d in (8, 15, 22)]


def test_a_bad_cron_expression_names_the_expected_form():
    with pytest.raises(ValueError, match=r"cron must be a crontab expression .* got 'every day'"):
        fire_times("every day", start=START, n=1)


def test_a_snapshot_holds_only_the_ratings_collected_until_its_time(source_dir, tmp_path):
    until = START + timedelta(weeks=3)
    folder = snapshot_movielens(source_dir, tmp_path / "snap", until=until)
    stamps = [int(line.split("\t")[3]) for line in (folder / "ml-100k/u.data").open()]
    assert stamps and max(stamps) <= until.timestamp()
    assert (folder / "ml-100k/u.user").read_text() == (source_dir / "ml-100k/u.user").read_text()


def test_a_failed_run_leaves_production_untouched_and_says_why(source_dir, tmp_path, bentoml_home):
    settings = ScheduleSettings(small_config(), tmp_path / "state", source_dir)
    first = run_cycle(settings, now=START + timedelta(weeks=6), pipeline=stage_pipeline)
    assert (first.status, first.decision.status) == ("succeeded", "production")
    registry = Registry(settings.state_dir)
    files = sorted(p.read_bytes() for p in (settings.state_dir / "serving").iterdir())

    def broken_pipeline(config, *, run_id):
        raise RuntimeError("notebook 03_train_als failed: out of memory")

    failed = run_cycle(settings, now=START + timedelta(weeks=7), pipeline=broken_pipeline)

    assert failed.status == "failed"
    assert registry.production().version == first.version
    assert sorted(p.read_bytes() for p in (settings.state_dir / "serving").iterdir()) == files
    assert check_consistency(registry) == []
    runs = registry.runs().set_index("run_id")
    assert runs.loc[failed.run_id, "error"] == (
        "RuntimeError: notebook 03_train_als failed: out of memory"
    )
    assert registry.decisions()["action"].iloc[-1] == "run_failed"


def test_each_run_has_its_own_folder_and_data_version(source_dir, tmp_path, bentoml_home):
    settings = ScheduleSettings(
        small_config(), tmp_path / "state", source_dir, policy=PromotionPolicy(margin=0.5)
    )
    results = [
        run_cycle(settings, now=START + timedelta(weeks=w), pipeline=stage_pipeline) for w in (5, 6)
    ]
    registry = Registry(settings.state_dir)
    runs = registry.runs().set_index("run_id")
    assert [r.status for r in results] == ["succeeded", "succeeded"]
    assert runs["run_dir"].nunique() == 2 and runs["data_version"].nunique() == 2
    # margin 0.5 cannot be beaten: the second model is rejected with the numbers in the reason
    second = registry.get(results[1].version)
    assert second.status == "retired"
    assert results[1].decision.reason.startswith("rejected: nDCG@10")
