"""Evaluate a fitted model on a test split."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import pandas as pd

from shrek.evaluate.metrics import catalog_coverage, per_user_metrics, summarize
from shrek.models.base import Recommender

logger = logging.getLogger(__name__)


@dataclass
class EvaluationResult:
    """Per-user metrics, their means, catalogue coverage and the recommendations scored.

    Attributes
    ----------
    per_user : pandas.DataFrame
        :func:`~shrek.evaluate.metrics.per_user_metrics` output.
    summary : dict
        Mean metrics, ``n_users`` evaluated, ``n_users_skipped`` (test users the model never
        saw in training), ``coverage@k`` and ``recommend_seconds``.
    recommendations : pandas.DataFrame
        The top-k lists (``user_id``, ``movie_id``, ``score``, ``rank``).
    """

    per_user: pd.DataFrame
    summary: dict[str, float] = field(default_factory=dict)
    recommendations: pd.DataFrame | None = None


def evaluate_model(model: Recommender, test: pd.DataFrame, *, k: int = 10) -> EvaluationResult:
    """Recommend ``k`` unseen movies to every test user the model knows, and score them.

    Parameters
    ----------
    model : Recommender
        A fitted model.
    test : pandas.DataFrame
        Held-out ratings (``user_id``, ``movie_id``, ...); all count as relevant.
    k : int, default 10
        Cut-off.
    """
    known = model.interactions.users
    test_users = test["user_id"].unique()
    users = [u for u in test_users if u in known]
    skipped = len(test_users) - len(users)
    if skipped:
        logger.info("%d test users are not in training and are skipped", skipped)

    started = time.perf_counter()
    recommendations = model.recommend(users, N=k)
    elapsed = time.perf_counter() - started

    per_user = per_user_metrics(test, recommendations, k=k)
    summary = summarize(per_user)
    summary["n_users_skipped"] = int(skipped)
    summary[f"coverage@{k}"] = catalog_coverage(recommendations, model.interactions.shape[1], k=k)
    summary["recommend_seconds"] = elapsed
    return EvaluationResult(per_user=per_user, summary=summary, recommendations=recommendations)
