"""Export the models of a run into the BentoML model store, with their provenance.

Each exported model is one entry ``shrek-<model>:<version>`` in the store (``$BENTOML_HOME``,
default ``~/bentoml``). Its folder holds::

    recommender/        the fitted model (Recommender.save)
    popularity/         the cold-start fallback, fitted on the same ratings
    users.parquet       user metadata known at export time (LightFM's cold start)
    provenance.json     the same document as the entry's metadata

Labels (short strings, for ``bentoml models list``) name the run, model, data version, code
version, fairness verdict, the fit that verdict is of (``fairness_of``) and training data; the
metadata holds everything: parameters,
training time, the data version with its source (Kafka offsets when collected from the
stream), offline metrics per evaluated split, the fairness report and the code version.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import shrek
from shrek.errors import ShrekError

logger = logging.getLogger(__name__)

EXPORTABLE: tuple[str, ...] = ("als", "lightfm")
TRAINING_DATA: tuple[str, ...] = ("all", "stratified", "temporal")
RECOMMENDER_DIR = "recommender"
POPULARITY_DIR = "popularity"
USERS_FILE = "users.parquet"
PROVENANCE_FILE = "provenance.json"


class FairnessGateError(ShrekError):
    """A model did not pass the run's fairness gate, or the run has no gate result."""


def store_name(model: str) -> str:
    """The model store name of a Shrek model: ``als`` -> ``shrek-als``."""
    return f"shrek-{model}"


@dataclass(frozen=True)
class ExportedModel:
    """One model written to the store: its tag (the model version) and what it records."""

    tag: str
    model: str
    labels: dict[str, str]
    metadata: dict[str, Any]


def fairness_decision(run_dir: str | Path, model: str, *, force: bool = False) -> dict[str, Any]:
    """The fairness gate's word on ``model`` in ``run_dir/fairness.json``.

    Returns
    -------
    dict
        ``verdict`` (PASS/FAIL/INCONCLUSIVE, or "missing"), ``eligible``, ``gate_mode``,
        ``overridden`` (True when ``force`` let an ineligible model through), ``audited_fit``
        (the run's model folder the audit scored, like ``als_temporal``, or None) and ``report``
        (the model's full fairness report, or None).

    Raises
    ------
    FairnessGateError
        If the run has no ``fairness.json`` or ``model`` is not eligible, unless ``force``.
    """
    path = Path(run_dir) / "fairness.json"
    if not path.exists():
        if not force:
            raise FairnessGateError(
                f"{path} does not exist: run notebook 06_fairness on this run first, or pass "
                "--force to export without a fairness gate (recorded in the model's labels)"
            )
        return {
            "verdict": "missing",
            "eligible": False,
            "gate_mode": None,
            "overridden": True,
            "audited_fit": None,
        }
    summary = json.loads(path.read_text())
    split = summary.get("split")
    eligible = bool(summary.get("eligible", {}).get(model, False))
    verdict = summary.get("verdicts", {}).get(model, "missing")
    if not eligible and not force:
        raise FairnessGateError(
            f"model {model!r} is not eligible under the fairness gate (verdict {verdict}, gate "
            f"mode {summary.get('gate_mode')!r}, see {path}); pass --force to export it anyway"
        )
    return {
        "verdict": verdict,
        "eligible": eligible,
        "gate_mode": summary.get("gate_mode"),
        "overridden": not eligible,
        "audited_fit": f"{model}_{split}" if split else None,
        "report": summary.get("models", {}).get(model),
    }


def export_run(
    run_dir: str | Path,
    *,
    models: Sequence[str] = EXPORTABLE,
    training_data: str = "all",
    force: bool = False,
    show_progress: bool = False,
) -> list[ExportedModel]:
    """Export the chosen models of a run into the BentoML model store.

    Parameters
    ----------
    run_dir : str or Path
        A run folder written by ``shrek run`` (``metrics.json``, ``data/``, ``models/``).
    models : sequence of str, default ("als", "lightfm")
        Which models to export.
    training_data : {"all", "stratified", "temporal"}, default "all"
        ``all`` refits the run's parameters on every rating of the run's dataset, so the
        service knows every user; a split name exports the model fitted on that split's
        training part as evaluated.
    force : bool, default False
        Export models the fairness gate did not pass (or a run without ``fairness.json``);
        the override is recorded in the labels (``fairness=overridden``).
    show_progress : bool, default False
        Show the models' progress bars while refitting.

    Returns
    -------
    list of ExportedModel
        One per model, in the order of ``models``.

    Raises
    ------
    FairnessGateError
        If a model is not eligible under the gate and ``force`` is False; nothing is exported.
    ValueError
        For an unknown model or training data.

    Notes
    -----
    The offline metrics in the metadata are those of the evaluated splits; a model refitted on
    all ratings has no held-out score of its own. Likewise the fairness verdict is that of the
    fit the audit scored (label ``fairness_of``, e.g. ``als_temporal``: the same parameters
    fitted on the temporal split's training part): a refit on all ratings is not audited itself,
    and ``fairness_gate.verdict_is_of_this_fit`` in the metadata says so.
    """
    run_dir = Path(run_dir)
    for model in models:
        if model not in EXPORTABLE:
            raise ValueError(f"models must be among {', '.join(EXPORTABLE)}, got {model!r}")
    if training_data not in TRAINING_DATA:
        raise ValueError(
            f"training_data must be one of {', '.join(TRAINING_DATA)}, got {training_data!r}"
        )
    metrics_path = run_dir / "metrics.json"
    if not metrics_path.exists():
        raise ShrekError(f"{metrics_path} does not exist: is {run_dir} a finished `shrek run`?")

    metrics = json.loads(metrics_path.read_text())
    decisions = {model: fairness_decision(run_dir, model, force=force) for model in models}
    return [
        _export_one(
            run_dir,
            model,
            metrics=metrics,
            fairness=decisions[model],
            training_data=training_data,
            show_progress=show_progress,
        )
        for model in models
    ]


def _export_one(
    run_dir: Path,
    model: str,
    *,
    metrics: dict[str, Any],
    fairness: dict[str, Any],
    training_data: str,
    show_progress: bool,
) -> ExportedModel:
    import bentoml

    from shrek.pipeline.stages import load_dataset

    dataset = load_dataset(run_dir)
    result = metrics.get("models", {}).get(model)
    if result is None:
        raise ShrekError(f"{run_dir / 'metrics.json'} has no results for model {model!r}")
    recommender, popularity, fit_seconds = _fitted(
        run_dir, model, result, dataset, training_data, show_progress=show_progress
    )

    labels = {
        "run_id": str(metrics.get("run_id", run_dir.name)),
        "model": model,
        "data_version": dataset.version.hash,
        "code_version": shrek.code_version(),
        "fairness": "overridden" if fairness["overridden"] else str(fairness["verdict"]),
        "fairness_of": fairness["audited_fit"] or "none",
        "training_data": training_data,
    }
    audited = fairness["audited_fit"]
    fairness = {**fairness, "verdict_is_of_this_fit": audited == f"{model}_{training_data}"}
    metadata = {
        **labels,
        "shrek_version": shrek.__version__,
        "params": recommender.get_params(),
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "fit_seconds": fit_seconds,
        "n_users": recommender.interactions.shape[0],
        "n_items": recommender.interactions.shape[1],
        "data": dataset.version.to_dict(),
        "evaluation": {
            "k": metrics.get("k"),
            "run_code_version": metrics.get("code_version"),
            "splits": result.get("splits", {}),
        },
        "fairness_gate": fairness,
    }
    metadata = _jsonable(metadata)

    with bentoml.models.create(store_name(model), labels=labels, metadata=metadata) as stored:
        folder = Path(stored.path)
        recommender.save(folder / RECOMMENDER_DIR)
        popularity.save(folder / POPULARITY_DIR)
        dataset.users.to_parquet(folder / USERS_FILE, index=False)
        provenance = {"model_version": str(stored.tag), **metadata}
        (folder / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=2))
    logger.info(
        "exported %s as %s (fairness %s, of %s)",
        model,
        stored.tag,
        labels["fairness"],
        labels["fairness_of"],
    )
    return ExportedModel(tag=str(stored.tag), model=model, labels=labels, metadata=metadata)


def _fitted(
    run_dir: Path,
    model: str,
    result: dict[str, Any],
    dataset: Any,
    training_data: str,
    *,
    show_progress: bool,
) -> tuple[Any, Any, float]:
    """The recommender, its popularity fallback and the fit time in seconds."""
    from shrek.models import Interactions, PopularityRecommender, Recommender, make_model
    from shrek.pipeline.stages import load_split

    if training_data != "all":
        folder = run_dir / "models" / f"{model}_{training_data}"
        recommender = Recommender.load(folder)
        train, _ = load_split(run_dir, training_data)
        popularity = PopularityRecommender().fit(Interactions(train))
        fit_seconds = result.get("splits", {}).get(training_data, {}).get("fit_seconds", math.nan)
        return recommender, popularity, float(fit_seconds)

    interactions = Interactions(dataset.ratings)
    recommender = make_model(model, **result.get("params", {}))
    started = time.perf_counter()
    recommender.fit(
        interactions, users=dataset.users, movies=dataset.movies, show_progress=show_progress
    )
    fit_seconds = time.perf_counter() - started
    popularity = PopularityRecommender().fit(interactions)
    return recommender, popularity, fit_seconds


def exported_table(exported: Sequence[ExportedModel]) -> Any:
    """The exported models as a table, for notebooks and reports.

    Returns
    -------
    pandas.DataFrame, shape [n_models, n_labels]
        Indexed by ``tag`` (the model version); one column per label (``run_id``, ``model``,
        ``data_version``, ``code_version``, ``fairness``, ``fairness_of``, ``training_data``).
    """
    import pandas as pd

    rows = [{"tag": item.tag, **item.labels} for item in exported]
    return pd.DataFrame(rows).set_index("tag")


def _jsonable(value: Any) -> Any:
    """``value`` as BentoML metadata accepts it: JSON types, no None or NaN (as strings)."""
    value = json.loads(json.dumps(value, default=str))

    def clean(item: Any) -> Any:
        if isinstance(item, dict):
            return {str(k): clean(v) for k, v in item.items()}
        if isinstance(item, list):
            return [clean(v) for v in item]
        if item is None or (isinstance(item, float) and not math.isfinite(item)):
            return str(item)
        return item

    return clean(value)
