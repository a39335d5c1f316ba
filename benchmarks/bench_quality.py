"""Shrek's models beside the published Microsoft Recommenders MovieLens 100K table, in one run.

Prints, at k = 10, precision, recall, nDCG and MAP of the popularity baseline, ALS and LightFM
(the run config's saved parameters, LightFM with and without its user/movie features):

1. on the Recommenders protocol (75/25 per movie, seed 42), beside the published rows;
2. on the temporal split (each user's latest 20% held out);
3. on users held out entirely from training (cold start; 10% of users, seeded), where ALS has
   no answer; with LightFM's default settings (features on) besides the saved ones.

Each row shows the fit time, the total time (fit and evaluation) and the peak memory traced by
``tracemalloc`` during both; times are measured with tracing on, so they include its overhead.
Nothing here asserts a time.

    SHREK_DATA_DIR=../shared/datasets .venv/bin/python benchmarks/bench_quality.py

Published rows: the "Algorithm Comparison" table of the Recommenders README
(https://github.com/recommenders-team/recommenders, README.md at commit 005dcd06bd32, from the
benchmark notebook examples/06_benchmarks/movielens.ipynb). Its MAP is Recommenders' ``map``:
average precision over the top k divided by *all* of a user's relevant movies. Shrek's
``map@10`` divides by min(k, relevant), so the table shows both; compare the published MAP with
``map (recs)``.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shrek.config import load_config
from shrek.data import Dataset, load_movielens_100k, stratified_split, temporal_split
from shrek.evaluate import EvaluationResult, evaluate_model
from shrek.evaluate.cold_start import evaluate_new_users, hold_out_users
from shrek.models import Interactions, make_model

K = 10
#: Row label -> (model name, constructor keywords).
Rows = dict[str, tuple[str, dict[str, Any]]]
COLUMNS = ["precision@10", "recall@10", "ndcg@10", "map@10", "map (recs)"]
#: Recommenders README, "Algorithm Comparison", MovieLens 100K, k = 10 (MAP as defined there).
PUBLISHED = pd.DataFrame(
    [
        ("BiVAE", 0.411771, 0.219145, 0.475077, 0.146126),
        ("BPR", 0.388229, 0.212522, 0.441997, 0.132478),
        ("LightGCN", 0.379626, 0.144336, 0.419846, 0.088526),
        ("SAR", 0.330753, 0.176385, 0.382461, 0.110591),
        ("ALS (Spark, explicit)", 0.048462, 0.017796, 0.044239, 0.004732),
    ],
    columns=["model", "precision@10", "recall@10", "ndcg@10", "map (recs)"],
)


def recommenders_map(per_user: pd.DataFrame) -> float:
    """Recommenders' ``map``: Shrek's per-user AP@k rescaled to divide by all relevant movies."""
    ap_sum = per_user[f"map@{K}"] * np.minimum(per_user["n_relevant"], K)
    return float((ap_sum / per_user["n_relevant"]).mean())


def measured(run: Callable[[], tuple[float, EvaluationResult]]) -> dict[str, Any]:
    """Run ``run`` (returns fit seconds and an evaluation) under tracemalloc; one table row."""
    tracemalloc.start()
    started = time.perf_counter()
    fit_seconds, result = run()
    total = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    row = {c: result.summary[c] for c in COLUMNS[:4]}
    row["map (recs)"] = recommenders_map(result.per_user)
    row.update(fit_s=fit_seconds, total_s=total, peak_mib=peak / 2**20)
    return row


def variants(models: dict[str, dict[str, Any]]) -> Rows:
    """Row label -> (model name, parameters): the saved ones, and LightFM with/without features."""
    lightfm = models.get("lightfm", {})
    features = lightfm.get("use_user_features", True), lightfm.get("use_item_features", True)
    saved = (
        "with features"
        if all(features)
        else "without features"
        if not any(features)
        else (f"user features {features[0]}, movie features {features[1]}")
    )
    rows = {
        "popularity": ("popularity", {}),
        "als": ("als", models.get("als", {})),
        f"lightfm (saved: {saved})": ("lightfm", lightfm),
    }
    if not all(features):
        rows["lightfm with features"] = (
            "lightfm",
            {**lightfm, "use_user_features": True, "use_item_features": True},
        )
    if any(features):
        rows["lightfm without features"] = (
            "lightfm",
            {**lightfm, "use_user_features": False, "use_item_features": False},
        )
    return rows


def split_table(
    dataset: Dataset, train: pd.DataFrame, test: pd.DataFrame, rows: Rows
) -> pd.DataFrame:
    """Fit every row's model on ``train``, evaluate on ``test``."""
    table = {}
    for label, (name, params) in rows.items():

        def run(
            name: str = name, params: dict[str, Any] = params
        ) -> tuple[float, EvaluationResult]:
            model = make_model(name, **params)
            started = time.perf_counter()
            model.fit(Interactions(train), users=dataset.users, movies=dataset.movies)
            fit_seconds = time.perf_counter() - started
            return fit_seconds, evaluate_model(model, test, k=K)

        table[label] = measured(run)
        print(f"  {label}: ndcg@10 {table[label]['ndcg@10']:.4f}", flush=True)
    return pd.DataFrame(table).T


def cold_start_table(dataset: Dataset, rows: Rows, *, fraction: float, seed: int) -> pd.DataFrame:
    """Hold out ``fraction`` of users; popularity and LightFM answer them, ALS cannot.

    Adds LightFM's default settings with features, beside the saved ones (the realdata
    cold-start test checks the saved ones).
    """
    train, new_users = hold_out_users(dataset.ratings, fraction=fraction, seed=seed)
    rows = {**rows, "lightfm (default settings, with features)": ("lightfm", {})}
    table = {}
    for label, (name, params) in rows.items():
        if name == "als":
            continue

        def run(
            name: str = name, params: dict[str, Any] = params
        ) -> tuple[float, EvaluationResult]:
            model = make_model(name, **params)
            started = time.perf_counter()
            model.fit(Interactions(train), users=dataset.users, movies=dataset.movies)
            fit_seconds = time.perf_counter() - started
            return fit_seconds, evaluate_new_users(model, new_users, dataset.users, k=K)

        table[label] = measured(run)
        print(f"  {label}: ndcg@10 {table[label]['ndcg@10']:.4f}", flush=True)
    frame = pd.DataFrame(table).T
    frame.loc["als (no answer for unseen users)"] = np.nan
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=None, help="Run settings (YAML).")
    parser.add_argument("--cold-fraction", type=float, default=0.1, help="Share of users held out.")
    parser.add_argument("--cold-seed", type=int, default=42, help="Seed of the held-out users.")
    args = parser.parse_args()

    config = load_config(args.config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dataset = load_movielens_100k(config.data.data_dir)
    rows = variants(config.models)
    s = config.splits

    print("Recommenders protocol (stratified 75/25 by movie, seed 42), k = 10", flush=True)
    train, test = stratified_split(
        dataset.ratings,
        ratio=s.stratified.ratio,
        filter_by=s.stratified.filter_by,
        seed=s.stratified.seed,
    )
    shrek_rows = split_table(dataset, train, test, rows)
    published = PUBLISHED.set_index("model").rename(index=lambda m: f"published: {m}")
    stratified = pd.concat([shrek_rows, published])[[*COLUMNS, "fit_s", "total_s", "peak_mib"]]

    print("Temporal split (each user's latest 20%), k = 10", flush=True)
    train, test = temporal_split(dataset.ratings, test_fraction=s.temporal.test_fraction)
    temporal = split_table(dataset, train, test, rows)

    print(f"Cold start ({args.cold_fraction:.0%} of users held out, seed {args.cold_seed})")
    cold = cold_start_table(dataset, rows, fraction=args.cold_fraction, seed=args.cold_seed)

    fmt = {"float_format": lambda v: f"{v:.4f}", "na_rep": "—"}
    for title, table in [
        ("Recommenders protocol, k = 10 (published rows: Recommenders README)", stratified),
        ("Temporal split, k = 10", temporal),
        ("Cold start: users absent from training, k = 10", cold),
    ]:
        print(f"\n{title}")
        print(table.to_string(**fmt))
    print("\nmap@10: Shrek's (AP over min(k, relevant)); map (recs): Recommenders' definition.")
    print("fit_s, total_s: seconds with tracemalloc on; peak_mib: peak traced memory (MiB).")


if __name__ == "__main__":
    main()
