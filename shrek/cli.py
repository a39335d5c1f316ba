"""The ``shrek`` command line."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from shrek.errors import ShrekError


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def cli(verbose: int) -> None:
    """Shrek: build, audit and ship movie recommenders."""
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # nbconvert warns about every figure without alt text in the HTML reports; not actionable.
    logging.getLogger("traitlets").setLevel(max(level, logging.ERROR))
    # kafka-python logs every failed connection attempt; the failure itself reaches main().
    logging.getLogger("kafka").setLevel(level if verbose else logging.CRITICAL)


@cli.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Run settings (YAML). Default: configs/run.yaml.",
)
@click.option("--run-id", default=None, help="Name of the run folder. Default: time + random.")
@click.option(
    "--data-dir",
    default=None,
    help="Folder holding ml-100k/ (overrides SHREK_DATA_DIR and the config).",
)
@click.option(
    "--reports-dir", default=None, help="Where runs/ is written. Default: from the config."
)
@click.option(
    "--source",
    type=click.Choice(["stream", "files"]),
    default=None,
    help="stream: replay and collect through Kafka; files: read them directly. "
    "Default: from the config (stream).",
)
@click.option("--no-progress", is_flag=True, help="Hide progress bars.")
def run(
    config_path: Path | None,
    run_id: str | None,
    data_dir: str | None,
    reports_dir: str | None,
    source: str | None,
    no_progress: bool,
) -> None:
    """Run the main job: data, EDA, ALS, LightFM and the comparison, as executed notebooks."""
    from shrek.config import load_config
    from shrek.pipeline.runner import load_comparison, run_pipeline

    config = load_config(config_path)
    if data_dir:
        config.data.data_dir = data_dir
    if reports_dir:
        config.reports_dir = reports_dir
    if source:
        config.data.source = source
    run_dir = run_pipeline(config, run_id=run_id, show_progress=not no_progress)
    table = load_comparison(run_dir)
    click.echo("")
    click.echo(table.to_string(float_format=lambda v: f"{v:.4f}"))
    _echo_fairness(run_dir)
    click.echo("")
    click.echo(f"report: {run_dir}")


def _echo_fairness(run_dir: Path) -> None:
    from shrek.pipeline.fairness_stage import FAIRNESS_FILE, read_fairness

    if not (run_dir / FAIRNESS_FILE).exists():
        return
    summary = read_fairness(run_dir)
    click.echo("")
    click.echo(
        f"fairness ({summary['split']} split, gate mode {summary['gate_mode']}): verdict per model"
    )
    for model, verdict in summary["verdicts"].items():
        report = summary["models"][model]
        failing = [
            f"{c['check']} by {c['feature']}"
            for c in report["checks"]
            if c["status"] == verdict and verdict != "PASS"
        ]
        export = "may be exported" if summary["eligible"][model] else "blocked from export"
        detail = f" ({'; '.join(failing[:3])}{'; ...' if len(failing) > 3 else ''})"
        click.echo(f"  {model:<11} {verdict:<13} {export}{detail if failing else ''}")


@cli.command()
@click.option("--data-dir", default=None, help="Folder holding ml-100k/ (default SHREK_DATA_DIR).")
@click.option(
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write the four tables as Parquet here.",
)
def data(data_dir: str | None, output: Path | None) -> None:
    """Load MovieLens 100K, validate it and print its data version."""
    import json

    from shrek.data import load_movielens_100k

    dataset = load_movielens_100k(data_dir)
    if output:
        dataset.save(output)
    click.echo(json.dumps(dataset.version.to_dict(), indent=2))


def _add_stage_commands() -> None:
    """Commands of the later stages live beside their code; each module imports lightly."""
    from shrek.lifecycle.cli import COMMANDS as lifecycle_commands
    from shrek.monitoring.cli import COMMANDS as monitoring_commands
    from shrek.serve.cli import export_command, serve_config_command
    from shrek.stream.cli import COMMANDS as stream_commands
    from shrek.tuning.cli import tune

    for command in (
        *stream_commands,
        tune,
        export_command,
        serve_config_command,
        *monitoring_commands,
        *lifecycle_commands,
    ):
        cli.add_command(command)


_add_stage_commands()


def main() -> None:
    """Entry point: domain failures print one clear line instead of a traceback."""
    try:
        cli()
    except (ShrekError, ValueError) as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(1)
    except Exception as err:
        if not type(err).__module__.startswith("kafka."):
            raise
        click.echo(
            f"error: Kafka: {err or type(err).__name__}. Is the broker running and reachable? "
            "Without a cluster, `shrek broker` starts one (export what it prints); -v shows "
            "kafka-python's log.",
            err=True,
        )
        sys.exit(1)
