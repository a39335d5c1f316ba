"""Closed-loop simulation: turns from a dataset; on MovieLens 100K, ALS vs LightFM behind a
50/50 canary produce the A/B report of notebook 08, ALS vs ALS (A/A) is not significant, and a
service splitting 70/30 while the analysis expects 50/50 is flagged (issue 6)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import pytest

from shrek.data.dataset import Dataset
from shrek.monitoring.ab import ab_report
from shrek.monitoring.closed_loop import _turn_lines, plan_turns, run_closed_loop
from shrek.monitoring.logs import read_topic
from shrek.monitoring.online import join_outcomes, parse_log
from shrek.stream.broker import ensure_topic
from shrek.stream.replay import WatchModel

ROOT = Path(__file__).resolve().parents[2]
CUT = "1998-03-01"  # MovieLens 100K: train before, simulate after
PARAMS = {
    "als": {"factors": 32, "iterations": 10, "regularization": 0.05, "num_threads": 1},
    "lightfm": {"no_components": 32, "epochs": 10},
}
N_USERS = 300


def ratings(rows):
    return pd.DataFrame(
        [(u, m, r, pd.Timestamp(t)) for u, m, r, t in rows],
        columns=["user_id", "movie_id", "rating", "timestamp"],
    )


def test_turns_start_at_each_users_first_event_and_keep_the_horizon():
    frame = ratings(
        [
            (1, "a+1", 5, "2026-01-01 10:00"),  # before start: training
            (1, "b+2", 4, "2026-01-02 10:00"),
            (1, "c+3", 3, "2026-01-12 10:00"),  # beyond the 7-day horizon
            (2, "a+1", 1, "2026-01-03 09:00"),
            (2, "d+4", 5, "2026-01-03 12:00"),
        ]
    )

    turns = plan_turns(
        frame, start="2026-01-02", horizon="7D", watch_model=WatchModel(1.0, 10, seed=0)
    )

    assert [t.user_id for t in turns] == [1, 2]
    first = turns[0]
    assert first.events["offset"].iloc[0] == pd.Timedelta(0)
    assert first.events["offset"].is_monotonic_increasing
    assert first.events["request"].iloc[-1] == "GET /rate/b+2=4"
    assert first.events["kind"].tolist().count(1) == 1  # c+3 is past the horizon
    minutes = int((first.events["kind"] == 0).sum())  # simulated: minutes 0 .. n - 1
    assert minutes >= 1
    assert first.time == pd.Timestamp("2026-01-02 10:00") - pd.Timedelta(minutes=minutes)


def test_turn_lines_are_stream_lines_stamped_from_the_answer_time():
    frame = ratings([(7, "a+1", 5, "2026-01-02 10:00"), (7, "b+2", 2, "2026-01-02 11:00")])
    (turn,) = plan_turns(frame, start="2026-01-01", watch_model=WatchModel(0.0, seed=0))

    lines = _turn_lines(turn, pd.Timestamp("2026-03-01 18:00:00.123").to_pydatetime(), 60.0)

    assert [line.decode() for line in lines] == [
        "2026-03-01T18:00:00.123,7,GET /rate/a+1=5",
        "2026-03-01T18:01:00.123,7,GET /rate/b+2=2",
    ]
    assert len(parse_log(lines).events) == 2


def test_bad_horizon_and_max_users_are_rejected():
    frame = ratings([(7, "a+1", 5, "2026-01-02 10:00")])

    with pytest.raises(ValueError, match=r"horizon must be a positive duration like '7D', got"):
        plan_turns(frame, start="2026-01-01", horizon="0s")
    with pytest.raises(ValueError, match=r"max_users must be ≥ 1 or None, got 0"):
        plan_turns(frame, start="2026-01-01", max_users=0)


# --- MovieLens 100K through a real service, broker and notebook -----------------------------


@pytest.fixture(scope="module")
def movielens_models(ml100k, stack, tmp_path_factory):
    """ALS and LightFM fitted on the ratings before CUT, exported to the store."""
    folder = tmp_path_factory.mktemp("ml100k-run")
    training = Dataset.from_tables(
        ratings=ml100k.ratings[ml100k.ratings["timestamp"] < CUT],
        users=ml100k.users,
        movies=ml100k.movies,
        watch_log=ml100k.watch_log,
        source={"kind": "movielens-100k", "window": f"before {CUT}"},
    )
    run_dir = stack.write_run(folder / "run-ml100k", training, PARAMS)
    return {"exported": stack.export(run_dir), "run_dir": run_dir}


def closed_loop(
    ml100k,
    broker,
    serve,
    stack,
    models,
    *,
    candidate: str,
    topic: str,
    share: float = 0.5,
    n_users: int = N_USERS,
):
    """Serve ALS vs ``candidate`` on ``share`` of users, run the closed loop over ``n_users``;
    the topic's log and the stats."""
    ensure_topic(broker.settings(), topic, partitions=3)
    env = stack.canary_env(
        models["exported"], broker=broker, topic=topic, share=share, candidate=candidate
    )
    served = serve("bentos.canary.service:ShrekCanary", env)
    turns = plan_turns(
        ml100k.ratings,
        start=CUT,
        horizon="7D",
        max_users=n_users,
        watch_model=WatchModel(watch_fraction=1.0, runtime_minutes=10, seed=0),
    )
    stats = run_closed_loop(turns, service_url=served.url, settings=broker.settings(), topic=topic)
    deadline = time.monotonic() + 30
    while True:
        log = read_topic(broker.settings(), topic)
        if len(log.requests) >= stats.answered or time.monotonic() > deadline:
            return log, stats


@pytest.mark.realdata
def test_als_vs_lightfm_closed_loop_produces_the_ab_report(
    ml100k, broker, serve, stack, movielens_models, tmp_path
):
    import papermill

    log, stats = closed_loop(
        ml100k, broker, serve, stack, movielens_models, candidate="lightfm", topic="ab-ml100k"
    )

    papermill.execute_notebook(
        str(ROOT / "notebooks" / "08_ab_test.ipynb"),
        str(tmp_path / "08_ab_test.ipynb"),
        parameters={
            "BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            "TOPIC": "ab-ml100k",
            "WINDOW": "1D",
            "REFERENCE_DIR": str(movielens_models["run_dir"] / "data"),
            "OUTPUT_DIR": str(tmp_path),
        },
        kernel_name="python3",
        progress_bar=False,
        cwd=str(tmp_path),
    )
    document = json.loads((tmp_path / "ab_report.json").read_text())
    report = document["ab"]

    assert stats.turns == N_USERS and stats.failed == 0
    assert report["control"]["requests"] + report["treatment"]["requests"] == N_USERS
    assert not report["srm"]  # a salted hash splits users 50/50
    assert report["verdict"]
    versions = {row["model_version"] for row in document["online"]}
    assert versions == {e.tag for e in movielens_models["exported"].values()}
    assert all(0 < row["watch_through"] < 1 for row in document["online"])
    assert document["drift"]["n_current"] > 0
    print(f"\nclosed loop ALS vs LightFM on MovieLens 100K ({stats.events} events):")
    print(json.dumps(document["online"], indent=1))
    print(report["verdict"])


@pytest.mark.realdata
def test_aa_closed_loop_is_not_declared_significant(ml100k, broker, serve, stack, movielens_models):
    log, stats = closed_loop(
        ml100k, broker, serve, stack, movielens_models, candidate="als", topic="aa-ml100k"
    )

    report = ab_report(join_outcomes(log.requests, log.events, window="1D"))

    assert report.control.requests + report.treatment.requests == stats.answered == N_USERS
    assert set(log.requests["model_version"]) == {movielens_models["exported"]["als"].tag}
    assert not report.srm
    assert not report.significant
    print(f"\nA/A closed loop: {report.verdict}")


@pytest.mark.realdata
def test_a_70_30_closed_loop_analysed_as_50_50_is_a_sample_ratio_mismatch(
    ml100k, broker, serve, stack, movielens_models
):
    log, stats = closed_loop(
        ml100k,
        broker,
        serve,
        stack,
        movielens_models,
        candidate="als",
        topic="srm-ml100k",
        share=0.3,
        n_users=120,
    )

    report = ab_report(join_outcomes(log.requests, log.events, window="1D"))

    assert report.control.requests + report.treatment.requests == stats.answered == 120
    assert report.observed_treatment_share < 0.4
    assert report.srm and not report.significant
    assert report.verdict.startswith("SAMPLE RATIO MISMATCH")
