"""Cold start: score models on users held out entirely from training.

A collaborative model such as ALS has no representation for a user it never saw; the popularity
baseline answers everyone with the same list, and LightFM answers from the user's metadata
(age band, gender, occupation). :func:`hold_out_users` removes a share of users from the
ratings and :func:`evaluate_new_users` scores a model's lists for them against all their ratings.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from shrek.evaluate.evaluation import EvaluationResult
from shrek.evaluate.metrics import catalog_coverage, per_user_metrics, summarize
from shrek.models import LightFMRecommender, PopularityRecommender, Recommender

logger = logging.getLogger(__name__)


def hold_out_users(
    ratings: pd.DataFrame, *, fraction: float = 0.1, seed: int = 42
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Move every rating of a random ``fraction`` of users out of the training ratings.

    Parameters
    ----------
    ratings : pandas.DataFrame
        Ratings (``user_id``, ``movie_id``, ...).
    fraction : float, default 0.1
        Share of the users held out, rounded to the nearest whole user (at least one).
    seed : int, default 42
        Seed of the draw of users.

    Returns
    -------
    train, new_users : pandas.DataFrame
        Ratings of the kept users, and all ratings of the held-out users; no user is in both.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be strictly between 0 and 1, got {fraction!r}")
    users = np.sort(ratings["user_id"].unique())
    n_held = max(1, round(fraction * len(users)))
    held = np.random.RandomState(seed).choice(users, size=n_held, replace=False)
    is_new = ratings["user_id"].isin(held)
    logger.info("holding out %d of %d users (%d ratings)", n_held, len(users), int(is_new.sum()))
    return ratings[~is_new], ratings[is_new]


def evaluate_new_users(
    model: Recommender, new_users: pd.DataFrame, users: pd.DataFrame, *, k: int = 10
) -> EvaluationResult:
    """Recommend ``k`` movies to users the model never saw, and score them on all their ratings.

    Parameters
    ----------
    model : PopularityRecommender or LightFMRecommender
        A model fitted without ``new_users``.
    new_users : pandas.DataFrame
        Every rating of the held-out users (all relevant).
    users : pandas.DataFrame
        The users table; the held-out users' rows give LightFM their metadata.
    k : int, default 10
        Cut-off.

    Returns
    -------
    EvaluationResult
        Per-user metrics, their means (with ``coverage@k``) and the lists scored.

    Raises
    ------
    TypeError
        ``model`` has no answer for unseen users (ALS, for instance).

    Notes
    -----
    Held-out users also rated movies the model may not know; those count as relevant and
    cannot be recommended, as in production.
    """
    ids = np.sort(new_users["user_id"].unique())
    seen = [u for u in ids if u in model._fitted().users]
    if seen:
        raise ValueError(
            f"new_users must be absent from training, got {len(seen)} known users "
            f"(first {seen[0]!r})"
        )

    if isinstance(model, LightFMRecommender):
        rows = users[users["user_id"].isin(ids)]
        recommendations = model.recommend_new_users(rows, N=k)
    elif isinstance(model, PopularityRecommender):
        one = model.recommend_new_users(N=k)
        recommendations = pd.DataFrame(
            {
                "user_id": np.repeat(ids, len(one)),
                "movie_id": np.tile(one["movie_id"].to_numpy(), len(ids)),
                "score": np.tile(one["score"].to_numpy(), len(ids)),
                "rank": np.tile(one["rank"].to_numpy(), len(ids)),
            }
        )
    else:
        raise TypeError(
            f"model must answer unseen users (popularity or lightfm), got {model.name!r}: "
            "it has no representation for a user absent from training"
        )

    per_user = per_user_metrics(new_users, recommendations, k=k)
    summary = summarize(per_user)
    summary[f"coverage@{k}"] = catalog_coverage(recommendations, model.interactions.shape[1], k=k)
    return EvaluationResult(per_user=per_user, summary=summary, recommendations=recommendations)
