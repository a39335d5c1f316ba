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
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import shrek
from shrek.config import RunConfig, load_config
from shrek.data import Dataset, load_movielens_100k, stratified_split, temporal_split
from shrek.errors import ShrekWarning
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
    source = load_movielens_100k(config.data.data_dir, rating_scale=config.data.rating_scale)
    dataset = collect_stream(run_dir, source) if config.data.source == "stream" else source
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


def collect_stream(run_dir: Path, source: Dataset) -> Dataset:
    """Replay ``source`` through Kafka, collect it into ``<run_dir>/stream`` and return it.

    The embedded broker is used unless ``SHREK_KAFKA_BOOTSTRAP_SERVERS`` points at a cluster.
    When the stream delivered exactly the source's ratings, they are put back in the source's
    row order so the Recommenders split draws the same rows as on the files.

    Warns
    -----
    SourceOrderWarning
        If a table cannot be put back in the source's order; the warning is also kept in
        the data version's ``source["notes"]``, hence in ``data_version.json`` and
        ``metrics.json``.
    """
    from shrek.stream.job import collect_via_stream
    from shrek.stream.replay import WatchModel

    config = run_config(run_dir)
    collected = collect_via_stream(
        source,
        run_dir / "stream",
        topic=config.data.topic,
        watch_model=WatchModel(watch_fraction=config.data.watch_fraction),
        rating_scale=config.data.rating_scale,
        show_progress=False,
    )
    tables = collected.tables()
    notes = []
    for name, keys in (("ratings", None), ("users", ["user_id"]), ("movies", ["movie_id"])):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            tables[name] = in_source_order(
                tables[name], getattr(source, name), keys=keys, name=name
            )
        for warning in caught:  # shown as usual, and the order ones kept in the version
            if issubclass(warning.category, SourceOrderWarning):
                notes.append(str(warning.message))
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
    version_source = dict(collected.version.source)
    if notes:
        version_source["notes"] = [*version_source.get("notes", []), *notes]
    return Dataset.from_tables(
        **tables, source=version_source, rating_scale=config.data.rating_scale
    )


class SourceOrderWarning(ShrekWarning):
    """A collected table could not be put back in the source's row order: the stratified split
    then draws other rows than the Recommenders protocol draws from the files."""


def in_source_order(
    collected: pd.DataFrame,
    source: pd.DataFrame,
    *,
    keys: list[str] | None = None,
    name: str = "table",
) -> pd.DataFrame:
    """``collected`` in the row order of ``source`` when both hold the same rows, else as is.

    Parameters
    ----------
    collected, source : pandas.DataFrame
        The table as collected from the stream and as loaded from the files.
    keys : list of str, optional
        Columns that identify a row (all columns by default).
    name : str, default "table"
        The table's name, for the warning.

    Warns
    -----
    SourceOrderWarning
        When the order cannot be restored, saying why; ``collected`` is returned as is.
    """
    keys = keys or list(source.columns)
    if len(collected) != len(source) or list(collected.columns) != list(source.columns):
        reason = (
            f"the stream gave {len(collected)} rows with columns {list(collected.columns)}, "
            f"the files {len(source)} with {list(source.columns)}"
        )
    else:
        position = pd.Series(np.arange(len(source)), index=pd.MultiIndex.from_frame(source[keys]))
        order = None
        if position.index.is_unique:
            order = position.reindex(pd.MultiIndex.from_frame(collected[keys]))
        if order is None:
            reason = f"the files' {keys} do not identify their rows (duplicates)"
        elif order.isna().any():
            reason = f"{int(order.isna().sum())} collected rows have {keys} the files lack"
        else:
            reordered = collected.iloc[np.argsort(order.to_numpy(), kind="stable")]
            reordered = reordered.reset_index(drop=True)
            if reordered.equals(source.reset_index(drop=True)):
                return reordered
            reason = "some rows differ between the stream and the files"
    warnings.warn(
        f"{name} collected from the stream kept in the collected order: {reason}. The "
        "stratified split then draws other rows than the Recommenders protocol does on the "
        "files",
        SourceOrderWarning,
        stacklevel=2,
    )
    return collected


def collection_summary(run_dir: str | Path) -> pd.DataFrame:
    """What the collector of a run saw: counters, lag and offsets (a note for file runs).

    The folder is opened read-only (no lock taken, nothing deleted), so this also reports on
    a collector that is still running. The counters are those of
    :class:`shrek.stream.collector.CollectorStats`: every line once, events whose user or movie
    the metadata API reports unknown counted as quarantined, like :func:`quarantine_reasons`.

    Returns
    -------
    pandas.DataFrame
        ``[n_counters, 2]``: counter, value (``lag`` is empty when it was never measured).
    """
    from shrek.stream import tables

    store = _open_collector_folder(run_dir)
    if store is None:
        return pd.DataFrame({"note": ["this run read the files directly (data.source: files)"]})
    try:
        counters = tables.report_counters(store, tables.unknown_ids(store))
        pending = sum(status == "pending" for status, _ in store.metadata().values())
        rows = [{"counter": name, "value": value} for name, value in counters.items()]
        rows += [
            {"counter": "lag", "value": store.lag()},
            {"counter": "pending metadata", "value": pending},
        ]
        rows += [
            {"counter": f"next offset, partition {p}", "value": o}
            for p, o in sorted(store.next_offsets().items())
        ]
    finally:
        store.close()
    return pd.DataFrame(rows).astype({"value": "Int64"})


def quarantine_reasons(run_dir: str | Path) -> pd.DataFrame:
    """Quarantined lines of a run's collector, counted by reason (duplicates and events of
    unknown users or movies included); the folder is opened read-only."""
    from shrek.stream import tables

    store = _open_collector_folder(run_dir)
    if store is None:
        return pd.DataFrame(columns=["reason", "lines"])
    try:
        quarantine = tables.quarantine(store, tables.unknown_ids(store))
    finally:
        store.close()
    if quarantine.empty:
        return pd.DataFrame(columns=["reason", "lines"])
    counts = quarantine.groupby("reason").size().sort_values(ascending=False)
    return counts.rename("lines").reset_index()


def _open_collector_folder(run_dir: str | Path) -> Any:
    """The run's collector folder opened read-only, or None when the run read files."""
    from shrek.stream.store import CollectorStore

    folder = Path(run_dir) / "stream"
    if not (folder / "state.sqlite").exists():
        return None
    return CollectorStore(folder, topic=run_config(run_dir).data.topic, read_only=True)


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
