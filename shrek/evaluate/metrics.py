"""Ranking metrics, computed per user so later audits can slice them.

The vocabulary follows Microsoft Recommenders: ``rating_true`` holds the held-out ratings (every
one counts as relevant, binary gain), ``rating_pred`` the ranked recommendations. Users are those
in both frames; a user's metrics use their first ``k`` recommendations.

=================  =========================================================================
metric             per user
=================  =========================================================================
precision@k        hits in the top k / k
recall@k           hits in the top k / relevant movies
ndcg@k             DCG of the top k / DCG of an ideal list (min(k, relevant) hits first)
map@k              sum of precision@i at each hit i ≤ k / min(k, relevant)
hit_rate@k         1 when the top k holds at least one relevant movie, else 0
=================  =========================================================================
"""

from __future__ import annotations

import numpy as np
import pandas as pd

METRICS = ("precision", "recall", "ndcg", "map", "hit_rate")


def per_user_metrics(
    rating_true: pd.DataFrame, rating_pred: pd.DataFrame, *, k: int = 10
) -> pd.DataFrame:
    """Every metric of this module for every user in both frames.

    Parameters
    ----------
    rating_true : pandas.DataFrame
        Columns ``user_id``, ``movie_id``: the relevant movies.
    rating_pred : pandas.DataFrame
        Columns ``user_id``, ``movie_id``, ``rank`` (1 = best).
    k : int, default 10
        Cut-off.

    Returns
    -------
    pandas.DataFrame
        One row per user: ``user_id``, ``n_relevant``, ``hits`` and ``precision@k``,
        ``recall@k``, ``ndcg@k``, ``map@k``, ``hit_rate@k``.
    """
    if k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    true = rating_true[["user_id", "movie_id"]].drop_duplicates()
    pred = rating_pred.loc[rating_pred["rank"] <= k, ["user_id", "movie_id", "rank"]]
    users = np.intersect1d(true["user_id"].unique(), pred["user_id"].unique())
    true = true[true["user_id"].isin(users)]
    pred = pred[pred["user_id"].isin(users)]

    n_relevant = true.groupby("user_id").size().reindex(users).to_numpy()
    hits = pred.merge(true.assign(relevant=1), on=["user_id", "movie_id"], how="inner")
    hits = hits.sort_values(["user_id", "rank"], kind="stable")
    hits["gain"] = 1 / np.log2(hits["rank"] + 1)
    hits["precision_at_hit"] = (hits.groupby("user_id").cumcount() + 1) / hits["rank"]
    by_user = hits.groupby("user_id").agg(
        hits=("relevant", "sum"), dcg=("gain", "sum"), ap=("precision_at_hit", "sum")
    )
    by_user = by_user.reindex(users, fill_value=0)

    discounts = np.cumsum(1 / np.log2(np.arange(2, k + 2)))
    ideal = np.minimum(n_relevant, k)
    frame = pd.DataFrame({"user_id": users, "n_relevant": n_relevant})
    frame["hits"] = by_user["hits"].to_numpy().astype(np.int64)
    frame[f"precision@{k}"] = frame["hits"] / k
    frame[f"recall@{k}"] = frame["hits"] / n_relevant
    frame[f"ndcg@{k}"] = by_user["dcg"].to_numpy() / discounts[ideal - 1]
    frame[f"map@{k}"] = by_user["ap"].to_numpy() / ideal
    frame[f"hit_rate@{k}"] = (frame["hits"] > 0).astype(np.float64)
    return frame


def summarize(per_user: pd.DataFrame) -> dict[str, float]:
    """Mean of each metric column of :func:`per_user_metrics` over users."""
    columns = [c for c in per_user.columns if "@" in c]
    summary = {column: float(per_user[column].mean()) for column in columns}
    summary["n_users"] = int(len(per_user))
    return summary


def catalog_coverage(rating_pred: pd.DataFrame, n_items: int, *, k: int = 10) -> float:
    """Share of the ``n_items`` catalogue that appears in at least one top-``k`` list."""
    if n_items < 1:
        raise ValueError(f"n_items must be a positive integer, got {n_items!r}")
    shown = rating_pred.loc[rating_pred["rank"] <= k, "movie_id"].nunique()
    return shown / n_items
