"""Shrek's ALS wrapper against raw ``implicit`` on the same matrix and settings, in one run.

Prints the time of fit and of batch recommend (all users, N=10) for both, the ratio
Shrek / raw (target: within 10%, i.e. ratio ≤ 1.10), and the peak Python memory of each.
Runs on MovieLens 100K when ``SHREK_DATA_DIR`` is set, else on a synthetic matrix of the
same size.

    .venv/bin/python benchmarks/bench_als.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import tracemalloc
import warnings

import numpy as np
import pandas as pd
import scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares
from threadpoolctl import threadpool_limits

from shrek.models import ALSRecommender, Interactions
from shrek.models.als import confidence_weights

PARAMS = {"factors": 64, "regularization": 0.05, "iterations": 15, "alpha": 1.0}


def ratings_frame() -> tuple[pd.DataFrame, str]:
    if os.environ.get("SHREK_DATA_DIR"):
        from shrek.data import load_movielens_100k

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return load_movielens_100k().ratings, "MovieLens 100K"
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "user_id": rng.integers(1, 944, 100_000),
            "movie_id": [f"m+{i}" for i in rng.zipf(1.3, 100_000) % 1682],
            "rating": rng.integers(1, 6, 100_000),
        }
    ).drop_duplicates(["user_id", "movie_id"])
    return frame, "synthetic 943 x 1682"


def measure(fn) -> tuple[float, int]:
    """Seconds of one call (untraced), then the peak traced bytes of another."""
    started = time.perf_counter()
    fn()
    elapsed = time.perf_counter() - started
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return elapsed, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="Runs of each; the median is shown.")
    args = parser.parse_args()

    ratings, label = ratings_frame()
    interactions = Interactions(ratings)
    user_items = interactions.user_items
    confidence = confidence_weights(user_items, weighting="binary")
    userids = np.arange(user_items.shape[0])
    shrek_users = interactions.users.ids

    def raw_fit():
        with threadpool_limits(1, "blas"):
            model = AlternatingLeastSquares(**PARAMS, random_state=42, num_threads=1)
            model.fit(confidence, show_progress=False)
        return model

    def shrek_fit():
        model = ALSRecommender(**PARAMS, weighting="binary", random_state=42, num_threads=1)
        return model.fit(interactions)

    raw_model, shrek_model = raw_fit(), shrek_fit()
    seen = sp.csr_matrix(user_items)
    cases = {
        "fit": (raw_fit, shrek_fit),
        "recommend": (
            lambda: raw_model.recommend(userids, seen[userids], N=10),
            lambda: shrek_model.recommend(shrek_users, N=10),
        ),
    }
    print(
        f"ALS on {label}: {user_items.shape[0]} users x {user_items.shape[1]} items, "
        f"{user_items.nnz} ratings, {args.repeats} repeats (median)"
    )
    print(
        f"{'step':<10} {'raw s':>9} {'shrek s':>9} {'ratio':>7} {'raw peak MB':>12} "
        f"{'shrek peak MB':>14}"
    )
    for step, (raw, ours) in cases.items():
        raw(), ours()  # warm up caches and thread pools for both
        raw_runs, our_runs = [], []
        for _ in range(args.repeats):  # interleaved, so drifts of the machine hit both alike
            raw_runs.append(measure(raw))
            our_runs.append(measure(ours))
        raw_s = statistics.median(t for t, _ in raw_runs)
        our_s = statistics.median(t for t, _ in our_runs)
        raw_mb = max(m for _, m in raw_runs) / 1e6
        our_mb = max(m for _, m in our_runs) / 1e6
        verdict = "ok" if our_s / raw_s <= 1.10 else "over target"
        print(
            f"{step:<10} {raw_s:9.4f} {our_s:9.4f} {our_s / raw_s:7.2f} {raw_mb:12.1f} "
            f"{our_mb:14.1f}  {verdict}"
        )


if __name__ == "__main__":
    main()
