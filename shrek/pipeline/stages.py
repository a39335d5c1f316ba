"""The steps the pipeline's notebooks call, one per cell; each reads and writes the run folder.

Layout of a run folder::

    config.yaml                 settings of the run
    data/                       the four tables (Parquet) and data_version.json
    data/splits/<split>_{train,test}.parquet
    models/<model>_<split>/     fitted models
    results/<model>.json        summaries, parameters and timings per split
    results/<model>_<split>_per_user.parquet
    figures/*.png
    metrics.json                everything in results/, with data and code versions
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import pandas as pd

import shrek
from shrek.config import RunConfig, load_config
from shrek.data import Dataset, load_movielens_100k, stratified_split, temporal_split
from shrek.evaluate import evaluate_model
from shrek.models import Interactions, make_model

logger = logging.getLogger(__name__)

SPLITS = ("stratified", "temporal")


def run_config(run_dir: str | Path) -> RunConfig:
    """The settings of a run (``config.yaml`` in its folder, else the defaults)."""
    path = Path(run_dir) / "config.yaml"
    return load_config(path if path.exists() else None)


def prepare_data(run_dir: str | Path) -> pd.DataFrame:
    """Load the run's dataset, store it and both splits in the run folder.

    Returns
    -------
    pandas.DataFrame
        Rows per table and split, with the data version.
    """
    run_dir = Path(run_dir)
    config = run_config(run_dir)
    if config.data.source != "files":
        raise ValueError(f"data.source must be 'files' for now, got {config.data.source!r}")
    dataset = load_movielens_100k(config.data.data_dir, rating_scale=config.data.rating_scale)
    dataset.save(run_dir / "data")

    splits_dir = run_dir / "data" / "splits"
    splits_dir.mkdir(parents=True, exist_ok=True)
    s = config.splits
    made = {
        "stratified": stratified_split(
            dataset.ratings,
            ratio=s.stratified.ratio,
            filter_by=s.stratified.filter_by,
            seed=s.stratified.seed,
        ),
        "temporal": temporal_split(dataset.ratings, test_fraction=s.temporal.test_fraction),
    }
    rows = [{"table": name, "rows": n} for name, n in dataset.version.rows.items()]
    for name, (train, test) in made.items():
        train.to_parquet(splits_dir / f"{name}_train.parquet", index=False)
        test.to_parquet(splits_dir / f"{name}_test.parquet", index=False)
        rows += [
            {"table": f"{name} train", "rows": len(train)},
            {"table": f"{name} test", "rows": len(test)},
        ]
    summary = pd.DataFrame(rows)
    summary["data_version"] = dataset.version.hash
    return summary


def load_dataset(run_dir: str | Path) -> Dataset:
    """The dataset :func:`prepare_data` stored in the run folder."""
    return Dataset.load(Path(run_dir) / "data")


def load_split(run_dir: str | Path, split: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train and test ratings of ``split`` (``stratified`` or ``temporal``)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    folder = Path(run_dir) / "data" / "splits"
    return (
        pd.read_parquet(folder / f"{split}_train.parquet"),
        pd.read_parquet(folder / f"{split}_test.parquet"),
    )


def train_and_evaluate(
    run_dir: str | Path, model_name: str, *, show_progress: bool = False
) -> pd.DataFrame:
    """Fit ``model_name`` with the run's parameters on each split, evaluate, save everything.

    Returns
    -------
    pandas.DataFrame
        One row per split: the mean metrics, ``fit_seconds`` and ``recommend_seconds``.
    """
    run_dir = Path(run_dir)
    config = run_config(run_dir)
    params = config.models.get(model_name, {})
    dataset = load_dataset(run_dir)
    k = config.evaluation.k
    result: dict[str, Any] = {"model": model_name, "params": params, "splits": {}}
    for split in SPLITS:
        train, test = load_split(run_dir, split)
        model = make_model(model_name, **params)
        started = time.perf_counter()
        model.fit(
            Interactions(train),
            users=dataset.users,
            movies=dataset.movies,
            show_progress=show_progress,
        )
        fit_seconds = time.perf_counter() - started
        evaluation = evaluate_model(model, test, k=k)
        model.save(run_dir / "models" / f"{model_name}_{split}")
        (run_dir / "results").mkdir(exist_ok=True)
        evaluation.per_user.to_parquet(
            run_dir / "results" / f"{model_name}_{split}_per_user.parquet", index=False
        )
        summary = {**evaluation.summary, "fit_seconds": fit_seconds}
        result["splits"][split] = summary
        logger.info("%s on %s: ndcg@%d %.4f", model_name, split, k, summary[f"ndcg@{k}"])
    (run_dir / "results" / f"{model_name}.json").write_text(json.dumps(result, indent=2))
    return pd.DataFrame(result["splits"]).T.rename_axis("split")


def compare(run_dir: str | Path) -> pd.DataFrame:
    """Gather every model's results into ``metrics.json`` and return the comparison table.

    Returns
    -------
    pandas.DataFrame
        Index (split, model); precision, recall, nDCG and MAP at k, coverage and timings.
    """
    run_dir = Path(run_dir)
    config = run_config(run_dir)
    dataset_version = json.loads((run_dir / "data" / "data_version.json").read_text())
    models = {}
    for path in sorted((run_dir / "results").glob("*.json")):
        result = json.loads(path.read_text())
        models[result["model"]] = result
    metrics = {
        "run_id": run_dir.name,
        "code_version": shrek.code_version(),
        "shrek_version": shrek.__version__,
        "data_version": dataset_version,
        "k": config.evaluation.k,
        "config": config.model_dump(mode="json"),
        "models": models,
    }
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str))
    return comparison_table(metrics)


def comparison_table(metrics: dict[str, Any]) -> pd.DataFrame:
    """The (split, model) × metric table of a ``metrics.json`` document."""
    k = metrics["k"]
    columns = [f"precision@{k}", f"recall@{k}", f"ndcg@{k}", f"map@{k}", f"coverage@{k}"]
    rows = []
    for model, result in metrics["models"].items():
        for split, summary in result["splits"].items():
            row = {"split": split, "model": model}
            row.update({c: summary[c] for c in columns})
            row["fit_seconds"] = summary["fit_seconds"]
            rows.append(row)
    order = {name: i for i, name in enumerate(["popularity", "als", "lightfm"])}
    table = pd.DataFrame(rows)
    table = table.sort_values(
        ["split", "model"], key=lambda s: s.map(order).fillna(99) if s.name == "model" else s
    )
    return table.set_index(["split", "model"])
