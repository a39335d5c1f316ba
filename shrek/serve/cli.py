"""``shrek export`` and ``shrek serve-config``."""

from __future__ import annotations

import json
from pathlib import Path

import click


def latest_run(reports_dir: str | Path = "reports") -> Path:
    """The newest run folder under ``<reports_dir>/runs`` (by modification time)."""
    runs = [p for p in (Path(reports_dir) / "runs").glob("*") if (p / "metrics.json").exists()]
    if not runs:
        raise click.UsageError(
            f"no finished run under {Path(reports_dir) / 'runs'}: run `shrek run` first, or "
            "pass the run folder"
        )
    return max(runs, key=lambda p: (p / "metrics.json").stat().st_mtime)


@click.command("export")
@click.argument(
    "run_dir",
    required=False,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
)
@click.option(
    "--model",
    "models",
    multiple=True,
    type=click.Choice(["als", "lightfm"]),
    help="Model to export (repeatable). Default: als and lightfm.",
)
@click.option(
    "--training-data",
    type=click.Choice(["all", "stratified", "temporal"]),
    default="all",
    show_default=True,
    help="'all' refits the run's parameters on every rating; a split exports the model as "
    "evaluated on it.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Export models the fairness gate marked not eligible (a FAIL in block mode; "
    "INCONCLUSIVE models are eligible unless fail_on_inconclusive), or a run without "
    "fairness.json (labelled fairness=overridden).",
)
@click.option("--reports-dir", default="reports", show_default=True, help="Where runs/ is.")
def export_command(
    run_dir: Path | None,
    models: tuple[str, ...],
    training_data: str,
    force: bool,
    reports_dir: str,
) -> None:
    """Save a run's ALS and LightFM models to the BentoML model store with their provenance.

    RUN_DIR defaults to the newest run under REPORTS_DIR/runs. The store is $BENTOML_HOME
    (default ~/bentoml); `bentoml models list shrek-als` shows the result.
    """
    from shrek.serve.export import EXPORTABLE, export_run

    run_dir = run_dir or latest_run(reports_dir)
    exported = export_run(
        run_dir, models=models or EXPORTABLE, training_data=training_data, force=force
    )
    for item in exported:
        click.echo(f"{item.tag}  {json.dumps(item.labels)}")


@click.command("serve-config")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--share", type=click.FloatRange(0, 1), required=True, help="Candidate share, 0–1.")
@click.option("--salt", default="shrek", show_default=True, help="Salt of the user hash.")
def serve_config_command(path: Path, share: float, salt: str) -> None:
    """Write the canary split file PATH that a running canary service watches
    ($SHREK_CANARY_CONFIG); the service picks it up within a second, without a restart."""
    from shrek.serve.canary import CanaryConfig, write_canary_config

    write_canary_config(path, CanaryConfig(share=share, salt=salt))
    click.echo(f"{path}: share {share}, salt {salt!r}")
