"""Scheduled runs: the cron schedule, data cut-offs, the collector's data, failed and crashed
runs, the canary's start and the command line (issue 7)."""

from __future__ import annotations

import shutil
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from lifecycle.helpers import START, small_config

from shrek.data import load_movielens_100k
from shrek.data.dataset import Dataset
from shrek.lifecycle.cli import promote_command, schedule_command
from shrek.lifecycle.promotion import PromotionPolicy, canary_started, start_canary
from shrek.lifecycle.registry import Registry
from shrek.lifecycle.rollback import apply_deployment, check_consistency
from shrek.lifecycle.schedule import (
    ScheduleSettings,
    fire_times,
    run_cycle,
    snapshot_collected,
    snapshot_movielens,
    stage_pipeline,
)
from shrek.monitoring.ab import ab_test


def broken_pipeline(config, *, run_id):
    raise RuntimeError("notebook 03_train_als failed: out of memory")


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


def test_a_canary_records_when_it_started_on_the_runs_clock(source_dir, tmp_path, bentoml_home):
    settings = ScheduleSettings(
        small_config(), tmp_path / "state", source_dir, policy=PromotionPolicy(margin=0.0)
    )
    first = run_cycle(settings, now=START + timedelta(weeks=6), pipeline=stage_pipeline)
    first_run = Path(Registry(settings.state_dir).runs()["run_dir"].iloc[0])

    def same_model(config, *, run_id):  # the first run's model again: it ties, margin 0 passes
        return shutil.copytree(first_run, Path(config.reports_dir) / "runs" / run_id)

    now = START + timedelta(weeks=7)
    second = run_cycle(settings, now=now, pipeline=same_model)

    registry = Registry(settings.state_dir)
    assert (first.decision.status, second.decision.status) == ("production", "canary")
    assert now < canary_started(registry) < now + timedelta(minutes=10)
    assert second.decision.details["canary_started_at"] == canary_started(registry).isoformat()
    assert check_consistency(registry) == []


def test_the_next_run_rewrites_the_serving_files_a_crash_left_behind(source_dir, tmp_path):
    """Issue 7: a run killed after its decision was committed, before the serving files."""
    registry = Registry(tmp_path / "state")
    for version in ("shrek-als:a", "shrek-als:b"):
        registry.register(version, model="als", ndcg=0.1)
    registry.transition(
        [("shrek-als:a", "production")],
        action="promote",
        reason="first",
        deployment=("shrek-als:a", "shrek-als:a", 0.0),
    )
    apply_deployment(registry)
    registry.transition(
        [("shrek-als:b", "canary")],
        action="canary",
        reason="killed before its serving files were written",
        deployment=("shrek-als:a", "shrek-als:b", 0.1),
    )
    assert check_consistency(registry) != []

    settings = ScheduleSettings(small_config(), registry.folder, source_dir)
    result = run_cycle(settings, now=START + timedelta(weeks=6), pipeline=broken_pipeline)

    assert result.status == "failed"
    assert check_consistency(registry) == []
    assert registry.canary().version == "shrek-als:b"


def test_a_weekly_run_settles_a_seven_day_canary_that_started_after_training(source_dir, tmp_path):
    """The canary took traffic 20 minutes after its run's scheduled time; the next weekly run,
    exactly 7 days after that time, settles it."""
    registry = Registry(tmp_path / "state")
    made_at = START + timedelta(weeks=5)
    registry.register("shrek-als:a", model="als", ndcg=0.1)
    registry.register("shrek-als:b", model="als", ndcg=0.2, cutoff=made_at.isoformat())
    registry.transition(
        [("shrek-als:a", "production")],
        action="promote",
        reason="first",
        deployment=("shrek-als:a", "shrek-als:a", 0.0),
    )
    policy = PromotionPolicy(canary_share=0.5, canary_days=7)
    started_at = made_at + timedelta(minutes=20)
    start_canary(registry, "shrek-als:b", policy=policy, reason="t", started_at=started_at)
    seen = []

    def ab_source(registry, now):
        seen.append(canary_started(registry))
        return ab_test([True, False] * 5000, [True, False] * 5000, n_boot=100)

    settings = ScheduleSettings(small_config(), registry.folder, source_dir, policy=policy)
    result = run_cycle(
        settings, now=made_at + timedelta(weeks=1), pipeline=broken_pipeline, ab_source=ab_source
    )

    assert seen == [started_at]
    assert result.settled is not None and result.settled.action == "promote"
    assert registry.production().version == "shrek-als:b"


# --- a deployment trains on what the collector collected ---------------------------------------


@pytest.fixture(scope="module")
def collector_folder(source_dir, tmp_path_factory):
    """A real collector folder: the small MovieLens folder replayed through the embedded
    broker and collected back (``dataset/`` saved by ``collect``)."""
    from shrek.stream.job import collect_via_stream
    from shrek.stream.replay import WatchModel

    folder = tmp_path_factory.mktemp("collector")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        source = load_movielens_100k(source_dir, download=False)
    collect_via_stream(
        source,
        folder,
        topic="lifecycle-collected",
        watch_model=WatchModel(watch_fraction=0.0),
        show_progress=False,
    )
    return folder


def collected_until(folder: Path, until: datetime) -> pd.DataFrame:
    ratings = Dataset.load(folder / "dataset").ratings
    return ratings[ratings["timestamp"] <= until.replace(tzinfo=None)]


def sorted_ratings(ratings: pd.DataFrame) -> pd.DataFrame:
    columns = ["user_id", "movie_id", "rating", "timestamp"]
    frame = ratings[columns].astype({"movie_id": str})
    return frame.sort_values(["user_id", "movie_id"], ignore_index=True)


def test_a_collector_snapshot_holds_the_collected_ratings_until_its_time(
    collector_folder, tmp_path
):
    until = START + timedelta(weeks=3)

    snapshot = snapshot_collected(collector_folder, tmp_path / "snap", until=until)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        read = load_movielens_100k(snapshot, download=False)
    expected = collected_until(collector_folder, until)
    assert 0 < len(expected) < len(Dataset.load(collector_folder / "dataset").ratings)
    pd.testing.assert_frame_equal(sorted_ratings(read.ratings), sorted_ratings(expected))
    collected = Dataset.load(collector_folder / "dataset")
    assert set(read.movies["movie_id"]) == set(collected.movies["movie_id"])
    assert read.users.equals(collected.users.sort_values("user_id", ignore_index=True))


def test_a_folder_without_a_dataset_names_what_it_needs(tmp_path):
    with pytest.raises(Exception, match=r"collector_folder must hold the dataset `shrek collect`"):
        snapshot_collected(tmp_path, tmp_path / "snap", until=START)


def test_a_scheduled_run_trains_on_the_collectors_data_up_to_its_time(
    collector_folder, tmp_path, bentoml_home
):
    """Regression (issue 7): live runs trained on all of MovieLens, not on what was collected."""
    settings = ScheduleSettings(
        small_config(), tmp_path / "state", collector_folder=collector_folder
    )
    now = START + timedelta(weeks=5)

    result = run_cycle(settings, now=now, pipeline=stage_pipeline)

    assert result.status == "succeeded", result.error
    run = Registry(settings.state_dir).runs().iloc[0]
    trained_on = Dataset.load(Path(run["run_dir"]) / "data")
    assert len(trained_on.ratings) == len(collected_until(collector_folder, now))
    assert trained_on.version.source["kind"] == "movielens-100k"  # read as files, no replay
    assert run["data_version"] == trained_on.version.hash


def test_settings_take_exactly_one_data_source(source_dir, tmp_path):
    with pytest.raises(ValueError, match=r"^exactly one of source_dir .* and collector_folder"):
        ScheduleSettings(small_config(), tmp_path, source_dir, collector_folder=tmp_path)
    with pytest.raises(ValueError) as err:
        ScheduleSettings(small_config(), tmp_path, source_dir, training_data="everything")
    assert str(err.value) == (
        "training_data must be one of temporal, all, stratified, got 'everything'"
    )


# --- the command line --------------------------------------------------------------------------


def test_schedule_refuses_to_start_without_a_request_log_to_settle_canaries(
    source_dir, tmp_path, monkeypatch
):
    monkeypatch.delenv("SHREK_KAFKA_BOOTSTRAP_SERVERS", raising=False)
    command = ["--once", "--state-dir", str(tmp_path), "--data-dir", str(source_dir)]

    result = CliRunner().invoke(schedule_command, command)

    assert result.exit_code == 2
    assert "a canary (--canary-days 7) is settled from the service's request log" in result.output
    assert "SHREK_KAFKA_BOOTSTRAP_SERVERS" in result.output


def test_schedule_reads_the_kafka_servers_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SHREK_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9")
    command = ["--once", "--state-dir", str(tmp_path / "state")]
    command += ["--collector-folder", str(tmp_path / "no-collector")]

    result = CliRunner().invoke(schedule_command, command)

    assert result.exit_code == 1, result.output  # it ran, and the run failed on the folder
    assert "failed ShrekError: collector_folder must hold the dataset" in result.output


def test_promote_needs_a_request_log(tmp_path, monkeypatch):
    monkeypatch.delenv("SHREK_KAFKA_BOOTSTRAP_SERVERS", raising=False)

    result = CliRunner().invoke(promote_command, ["--state-dir", str(tmp_path)])

    assert result.exit_code == 2
    assert "the canary is settled from the service's request log: pass --log-file" in result.output
