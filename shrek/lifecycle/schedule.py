"""Scheduled retraining: each cron tick runs the pipeline on the data collected until then.

One scheduled run (:func:`run_cycle`)

1. marks runs left ``running`` by a dead process as failed and rewrites the serving files from
   the registry (so a crash never leaves them behind the registry);
2. settles a canary whose canary period is over, from the online A/B report;
3. snapshots the ratings collected up to the run's time (``snapshots/<run_id>/ml-100k``; its
   content hash is the run's data version) and runs the pipeline into ``runs/<run_id>``;
4. exports the model to the BentoML store, registers it and lets the promotion gate decide.

A run that fails at any step is recorded as failed with the error; production and the serving
files are not touched. The times of the runs come from APScheduler's ``CronTrigger``.
"""

from __future__ import annotations

import logging
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from shrek.config import RunConfig
from shrek.errors import ShrekError
from shrek.lifecycle.promotion import (
    Decision,
    PromotionPolicy,
    gate_candidate,
    latest_temporal_test,
    model_cost,
    settle_canary,
)
from shrek.lifecycle.registry import Registry
from shrek.lifecycle.rollback import apply_deployment

logger = logging.getLogger(__name__)

Pipeline = Callable[..., Path]
ABSource = Callable[[Registry, datetime], Any]
METADATA_FILES: tuple[str, ...] = ("u.item", "u.user", "u.genre", "u.occupation")


@dataclass
class ScheduleSettings:
    """What every scheduled run needs.

    Parameters
    ----------
    config : RunConfig
        The pipeline's settings; ``data.data_dir`` and ``reports_dir`` are set per run.
    state_dir : Path
        The lifecycle folder: ``registry.sqlite``, ``serving/``, ``runs/``, ``snapshots/``.
    source_dir : Path
        The folder holding ``ml-100k/`` whose ratings are "collected" over time.
    model : {"als", "lightfm"}, default "als"
        The model that is retrained, exported and promoted.
    policy : PromotionPolicy
    training_data : {"temporal", "all", "stratified"}, default "temporal"
        What the exported model is fitted on (see :func:`shrek.serve.export.export_run`).
        ``temporal`` exports the model evaluated on the temporal split, so the gate compares
        held-out scores only.
    window_days : float, optional
        Keep only the last ``window_days`` of ratings (a truncated window); all by default.
    """

    config: RunConfig
    state_dir: Path
    source_dir: Path
    model: str = "als"
    policy: PromotionPolicy = field(default_factory=PromotionPolicy)
    training_data: str = "temporal"
    window_days: float | None = None

    def __post_init__(self) -> None:
        if self.model not in ("als", "lightfm"):
            raise ValueError(f"model must be 'als' or 'lightfm', got {self.model!r}")
        if self.window_days is not None and self.window_days <= 0:
            raise ValueError(f"window_days must be > 0 or None, got {self.window_days!r}")
        self.state_dir, self.source_dir = Path(self.state_dir), Path(self.source_dir)


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


def snapshot_movielens(
    source_dir: str | Path,
    into: str | Path,
    *,
    until: datetime,
    since: datetime | None = None,
) -> Path:
    """Copy MovieLens 100K with only the ratings collected in ``(since, until]``.

    Parameters
    ----------
    source_dir : str or Path
        A folder holding ``ml-100k/``.
    into : str or Path
        Where ``ml-100k/`` is written; pass it as ``data.data_dir`` of the run.
    until, since : datetime
        UTC bounds on the ratings' timestamps (naive values are taken as UTC).

    Raises
    ------
    ShrekError
        If no rating falls in the window.
    """
    from shrek.data.download import locate_ml100k

    source = locate_ml100k(source_dir, download=False)
    target = Path(into) / "ml-100k"
    target.mkdir(parents=True, exist_ok=True)
    for name in METADATA_FILES:
        if (source / name).exists():
            shutil.copyfile(source / name, target / name)
    upper = _utc(until).timestamp()
    lower = _utc(since).timestamp() if since is not None else float("-inf")
    lines = [
        line
        for line in (source / "u.data").read_text().splitlines(keepends=True)
        if line.strip() and lower < int(line.split("\t")[3]) <= upper
    ]
    if not lines:
        raise ShrekError(
            f"no rating in {source / 'u.data'} was collected between {since} and {until}"
        )
    (target / "u.data").write_text("".join(lines))
    logger.info("snapshot of %d ratings up to %s in %s", len(lines), until, target)
    return Path(into)


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
    now = _utc(now)
    registry = Registry(settings.state_dir)
    recovered = registry.recover_interrupted()
    if recovered:
        logger.warning("runs interrupted earlier, now marked failed: %s", recovered)
    apply_deployment(registry)
    settled = _settle(registry, settings, now=now, ab_source=ab_source)

    run_id = run_id or f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"
    registry.start_run(run_id, scheduled_for=now.isoformat(), cutoff=now.isoformat())
    try:
        run_dir, version, decision = _train_and_gate(registry, settings, now, pipeline, run_id)
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
) -> tuple[Path, str, Decision]:
    snapshots = settings.state_dir / "snapshots" / run_id
    collected = snapshot_movielens(settings.source_dir, snapshots / "collected", until=now)
    training = collected
    if settings.window_days:
        since = now - timedelta(days=settings.window_days)
        training = snapshot_movielens(
            settings.source_dir, snapshots / "window", until=now, since=since
        )
    config = settings.config.model_copy(deep=True)
    config.data.data_dir = str(training.resolve())
    config.reports_dir = str(settings.state_dir.resolve())
    run_dir = pipeline(config, run_id=run_id)
    version = export_and_register(registry, run_dir, settings=settings, run_id=run_id, now=now)
    test = latest_temporal_test(
        collected, test_fraction=settings.config.splits.temporal.test_fraction
    )
    decision = gate_candidate(registry, version, test=test, policy=settings.policy, run_id=run_id)
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
    if canary is None or ab_source is None or canary.cutoff is None:
        return None
    if now - datetime.fromisoformat(canary.cutoff) < timedelta(days=settings.policy.canary_days):
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


def log_ab_source(
    *,
    log_file: str | Path | None = None,
    bootstrap_servers: str | None = None,
    topic: str = "shrek-events",
    window: str = "1D",
    policy: PromotionPolicy | None = None,
) -> ABSource:
    """An A/B source reading the service's request log (a file or the Kafka topic).

    Only requests answered by the current deployment's two model versions count.
    """
    policy = policy or PromotionPolicy()

    def source(registry: Registry, now: datetime) -> Any:
        from shrek.monitoring import ab, online

        deployment = registry.deployment()
        log = online.load_log(
            log_file=str(log_file or ""), bootstrap_servers=bootstrap_servers or "", topic=topic
        )
        requests = log.requests[
            log.requests["model_version"].isin([deployment.stable, deployment.candidate])
        ]
        if requests["variant"].nunique() < 2:
            return None
        joined = online.join_outcomes(requests, log.events, window=window)
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


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
