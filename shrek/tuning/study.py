"""Run a hyperparameter study per model with Optuna's TPE sampler, on the validation split."""

from __future__ import annotations

import json
import logging
import time
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from tqdm.auto import tqdm

from shrek.config import DEFAULT_CONFIG, RunConfig
from shrek.data import Dataset, load_movielens_100k, stratified_split
from shrek.tuning.objective import Objective
from shrek.tuning.params_file import write_best_params
from shrek.tuning.spaces import SPACES, best_params, feature_switches, space_for
from shrek.tuning.validation import TuningData, tuning_data

logger = logging.getLogger(__name__)

#: What ``models="all"`` tunes, in order.
ALL_MODELS: tuple[str, ...] = tuple(SPACES)


@dataclass
class TuningResult:
    """The outcome of one study.

    Attributes
    ----------
    model : str
        The model searched.
    params : dict
        Constructor keywords of the best trial (fixed settings included).
    searched : dict
        The searched values of the best trial only.
    settings : dict
        What the run config stores: ``searched`` plus the feature switches a LightFM study
        fixed (``features`` ``on`` or ``off``); the model's defaults supply the rest.
    metric : str
        The metric maximised, e.g. ``ndcg@10``.
    value : float
        Its validation value for the best trial.
    validation : dict
        Every validation metric of the best trial.
    trials : pandas.DataFrame
        One row per trial: number, state, value, parameters and metrics.
    n_trials : int
        Trials that completed.
    seconds : float
        Wall time of the study.
    seed, validation_seed : int
        Seeds of the sampler and of the validation split.
    n_jobs : int
        Trials that ran in parallel (more than 1: the study is not repeatable from its seed).
    features : {"search", "on", "off"}
        How a LightFM study treated the user and movie features (``search`` for ALS).
    command : str, optional
        The command that ran the study (``shrek tune ...``), for the run config's comment.
    finished : str
        Date the study ended (UTC, ``YYYY-mm-dd``).
    """

    model: str
    params: dict[str, Any]
    searched: dict[str, Any]
    metric: str
    value: float
    validation: dict[str, float]
    trials: pd.DataFrame
    n_trials: int
    seconds: float
    settings: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    validation_seed: int = 7
    n_jobs: int = 1
    features: str = "search"
    command: str | None = None
    finished: str = field(default_factory=lambda: f"{datetime.now(UTC):%Y-%m-%d}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready record of the study (the trials as a list of rows)."""
        trials = self.trials.astype(object).where(self.trials.notna(), None)
        record = {name: getattr(self, name) for name in self.__dataclass_fields__}
        record["trials"] = trials.to_dict(orient="records")
        return record

    def provenance(self) -> str:
        """One sentence on where the parameters came from (the run config's comment)."""
        jobs = f" in {self.n_jobs} parallel jobs" if self.n_jobs > 1 else ""
        by = f"`{self.command}`" if self.command else "`shrek tune`"
        features = {"on": ", features on", "off": ", features off"}.get(self.features, "")
        if self.model != "lightfm":
            features = ""
        return (
            f"{self.model}: written by {by} on {self.finished} (Optuna TPE, seed "
            f"{self.seed}, {self.n_trials} trials{jobs}{features}, scored on a validation split "
            f"drawn from the stratified training part only, seed {self.validation_seed}); "
            f"validation {self.metric} {self.value:.4f}."
        )


def prepare_tuning_data(
    config: RunConfig, *, dataset: Dataset | None = None, seed: int = 7
) -> TuningData:
    """The validation split of the run's stratified training part.

    The stratified split of ``config`` is drawn as ``make run`` draws it; its test part is
    dropped at once and never passed on.

    Parameters
    ----------
    config : RunConfig
        Supplies the data folder and the stratified split's settings.
    dataset : Dataset, optional
        The data; loaded from ``config.data`` when omitted.
    seed : int, default 7
        Seed of the validation draw inside the training part.
    """
    if dataset is None:
        dataset = load_movielens_100k(config.data.data_dir, rating_scale=config.data.rating_scale)
    s = config.splits.stratified
    train, _ = stratified_split(dataset.ratings, ratio=s.ratio, filter_by=s.filter_by, seed=s.seed)
    return tuning_data(train, dataset=dataset, ratio=s.ratio, filter_by=s.filter_by, seed=seed)


def run_study(
    model: str,
    data: TuningData,
    *,
    n_trials: int = 50,
    timeout: float | None = None,
    k: int = 10,
    metric: str = "ndcg",
    seed: int = 0,
    start_from: dict[str, Any] | None = None,
    n_jobs: int = 1,
    features: str = "search",
    show_progress: bool = False,
) -> TuningResult:
    """Search ``model``'s space (:mod:`shrek.tuning.spaces`) for the best validation metric.

    Parameters
    ----------
    model : {"als", "lightfm"}
        The model searched.
    data : TuningData
        The validation split (:func:`prepare_tuning_data`).
    n_trials : int, default 50
        Trials to run at most.
    timeout : float, optional
        Seconds after which no new trial starts.
    k : int, default 10
        Cut-off of the metric.
    metric : {"ndcg", "map", "precision", "recall"}, default "ndcg"
        The metric maximised.
    seed : int, default 0
        Seed of the TPE sampler.
    start_from : dict, optional
        Parameters tried first (e.g. the run config's current ones), so the study never ends
        below them on validation; keys the space does not draw are ignored, and parameters
        it draws that are missing here are sampled.
    n_jobs : int, default 1
        Trials run in parallel threads. More than 1 makes the sequence of trials depend on
        timing, so a study is no longer repeatable from its seed.
    features : {"search", "on", "off"}, default "search"
        LightFM only: draw the feature switches, or keep both on (searching
        ``feature_weight``) or off (see :func:`shrek.tuning.spaces.lightfm_space`).
    show_progress : bool, default False
        Show a progress bar over the trials.

    Returns
    -------
    TuningResult
        The best trial's parameters and metrics, and every trial.

    Raises
    ------
    RuntimeError
        No trial completed (all failed or the timeout was shorter than one fit).
    """
    if n_trials < 1:
        raise ValueError(f"n_trials must be a positive integer, got {n_trials!r}")
    features = features if model == "lightfm" else "search"
    space = space_for(model, features=features)
    objective = Objective(model, data, k=k, metric=metric, space=space)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True)
    study = optuna.create_study(direction="maximize", sampler=sampler, study_name=f"shrek-{model}")
    if start_from:
        study.enqueue_trial(dict(start_from), skip_if_exists=True)

    started = time.perf_counter()
    with tqdm(total=n_trials, desc=f"tune {model}", disable=not show_progress) as bar:
        study.optimize(
            objective,
            n_trials=n_trials,
            timeout=timeout,
            n_jobs=n_jobs,
            callbacks=[lambda study, trial: bar.update(1)],
            catch=(ValueError, ArithmeticError),
        )
    seconds = time.perf_counter() - started

    result = _result(model, study, objective.metric, seconds, features=features)
    result.seed, result.validation_seed, result.n_jobs = seed, data.seed, n_jobs
    return result


def run_studies(
    data: TuningData,
    *,
    models: str = "all",
    start_from: dict[str, dict[str, Any]] | None = None,
    **options: Any,
) -> dict[str, TuningResult]:
    """One :func:`run_study` per model, one after another.

    Parameters
    ----------
    data : TuningData
        The validation split.
    models : {"all", "als", "lightfm"}, default "all"
        The model to tune, or every searchable one.
    start_from : dict, optional
        Model name -> parameters tried first (the run config's ``models``).
    **options
        Passed to :func:`run_study` (``n_trials``, ``timeout``, ``seed``, ...).

    Returns
    -------
    dict
        Model name -> :class:`TuningResult`.
    """
    choices = ("all", *ALL_MODELS)
    if models not in choices:
        raise ValueError(f"models must be one of {', '.join(choices)}, got {models!r}")
    names = ALL_MODELS if models == "all" else (models,)
    start_from = start_from or {}
    return {
        name: run_study(name, data, start_from=start_from.get(name), **options) for name in names
    }


def results_table(results: dict[str, TuningResult]) -> pd.DataFrame:
    """One row per model: trials, seconds, the best validation metrics and the settings stored."""
    rows = [
        {
            "model": name,
            "trials": r.n_trials,
            "seconds": round(r.seconds, 1),
            **r.validation,
            "params": r.settings,
        }
        for name, r in results.items()
    ]
    return pd.DataFrame(rows).set_index("model")


def save_studies(
    results: dict[str, TuningResult],
    *,
    output: str | Path,
    write: bool = False,
    config_path: str | Path | None = None,
) -> list[Path]:
    """Save a JSON record per study; with ``write``, store the best parameters in the config.

    Parameters
    ----------
    results : dict
        Model name -> :class:`TuningResult`.
    output : str or Path
        Folder of the JSON records (``<model>-<time>.json``).
    write : bool, default False
        Rewrite the ``models:`` entries of the tuned models in ``config_path``, each with a
        comment saying where its values came from.
    config_path : str or Path, optional
        The run config; ``configs/run.yaml`` by default.

    Returns
    -------
    list of Path
        The records written, then the config when ``write`` is set.
    """
    paths = [save_result(result, output) for result in results.values()]
    if write:
        target = Path(config_path or DEFAULT_CONFIG)
        params = {name: r.settings for name, r in results.items()}
        comments = {name: r.provenance() for name, r in results.items()}
        paths.append(write_best_params(target, params, comments=comments))
    return paths


def save_result(result: TuningResult, folder: str | Path) -> Path:
    """Write ``result`` as ``<folder>/<model>-<time>.json``; returns the path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{result.model}-{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}.json"
    path.write_text(json.dumps(result.to_dict(), indent=2, default=str))
    return path


def _result(
    model: str, study: optuna.Study, metric: str, seconds: float, *, features: str = "search"
) -> TuningResult:
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        raise RuntimeError(
            f"no trial of the {model} study completed ({len(study.trials)} started); "
            "raise the timeout or read the log for the failures"
        )
    best = study.best_trial
    logger.info(
        "%s: best validation %s %.4f (trial %d of %d) with %s",
        model,
        metric,
        best.value,
        best.number,
        len(complete),
        best.params,
    )
    fixed = feature_switches(features) if model == "lightfm" else {}
    return TuningResult(
        model=model,
        params=best_params(model, best.params, features=features),
        searched=dict(best.params),
        settings={**best.params, **fixed},
        metric=metric,
        value=float(best.value),
        validation={k: v for k, v in best.user_attrs.items() if "@" in k},
        trials=study.trials_dataframe(attrs=("number", "state", "value", "params", "user_attrs")),
        n_trials=len(complete),
        seconds=seconds,
        features=features,
    )
