"""Weekly retraining cycles over MovieLens 100K, as the scheduler would run them.

The simulation walks a weekly cron schedule (APScheduler computes the fire times from a start
date, so the clock is the data's, not the wall's) and calls the scheduled job at each tick. The
A/B verdict of a canary comes from a replay of the canary week: each user who rated a movie in
that week asks the service's code (:class:`~shrek.serve.model.ServedModel`) for 20 movies just
before their first rating, on the variant the canary router gives them, and a hit is a movie of
the list they rated within the week. This is how Shrek exercises the loop without live traffic;
a deployment reads the real request log instead (:func:`~shrek.lifecycle.schedule.log_ab_source`).

A replayed week of MovieLens 100K has 50–130 users, so the simulation's power analysis looks for
a large effect (``mde`` 0.3, about 35 users a side): with the default 0.02 every canary would be
held as underpowered.

The default scenario shows the three outcomes:

1. a first model (small ALS) becomes production;
2. a better one (tuned ALS) beats it offline, serves a canary and is promoted by the A/B verdict;
3. a worse one, trained on a truncated 7-day window of data, is rejected by the offline gate.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from shrek.config import RunConfig
from shrek.lifecycle.promotion import PromotionPolicy, canary_started
from shrek.lifecycle.registry import Deployment, Registry
from shrek.lifecycle.rollback import canary_config_path
from shrek.lifecycle.schedule import (
    ABSource,
    CycleResult,
    Pipeline,
    ScheduleSettings,
    fire_times,
    run_cycle,
    stage_pipeline,
)

if TYPE_CHECKING:
    from shrek.monitoring.ab import ABReport

logger = logging.getLogger(__name__)

WEEKLY = "0 0 * * MON"
BASELINE_ALS: dict[str, Any] = {"factors": 8, "iterations": 3, "regularization": 0.1}
TUNED_ALS: dict[str, Any] = {
    "factors": 32,
    "iterations": 8,
    "regularization": 20.0,
    "alpha": 1.0,
    "weighting": "bm25",
}


@dataclass(frozen=True)
class SimulatedWeek:
    """The settings of one simulated week's run.

    Parameters
    ----------
    label : str
        What the week shows.
    params : dict, optional
        ALS parameters of the week's run (as if ``shrek tune`` changed the config).
    window_days : float, optional
        Train on the last ``window_days`` of ratings only (a broken collection).
    """

    label: str
    params: dict[str, Any] | None = None
    window_days: float | None = None


DEFAULT_WEEKS: tuple[SimulatedWeek, ...] = (
    SimulatedWeek("first production model", params=BASELINE_ALS),
    SimulatedWeek("better candidate: tuned parameters", params=TUNED_ALS),
    SimulatedWeek("worse candidate: a truncated 7-day window", params=TUNED_ALS, window_days=7),
)


def simulation_config(*, n_boot: int = 100) -> RunConfig:
    """A small pipeline configuration: popularity and ALS on one thread, a short bootstrap."""
    config = RunConfig()
    # The weeks' snapshots are read as files: the simulation is about promotion, and the
    # stream path of a scheduled run is tested on its own (tests/lifecycle/test_schedule.py).
    config.data.source = "files"
    config.models = {"popularity": {}, "als": {**BASELINE_ALS, "num_threads": 1}}
    config.fairness.models = ["popularity", "als"]
    config.fairness.n_boot = n_boot
    return config


def simulate_weeks(
    source_dir: str | Path,
    state_dir: str | Path,
    *,
    start: datetime = datetime(1998, 1, 1, tzinfo=UTC),
    cron: str = WEEKLY,
    weeks: Sequence[SimulatedWeek] = DEFAULT_WEEKS,
    config: RunConfig | None = None,
    policy: PromotionPolicy | None = None,
    pipeline: Pipeline = stage_pipeline,
) -> list[CycleResult]:
    """Run one scheduled cycle per simulated week.

    Parameters
    ----------
    source_dir : str or Path
        The folder holding ``ml-100k/``.
    state_dir : str or Path
        The lifecycle folder (registry, serving files, runs, snapshots).
    start : datetime, default 1998-01-01 UTC
        The clock's start; the cycles run at the next ``len(weeks)`` ticks of ``cron``.
    cron : str, default "0 0 * * MON"
    weeks : sequence of SimulatedWeek, default :data:`DEFAULT_WEEKS`
    config : RunConfig, optional
        Defaults to :func:`simulation_config`.
    policy : PromotionPolicy, optional
        Defaults to a 50% canary for 7 days and an A/B ``mde`` of 0.3 (the replayed week gives
        few requests).
    pipeline : callable, default :func:`~shrek.lifecycle.schedule.stage_pipeline`
        Pass :func:`~shrek.lifecycle.schedule.papermill_pipeline` to run the notebooks.

    Returns
    -------
    list of CycleResult
        One per week; the registry in ``state_dir`` holds every decision.
    """
    config = config or simulation_config()
    policy = policy or PromotionPolicy(canary_share=0.5, canary_days=7, mde=0.3)
    ab_source = replay_ab_source(source_dir, policy=policy)
    results = []
    for week, now in zip(weeks, fire_times(cron, start=start, n=len(weeks)), strict=True):
        week_config = config.model_copy(deep=True)
        if week.params is not None:
            week_config.models["als"] = {**config.models.get("als", {}), **week.params}
        settings = ScheduleSettings(
            week_config,
            Path(state_dir),
            Path(source_dir),
            policy=policy,
            window_days=week.window_days,
        )
        result = run_cycle(
            settings,
            now=now,
            pipeline=pipeline,
            ab_source=ab_source,
            run_id=f"{now:%Y%m%dT%H%M%SZ}-week{len(results) + 1}",
        )
        logger.info("%s (%s): %s", now.date(), week.label, result.decision or result.error)
        results.append(result)
    return results


def replay_ab_source(source_dir: str | Path, *, policy: PromotionPolicy) -> ABSource:
    """An A/B source that replays the canary period's ratings (see the module docstring)."""
    cache: dict[str, pd.DataFrame] = {}

    def source(registry: Registry, now: datetime) -> ABReport | None:
        from shrek.data import load_movielens_100k
        from shrek.monitoring import ab, online

        if "ratings" not in cache:
            cache["ratings"] = load_movielens_100k(source_dir, download=False).ratings
        started, deployment = canary_started(registry), registry.deployment()
        if started is None or deployment is None:
            return None
        since = started.replace(tzinfo=None)
        ratings = cache["ratings"]
        period = ratings[
            (ratings["timestamp"] > since) & (ratings["timestamp"] <= now.replace(tzinfo=None))
        ]
        requests = replay_requests(registry, period, deployment_models=deployment)
        events = online.events_frame(
            (row.timestamp, row.user_id, row.movie_id, "watch", 0) for row in period.itertuples()
        )
        joined = online.join_outcomes(requests, events, window="7D")
        return ab.ab_report(
            joined,
            expected_treatment_share=deployment.share,
            alpha=policy.alpha,
            mde=policy.mde,
        )

    return source


def replay_requests(
    registry: Registry, period: pd.DataFrame, *, deployment_models: Deployment
) -> pd.DataFrame:
    """One request per user of ``period``, one second before their first rating in it.

    Parameters
    ----------
    registry : Registry
        Its serving files give the split the canary service follows.
    period : pandas.DataFrame
        ``[n_ratings, 4]`` ratings of the canary period.
    deployment_models : Deployment
        The canary deployment: the models each variant is answered by.

    Returns
    -------
    pandas.DataFrame
        ``[n_users, 7]`` in :func:`shrek.monitoring.online.requests_frame` form.
    """
    from shrek.monitoring import online
    from shrek.serve.canary import read_canary_config
    from shrek.serve.model import ServedModel

    split = read_canary_config(canary_config_path(registry, deployment_models))
    served = {
        "stable": ServedModel.from_store(deployment_models.stable),
        "candidate": ServedModel.from_store(deployment_models.candidate),
    }
    first = period.sort_values("timestamp").groupby("user_id", sort=True)["timestamp"].first()
    rows = []
    for user_id, at in first.items():
        variant = split.variant(int(user_id))
        answer = served[variant].recommend(int(user_id))
        rows.append(
            (
                at - pd.Timedelta(seconds=1),
                int(user_id),
                answer.movie_ids,
                200,
                0,
                variant,
                served[variant].model_version,
            )
        )
    return online.requests_frame(rows)
