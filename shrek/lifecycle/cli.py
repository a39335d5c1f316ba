"""``shrek schedule``, ``shrek models``, ``shrek promote`` and ``shrek rollback``."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import click

STATE_DIR = "reports/lifecycle"
_state_option = click.option(
    "--state-dir",
    default=STATE_DIR,
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The lifecycle folder: registry.sqlite, serving/, runs/, snapshots/.",
)
_log_options = [
    click.option(
        "--log-file",
        default=None,
        type=click.Path(dir_okay=False),
        help="The service's request log as a text file (instead of the topic).",
    ),
    click.option(
        "--bootstrap-servers",
        default=None,
        envvar="SHREK_KAFKA_BOOTSTRAP_SERVERS",
        help="Kafka servers of the request log topic (env SHREK_KAFKA_BOOTSTRAP_SERVERS).",
    ),
    click.option("--topic", default="shrek-events", show_default=True, help="Request log topic."),
    click.option(
        "--window", default="1D", show_default=True, help="A watch counts this long after."
    ),
    click.option(
        "--alpha", type=float, default=0.05, show_default=True, help="A/B significance level."
    ),
    click.option(
        "--mde",
        type=float,
        default=0.02,
        show_default=True,
        help="Smallest watch-through difference the A/B test must be able to detect; a canary "
        "with fewer requests than that needs is held.",
    ),
]


def _with_log_options(command):  # noqa: ANN001, ANN202 - click decorator plumbing
    for option in reversed(_log_options):
        command = option(command)
    return command


@click.command("schedule")
@click.option(
    "--cron",
    default="0 3 * * MON",
    show_default=True,
    help="When to retrain: a crontab expression in UTC.",
)
@click.option("--config", "config_path", default=None, help="Run settings (configs/run.yaml).")
@_state_option
@click.option(
    "--collector-folder",
    default=None,
    type=click.Path(file_okay=False, path_type=Path),
    help="The collector's folder (shrek collect --out): each run trains on its dataset/ cut at "
    "the run's time.",
)
@click.option(
    "--data-dir",
    default=None,
    help="Instead of --collector-folder, a demo: a folder holding ml-100k/ whose ratings count "
    "as collected at their timestamps ($SHREK_DATA_DIR).",
)
@click.option("--model", type=click.Choice(["als", "lightfm"]), default="als", show_default=True)
@click.option("--margin", type=float, default=0.005, show_default=True, help="nDCG@10 margin.")
@click.option(
    "--canary-share",
    type=float,
    default=0.1,
    show_default=True,
    help="Share of users a new canary gets.",
)
@click.option(
    "--canary-days",
    type=float,
    default=7.0,
    show_default=True,
    help="How long a canary runs before the A/B verdict settles it.",
)
@click.option("--window-days", type=float, default=None, help="Train on the last N days only.")
@click.option("--once", is_flag=True, help="Run one cycle now and exit (e.g. from system cron).")
@click.option(
    "--in-process", is_flag=True, help="Call the pipeline's steps here instead of papermill."
)
@_with_log_options
def schedule_command(
    cron: str,
    config_path: str | None,
    state_dir: Path,
    collector_folder: Path | None,
    data_dir: str | None,
    model: str,
    margin: float,
    canary_share: float,
    canary_days: float,
    window_days: float | None,
    once: bool,
    in_process: bool,
    log_file: str | None,
    bootstrap_servers: str | None,
    topic: str,
    window: str,
    alpha: float,
    mde: float,
) -> None:
    """Retrain on a cron schedule: each run on the data collected until then, its own run
    folder and data version; the promotion gate decides what it becomes. A canary is settled
    from the service's request log (--log-file or the topic). A failed run leaves production
    untouched and is recorded with its error (`shrek models --runs`)."""
    import os

    from shrek.config import load_config
    from shrek.lifecycle.promotion import PromotionPolicy
    from shrek.lifecycle.schedule import (
        ScheduleSettings,
        cron_trigger,
        log_ab_source,
        papermill_pipeline,
        run_cycle,
        run_scheduler,
        stage_pipeline,
    )

    cron_trigger(cron)
    if collector_folder is not None and data_dir:
        raise click.UsageError(
            f"pass --collector-folder or --data-dir, not both (got {collector_folder} and "
            f"{data_dir})"
        )
    source = None if collector_folder else data_dir or os.environ.get("SHREK_DATA_DIR")
    if collector_folder is None and not source:
        raise click.UsageError(
            "pass --collector-folder (the collector's folder), or --data-dir / SHREK_DATA_DIR "
            "(the folder of ml-100k/) for a demo"
        )
    if not (log_file or bootstrap_servers):
        raise click.UsageError(
            f"a canary (--canary-days {canary_days:g}) is settled from the service's request "
            "log, and none is given: pass --log-file FILE or --bootstrap-servers HOST:PORT "
            "(or set SHREK_KAFKA_BOOTSTRAP_SERVERS)"
        )
    policy = PromotionPolicy(
        margin=margin, canary_share=canary_share, canary_days=canary_days, alpha=alpha, mde=mde
    )
    settings = ScheduleSettings(
        load_config(config_path),
        state_dir,
        Path(source) if source else None,
        model=model,
        policy=policy,
        window_days=window_days,
        collector_folder=collector_folder,
    )
    pipeline = stage_pipeline if in_process else papermill_pipeline
    ab_source = log_ab_source(
        log_file=log_file,
        bootstrap_servers=bootstrap_servers,
        topic=topic,
        window=window,
        policy=policy,
    )
    if once:
        result = run_cycle(settings, now=datetime.now(UTC), pipeline=pipeline, ab_source=ab_source)
        click.echo(f"{result.run_id}: {result.status} {result.decision or result.error or ''}")
        if result.status != "succeeded":
            raise SystemExit(1)
        return
    click.echo(f"retraining at '{cron}' (UTC) into {state_dir}; Ctrl-C stops")
    run_scheduler(settings, cron=cron, pipeline=pipeline, ab_source=ab_source)


@click.command("models")
@_state_option
@click.option("--decisions", is_flag=True, help="Every decision with its reason instead.")
@click.option("--runs", is_flag=True, help="Every scheduled run instead.")
@click.option("--env", is_flag=True, help="The environment that serves the deployment.")
@click.option(
    "--apply",
    "apply",
    is_flag=True,
    help="Rewrite the serving files from the registry first (after a crash between a decision "
    "and its serving files; the next scheduled run does it too).",
)
def models_command(state_dir: Path, decisions: bool, runs: bool, env: bool, apply: bool) -> None:
    """Every exported model version: data version, nDCG@10, fairness verdict, status
    (candidate, canary, production, retired) and the reason of its latest decision. Warns
    when the serving files disagree with the registry."""
    import pandas as pd

    from shrek.lifecycle.registry import Registry
    from shrek.lifecycle.rollback import apply_deployment, check_consistency, deployment_env

    registry = Registry(state_dir)
    if apply:
        apply_deployment(registry)
    if env:
        for name, value in deployment_env(registry).items():
            click.echo(f"{name}={value}")
        return
    table = registry.decisions() if decisions else registry.runs() if runs else registry.table()
    with pd.option_context("display.width", 200, "display.max_colwidth", 90):
        click.echo(table.to_string() if not table.empty else "(empty)")
    deployment = registry.deployment()
    if deployment is not None and not (decisions or runs):
        click.echo(
            f"\ndeployment {deployment.id}: stable {deployment.stable}, candidate "
            f"{deployment.candidate}, candidate share {deployment.share:.2f}"
        )
    for problem in check_consistency(registry):
        hint = "`shrek models --apply` rewrites the serving files from the registry"
        click.echo(f"warning: {problem}; {hint}", err=True)


@click.command("promote")
@_state_option
@click.option(
    "--promote-when",
    type=click.Choice(["not_worse", "better"]),
    default="not_worse",
    show_default=True,
    help="not_worse: promote unless the A/B test finds the canary worse.",
)
@_with_log_options
def promote_command(
    state_dir: Path,
    promote_when: str,
    log_file: str | None,
    bootstrap_servers: str | None,
    topic: str,
    window: str,
    alpha: float,
    mde: float,
) -> None:
    """End the canary now: the online A/B verdict from the request log promotes it to every
    user, rolls it back, or keeps it when the test is still underpowered. The decision and
    its reason go to the registry."""
    from shrek.lifecycle.promotion import PromotionPolicy, settle_canary
    from shrek.lifecycle.registry import Registry
    from shrek.lifecycle.schedule import log_ab_source

    if not (log_file or bootstrap_servers):
        raise click.UsageError(
            "the canary is settled from the service's request log: pass --log-file FILE or "
            "--bootstrap-servers HOST:PORT (or set SHREK_KAFKA_BOOTSTRAP_SERVERS)"
        )
    registry = Registry(state_dir)
    policy = PromotionPolicy(promote_when=promote_when, alpha=alpha, mde=mde)
    source = log_ab_source(
        log_file=log_file,
        bootstrap_servers=bootstrap_servers,
        topic=topic,
        window=window,
        policy=policy,
    )
    report = source(registry, datetime.now(UTC))
    if report is None:
        raise click.ClickException(
            "no A/B report: no canary is running, or the log has no completed requests of both "
            "variants since the canary started"
        )
    decision = settle_canary(registry, report, policy=policy)
    click.echo(json.dumps({"version": decision.version, "status": decision.status}))
    click.echo(decision.reason)


@click.command("rollback")
@_state_option
@click.option("--reason", default="manual rollback", show_default=True)
def rollback_command(state_dir: Path, reason: str) -> None:
    """Return all traffic to the previous production version now, without a restart: the
    running canary service reads the rewritten split and routing files within a second,
    loading the version from the model store when it is not one of the pair it serves."""
    from shrek.lifecycle.registry import Registry
    from shrek.lifecycle.rollback import rollback

    result = rollback(Registry(state_dir), reason=reason)
    click.echo(f"{result.serving} answers every user again (was {result.replaced})")


COMMANDS = (schedule_command, models_command, promote_command, rollback_command)


@click.group()
@click.option("-v", "--verbose", count=True)
def lifecycle(verbose: int) -> None:
    """The lifecycle commands on their own (``python -m shrek.lifecycle.cli``)."""
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


for _command in COMMANDS:
    lifecycle.add_command(_command)

if __name__ == "__main__":
    lifecycle()
