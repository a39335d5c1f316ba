"""Scheduled retraining: each cron tick runs the pipeline on the data collected until then.

One scheduled run (:func:`run_cycle`)

1. marks runs left ``running`` by a dead process as failed and rewrites the serving files from
   the registry (so a crash never leaves them behind the registry);
2. settles a canary whose canary period (counted from the scheduled time of the run that made
   it) is over, from the online A/B report of the requests since it took traffic;
3. snapshots the ratings collected up to the run's time (``snapshots/<run_id>/collected``: a
   collector folder's dataset, or MovieLens 100K cut by timestamp in the simulation; see
   :mod:`shrek.lifecycle.snapshots`) and runs the pipeline on it into ``runs/<run_id>``; the
   snapshot's content hash is the run's data version;
4. exports the model to the BentoML store, registers it and lets the promotion gate decide.

A run that fails at any step is recorded as failed with the error; production and the serving
files are not touched. The times of the runs come from APScheduler's ``CronTrigger``.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

from shrek.config import RunConfig
from shrek.lifecycle.promotion import (
    Decision,
    PromotionPolicy,
    canary_started,
    gate_candidate,
    latest_temporal_test,
    model_cost,
    settle_canary,
)
from shrek.lifecycle.registry import Deployment, Registry
from shrek.lifecycle.rollback import apply_deployment
from shrek.lifecycle.snapshots import snapshot_collected, snapshot_movielens

if TYPE_CHECKING:
    from shrek.monitoring.ab import ABReport

logger = logging.getLogger(__name__)

Pipeline = Callable[..., Path]
ABSource = Callable[[Registry, datetime], "ABReport | None"]
MODELS: tuple[str, ...] = ("als", "lightfm")
TRAINING_DATA: tuple[str, ...] = ("temporal", "all", "stratified")


@dataclass
class ScheduleSettings:
    """What every scheduled run needs.

    Parameters
    ----------
    config : RunConfig
        The pipeline's settings; ``data.data_dir`` and ``reports_dir`` are set per run.
    state_dir : Path
        The lifecycle folder: ``registry.sqlite``, ``serving/``, ``runs/``, ``snapshots/``.
    source_dir : Path, optional
        A folder holding ``ml-100k/`` whose ratings are "collected" over time by their
        timestamps (the simulation).
    collector_folder : Path, optional
        A collector folder (``shrek collect --out``): each run trains on its ``dataset/`` cut
        at the run's time (a deployment). Exactly one of ``source_dir`` and
        ``collector_folder`` is given.
    model : {"als", "lightfm"}, default "als"
        The model that is retrained, exported and promoted.
    policy : PromotionPolicy
    training_data : {"temporal", "all", "stratified"}, default "temporal"
        What the exported model is fitted on (see :func:`shrek.serve.export.export_run`).
        ``temporal`` exports the model evaluated on the temporal split, so the gate compares
        held-out scores only.
    window_days : float, optional
        Keep only the last ``window_days`` of ratings (a truncated window); all by default.

    Raises
    ------
    ValueError
        Naming the field, the accepted values and the value received.
    """

    config: RunConfig
    state_dir: Path
    source_dir: Path | None = None
    model: Literal["als", "lightfm"] = "als"
    policy: PromotionPolicy = field(default_factory=PromotionPolicy)
    training_data: Literal["temporal", "all", "stratified"] = "temporal"
    window_days: float | None = None
    collector_folder: Path | None = None

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {', '.join(MODELS)}, got {self.model!r}")
        if self.training_data not in TRAINING_DATA:
            raise ValueError(
                f"training_data must be one of {', '.join(TRAINING_DATA)}, got "
                f"{self.training_data!r}"
            )
        if self.window_days is not None and self.window_days <= 0:
            raise ValueError(f"window_days must be > 0 or None, got {self.window_days!r}")
        if (self.source_dir is None) == (self.collector_folder is None):
            raise ValueError(
                "exactly one of source_dir (MovieLens files, the simulation) and "
                "collector_folder (a collector's dataset) must be given, got "
                f"source_dir={self.source_dir!r}, collector_folder={self.collector_folder!r}"
            )
        self.state_dir = Path(self.state_dir)
        self.source_dir = Path(self.source_dir) if self.source_dir is not None else None
        if self.collector_folder is not None:
            self.collector_folder = Path(self.collector_folder)

    def snapshot(self, into: Path, *, until: datetime, since: datetime | None = None) -> Path:
        """The ratings collected in ``(since, until]`` as an ``ml-100k/`` folder in ``into``."""
        if self.collector_folder is not None:
            return snapshot_collected(self.collector_folder, into, until=until, since=since)
        return snapshot_movielens(self.source_dir, into, until=until, since=since)


@dataclass(frozen=True)
class CycleResult:
    """The outcome of one scheduled run."""

    run_id: str
    status: str
    scheduled_for: datetime
    version: str | None = None
    decision: Decision | None = None
    settled: Decision | None = None
    error: str | None = None


def cron_trigger(cron: str) -> Any:
    """APScheduler's ``CronTrigger`` for a five-field crontab expression, in UTC.

    Raises
    ------
    ValueError
        Naming the expression and the expected form.
    """
    from apscheduler.triggers.cron import CronTrigger

    try:
        return CronTrigger.from_crontab(cron, timezone=UTC)
    except ValueError as err:
        raise ValueError(
            f"cron must be a crontab expression 'minute hour day month weekday' like "
            f"'0 3 * * MON', got {cron!r} ({err})"
        ) from None


def fire_times(cron: str, *, start: datetime, n: int) -> list[datetime]:
    """The first ``n`` times ``cron`` fires at or after ``start`` (a controllable clock)."""
    trigger = cron_trigger(cron)
    times: list[datetime] = []
    previous, now = None, _utc(start)
    while len(times) < n:
        fire = trigger.get_next_fire_time(previous, now)
        times.append(fire)
        previous = now = fire
    return times


def pipeline_notebooks(config: RunConfig) -> tuple[str, ...]:
    """The pipeline notebooks that train and audit the models of ``config`` (no EDA)."""
    notebooks = ["01_data", "03_train_als"]
    if "lightfm" in config.models:
        notebooks.append("04_train_lightfm")
    return (*notebooks, "05_compare", "06_fairness")


def papermill_pipeline(config: RunConfig, *, run_id: str) -> Path:
    """Run the pipeline's notebooks with papermill (:func:`shrek.pipeline.runner.run_pipeline`)."""
    from shrek.pipeline.runner import run_pipeline

    return run_pipeline(
        config, run_id=run_id, notebooks=pipeline_notebooks(config), show_progress=False
    )


def stage_pipeline(config: RunConfig, *, run_id: str) -> Path:
    """The same steps as the notebooks, called in this process (fast; for simulations)."""
    from shrek.pipeline import fairness_stage, stages

    run_dir = Path(config.reports_dir).resolve() / "runs" / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    config.to_yaml(run_dir / "config.yaml")
    stages.prepare_data(run_dir)
    for name in config.models:
        stages.train_and_evaluate(run_dir, name)
    stages.compare(run_dir)
    fairness_stage.audit_run(run_dir)
    return run_dir


def run_cycle(
    settings: ScheduleSettings,
    *,
    now: datetime,
    pipeline: Pipeline = papermill_pipeline,
    ab_source: ABSource | None = None,
    run_id: str | None = None,
) -> CycleResult:
    """One scheduled run at time ``now``: settle the canary, retrain, gate.

    Parameters
    ----------
    settings : ScheduleSettings
    now : datetime
        The run's time: the data cut-off (the scheduler passes the fire time).
    pipeline : callable, default :func:`papermill_pipeline`
        ``pipeline(config, run_id=...) -> run folder``.
    ab_source : callable, optional
        ``ab_source(registry, now) -> ABReport or None`` for the running canary; without it
        (or when it returns None) the canary keeps running.
    run_id : str, optional
        Defaults to ``<now>-<6 hex>``.

    Returns
    -------
    CycleResult
        ``status`` is ``succeeded`` or ``failed`` (with ``error``); a failed run changed
        neither production nor the serving files.
    """
    now, clock = _utc(now), time.monotonic()
    registry = Registry(settings.state_dir)
    recovered = registry.recover_interrupted()
    if recovered:
        logger.warning("runs interrupted earlier, now marked failed: %s", recovered)
    apply_deployment(registry)
    settled = _settle(registry, settings, now=now, ab_source=ab_source)

    run_id = run_id or f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"
    registry.start_run(run_id, scheduled_for=now.isoformat(), cutoff=now.isoformat())
    try:
        run_dir, version, decision = _train_and_gate(
            registry, settings, now, pipeline, run_id, clock=clock
        )
    except Exception as err:  # noqa: BLE001 - any failure is recorded; production stays as is
        error = f"{type(err).__name__}: {err}"
        registry.finish_run(run_id, status="failed", error=error)
        logger.error("scheduled run %s failed, production unchanged: %s", run_id, error)
        return CycleResult(run_id, "failed", now, settled=settled, error=error)
    data_version = registry.get(version).data_version
    registry.finish_run(run_id, status="succeeded", data_version=data_version, run_dir=str(run_dir))
    logger.info("scheduled run %s: %s -> %s", run_id, version, decision.status)
    return CycleResult(run_id, "succeeded", now, version, decision, settled)


def _train_and_gate(
    registry: Registry,
    settings: ScheduleSettings,
    now: datetime,
    pipeline: Pipeline,
    run_id: str,
    *,
    clock: float,
) -> tuple[Path, str, Decision]:
    snapshots = settings.state_dir / "snapshots" / run_id
    collected = settings.snapshot(snapshots / "collected", until=now)
    training = collected
    if settings.window_days:
        since = now - timedelta(days=settings.window_days)
        training = settings.snapshot(snapshots / "window", until=now, since=since)
    config = settings.config.model_copy(deep=True)
    config.data.data_dir = str(training.resolve())
    if settings.collector_folder is not None:  # collected already: no second trip through Kafka
        config.data.source = "files"
    config.reports_dir = str(settings.state_dir.resolve())
    run_dir = pipeline(config, run_id=run_id)
    version = export_and_register(registry, run_dir, settings=settings, run_id=run_id, now=now)
    test = latest_temporal_test(
        collected, test_fraction=settings.config.splits.temporal.test_fraction
    )
    decision = gate_candidate(
        registry,
        version,
        test=test,
        policy=settings.policy,
        run_id=run_id,
        started_at=now + timedelta(seconds=time.monotonic() - clock),  # the run's clock
    )
    return run_dir, version, decision


def export_and_register(
    registry: Registry,
    run_dir: Path,
    *,
    settings: ScheduleSettings,
    run_id: str,
    now: datetime,
) -> str:
    """Export the run's model to the store and register it as a candidate.

    Notes
    -----
    The model is exported even when its fairness gate failed (``force``, labelled
    ``fairness=overridden`` in the store) so that the registry lists it with its verdict; the
    promotion gate then rejects it and it never takes traffic.
    """
    import json

    from shrek.serve.export import export_run

    (exported,) = export_run(
        run_dir, models=[settings.model], training_data=settings.training_data, force=True
    )
    metrics = json.loads((run_dir / "metrics.json").read_text())["models"][settings.model]
    splits = metrics.get("splits", {})
    gate = exported.metadata.get("fairness_gate", {})
    cost = model_cost(exported.tag)
    registry.register(
        exported.tag,
        model=settings.model,
        run_id=run_id,
        data_version=exported.labels["data_version"],
        ndcg=float(splits["temporal"][f"ndcg@{settings.policy.k}"]),
        metrics={"splits": splits, "fairness_eligible": bool(gate.get("eligible", False))},
        fairness=str(gate.get("verdict", "missing")),
        fit_seconds=float(exported.metadata.get("fit_seconds", "nan")),
        cutoff=now.isoformat(),
        **cost,
    )
    return exported.tag


def _settle(
    registry: Registry,
    settings: ScheduleSettings,
    *,
    now: datetime,
    ab_source: ABSource | None,
) -> Decision | None:
    canary = registry.canary()
    if canary is None or ab_source is None:
        return None
    # The period counts from the scheduled time of the run that made the canary, so a weekly
    # schedule settles a 7-day canary at the next run; the A/B report counts the requests from
    # when it took traffic (canary_started), some minutes of training later.
    since = datetime.fromisoformat(canary.cutoff) if canary.cutoff else canary_started(registry)
    if since is None or now - _utc(since) < timedelta(days=settings.policy.canary_days):
        return None
    try:
        report = ab_source(registry, now)
        if report is None:
            registry.record("hold", "canary kept: no A/B report yet", version=canary.version)
            return None
        return settle_canary(registry, report, policy=settings.policy)
    except Exception as err:  # noqa: BLE001 - a broken log must not stop retraining
        reason = f"canary kept: the A/B report failed: {type(err).__name__}: {err}"
        registry.record("hold", reason, version=canary.version)
        logger.error(reason)
        return None


def canary_requests(
    requests: pd.DataFrame, deployment: Deployment, *, since: datetime, until: datetime
) -> pd.DataFrame:
    """The requests the canary deployment answered: after it started, each variant on its model.

    Parameters
    ----------
    requests : pandas.DataFrame
        ``[n_requests, 7]`` as in :class:`shrek.monitoring.online.OnlineLog` (naive UTC times).
    deployment : Deployment
        The canary deployment: ``stable`` answers the ``stable`` variant, ``candidate`` the
        ``candidate`` variant.
    since, until : datetime
        The canary period ``(since, until]`` (naive values are taken as UTC).

    Returns
    -------
    pandas.DataFrame
        The rows of ``requests`` in the period whose (variant, model version) is one of the
        deployment's. Requests before the canary (production answering everyone, maybe as
        ``candidate`` after an earlier promotion) are left out.
    """
    stamps = requests["timestamp"]
    in_period = (stamps > _naive(since)) & (stamps <= _naive(until))
    stable = (requests["variant"] == "stable") & (requests["model_version"] == deployment.stable)
    candidate = (requests["variant"] == "candidate") & (
        requests["model_version"] == deployment.candidate
    )
    return requests[in_period & (stable | candidate)]


def log_ab_source(
    *,
    log_file: str | Path | None = None,
    bootstrap_servers: str | None = None,
    topic: str = "shrek-events",
    window: str = "1D",
    policy: PromotionPolicy | None = None,
) -> ABSource:
    """An A/B source reading the service's request log (a file or the Kafka topic).

    Only the canary's requests count (:func:`canary_requests`: since the canary started, on
    the deployment's two model versions), each user's first one, and only requests whose
    ``window`` has ended by the settling time (a later watch could still turn them into hits).
    ``policy`` gives the test's ``alpha`` and ``mde``.
    """
    policy = policy or PromotionPolicy()

    def source(registry: Registry, now: datetime) -> ABReport | None:
        from shrek.monitoring import ab, logs, online

        deployment, started = registry.deployment(), canary_started(registry)
        if deployment is None or started is None:
            return None
        log = logs.load_log(
            log_file=str(log_file or ""), bootstrap_servers=bootstrap_servers or "", topic=topic
        )
        requests = canary_requests(log.requests, deployment, since=started, until=now)
        joined = online.join_outcomes(
            requests, log.events, window=window, observed_until=_naive(now)
        )
        if joined["variant"].nunique() < 2:
            return None
        return ab.ab_report(
            joined,
            one_per_user=True,
            expected_treatment_share=deployment.share,
            alpha=policy.alpha,
            mde=policy.mde,
        )

    return source


def run_scheduler(
    settings: ScheduleSettings,
    *,
    cron: str,
    pipeline: Pipeline = papermill_pipeline,
    ab_source: ABSource | None = None,
) -> None:
    """Run :func:`run_cycle` at every tick of ``cron`` (UTC) until interrupted.

    Notes
    -----
    One run at a time (``max_instances=1``); ticks missed while a run was going are merged
    into one (``coalesce``).
    """
    from apscheduler.schedulers.blocking import BlockingScheduler

    scheduler = BlockingScheduler(timezone=UTC)
    scheduler.add_job(
        lambda: run_cycle(settings, now=datetime.now(UTC), pipeline=pipeline, ab_source=ab_source),
        cron_trigger(cron),
        max_instances=1,
        coalesce=True,
        misfire_grace_time=3600,
        id="shrek-retrain",
    )
    logger.info("scheduled %s; next run %s", cron, fire_times(cron, start=datetime.now(UTC), n=1))
    scheduler.start()


def _naive(moment: datetime) -> pd.Timestamp:
    return pd.Timestamp(_utc(moment).replace(tzinfo=None))


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
