"""``shrek tune``: search ALS and LightFM settings on a validation split, save the best."""

from __future__ import annotations

import logging
from pathlib import Path

import click

logger = logging.getLogger(__name__)

MODEL_CHOICES = ("als", "lightfm", "all")
#: Same as :data:`shrek.tuning.spaces.FEATURE_CHOICES` (not imported: the CLI loads lightly).
FEATURE_CHOICES = ("search", "on", "off")


@click.command()
@click.option(
    "--model",
    "model_choice",
    type=click.Choice(MODEL_CHOICES),
    default="all",
    show_default=True,
    help="Model to tune; 'all' tunes ALS, then LightFM.",
)
@click.option(
    "--trials",
    type=click.IntRange(min=1),
    default=40,
    show_default=True,
    help="Trials per model at most.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=None,
    help="Seconds per model after which no new trial starts. Default: no limit.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Run settings (YAML) read for the data and split, and written with --write. "
    "Default: configs/run.yaml.",
)
@click.option(
    "--write/--no-write",
    default=False,
    show_default=True,
    help="Save the best parameters in the config's models: section (what `make run` uses).",
)
@click.option(
    "--features",
    type=click.Choice(FEATURE_CHOICES),
    default="search",
    show_default=True,
    help="LightFM's user and movie features: search whether to use each; 'on' keeps both on "
    "and searches feature_weight (a model that can answer new users); 'off' keeps both off.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the TPE sampler.")
@click.option(
    "--validation-seed",
    type=int,
    default=7,
    show_default=True,
    help="Seed of the validation split drawn inside the training part.",
)
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Trials in parallel (more than 1 makes a study depend on timing).",
)
@click.option("--data-dir", default=None, help="Folder holding ml-100k/ (overrides the config).")
@click.option(
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where each study's JSON record goes. Default: <reports_dir>/tuning.",
)
@click.option("--no-progress", is_flag=True, help="Hide progress bars.")
def tune(
    model_choice: str,
    trials: int,
    timeout: float | None,
    config_path: Path | None,
    write: bool,
    features: str,
    seed: int,
    validation_seed: int,
    jobs: int,
    data_dir: str | None,
    output: Path | None,
    no_progress: bool,
) -> None:
    """Tune ALS and LightFM on a validation split carved from the stratified training part.

    The test part of the split is never read. Prints the best validation metrics per model;
    with --write, stores the best parameters where `make run` reads them.
    """
    import optuna

    from shrek.config import load_config
    from shrek.tuning.study import prepare_tuning_data, run_studies, save_studies

    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()
    config = load_config(config_path)
    if data_dir:
        config.data.data_dir = data_dir
    data = prepare_tuning_data(config, seed=validation_seed)
    click.echo(
        f"validation split of the stratified training part: {len(data.fit)} fit ratings, "
        f"{len(data.valid)} validation ratings (test part not read)"
    )

    results = run_studies(
        data,
        models=model_choice,
        start_from=config.models,
        n_trials=trials,
        timeout=timeout,
        k=config.evaluation.k,
        seed=seed,
        n_jobs=jobs,
        features=features,
        show_progress=not no_progress,
    )
    command = _command(
        model=model_choice,
        features=features,
        trials=trials,
        timeout=timeout,
        seed=seed,
        validation_seed=validation_seed,
        jobs=jobs,
        write=write,
    )
    for model, result in results.items():
        result.command = command
        metrics = "  ".join(f"{name} {value:.4f}" for name, value in result.validation.items())
        click.echo(f"{model}: {result.n_trials} trials in {result.seconds:.0f} s; best {metrics}")
        click.echo(f"  params: {result.settings}")

    paths = save_studies(
        results,
        output=output or Path(config.reports_dir) / "tuning",
        write=write,
        config_path=config_path,
    )
    for path in paths[: len(results)]:
        click.echo(f"record: {path}")
    if write:
        click.echo(f"best parameters written to {paths[-1]} (models: section)")


def _command(
    *,
    model: str,
    features: str,
    trials: int,
    timeout: float | None,
    seed: int,
    validation_seed: int,
    jobs: int,
    write: bool,
) -> str:
    """The ``shrek tune`` command line of these settings (paths left out), for the record."""
    parts = ["shrek tune", f"--model {model}"]
    if model != "als":
        parts.append(f"--features {features}")
    parts += [f"--trials {trials}", f"--seed {seed}", f"--validation-seed {validation_seed}"]
    if timeout is not None:
        parts.append(f"--timeout {timeout:g}")
    if jobs > 1:
        parts.append(f"--jobs {jobs}")
    if write:
        parts.append("--write")
    return " ".join(parts)
