"""Shrek's ALS wrapper against raw ``implicit`` on the same matrix and settings, in one run.

Prints the median time of fit and of batch recommend (all users, N=10) for both, the median
of the per-repeat ratios Shrek / raw (target: within 10%, i.e. ratio ≤ 1.10) with their range,
and the peak Python memory of each. Each repeat times one pair of runs, and the pairs alternate
which of the two goes first, so an advantage of running first or second (caches, the CPU's
clock, a neighbour on a shared machine) falls on both alike. Runs on MovieLens 100K when
``SHREK_DATA_DIR`` is set, else on a synthetic matrix of the same size.

    .venv/bin/python benchmarks/bench_als.py [--repeats 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import tracemalloc
import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd
import scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares
from threadpoolctl import threadpool_limits

from shrek.models import ALSRecommender, Interactions
from shrek.models.als import confidence_weights

PARAMS = {"factors": 64, "regularization": 0.05, "iterations": 15, "alpha": 1.0}


def ratings_frame() -> tuple[pd.DataFrame, str]:
    """The ratings benchmarked and their label (MovieLens 100K, else synthetic)."""
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


def seconds(fn: Callable[[], object]) -> float:
    """Wall seconds of one call of ``fn``."""
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def peak_bytes(fn: Callable[[], object]) -> int:
    """Peak bytes traced by ``tracemalloc`` during one call of ``fn`` (timed apart from it)."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def compare(
    raw: Callable[[], object], ours: Callable[[], object], *, repeats: int
) -> dict[str, float]:
    """Median seconds of each, median and range of the per-pair ratios, peak memory of each.

    Repeat ``i`` runs ``raw`` first when ``i`` is even and ``ours`` first when it is odd.
    """
    raw(), ours()  # warm up caches and thread pools for both
    raw_s, our_s = [], []
    for repeat in range(repeats):
        if repeat % 2 == 0:
            raw_s.append(seconds(raw))
            our_s.append(seconds(ours))
        else:
            our_s.append(seconds(ours))
            raw_s.append(seconds(raw))
    ratios = [ours_ / raw_ for ours_, raw_ in zip(our_s, raw_s, strict=True)]
    return {
        "raw_s": statistics.median(raw_s),
        "our_s": statistics.median(our_s),
        "ratio": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "raw_mb": peak_bytes(raw) / 1e6,
        "our_mb": peak_bytes(ours) / 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--repeats",
        type=int,
        default=20,
        help="Timed pairs per step, alternating which goes first.",
    )
    args = parser.parse_args()

    ratings, label = ratings_frame()
    interactions = Interactions(ratings)
    user_items = interactions.user_items
    confidence = confidence_weights(user_items, weighting="binary")
    userids = np.arange(user_items.shape[0])
    shrek_users = interactions.users.ids

    def raw_fit() -> AlternatingLeastSquares:
        with threadpool_limits(1, "blas"):
            model = AlternatingLeastSquares(**PARAMS, random_state=42, num_threads=1)
            model.fit(confidence, show_progress=False)
        return model

    def shrek_fit() -> ALSRecommender:
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
        f"{user_items.nnz} ratings; {args.repeats} timed pairs per step, alternating which runs "
        "first (medians)"
    )
    print(
        f"{'step':<10} {'raw s':>9} {'shrek s':>9} {'ratio':>7} {'ratio range':>13} "
        f"{'raw peak MB':>12} {'shrek peak MB':>14}"
    )
    for step, (raw, ours) in cases.items():
        r = compare(raw, ours, repeats=args.repeats)
        verdict = "ok" if r["ratio"] <= 1.10 else "over target"
        spread = f"{r['ratio_min']:.2f}–{r['ratio_max']:.2f}"
        print(
            f"{step:<10} {r['raw_s']:9.4f} {r['our_s']:9.4f} {r['ratio']:7.2f} {spread:>13} "
            f"{r['raw_mb']:12.1f} {r['our_mb']:14.1f}  {verdict}"
        )


if __name__ == "__main__":
    main()
