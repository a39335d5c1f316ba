"""The objective a study maximises: a candidate's nDCG@k on the validation split."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import optuna

from shrek.evaluate import evaluate_model
from shrek.models import make_model
from shrek.tuning.spaces import space_for
from shrek.tuning.validation import TuningData

logger = logging.getLogger(__name__)

#: Metrics a study may maximise (all from :func:`shrek.evaluate.evaluate_model`).
TARGETS: tuple[str, ...] = ("ndcg", "map", "precision", "recall")


class Objective:
    """Fit a candidate of ``model`` on ``data.fit`` and score it on ``data.valid``.

    Parameters
    ----------
    model : {"als", "lightfm"}
        The model searched.
    data : TuningData
        The validation split (drawn from a training part only).
    k : int, default 10
        Cut-off of the metric.
    metric : {"ndcg", "map", "precision", "recall"}, default "ndcg"
        The metric maximised; every metric is stored as a trial user attribute.
    space : callable, optional
        Draws the candidate's keywords from a trial; the model's space by default.

    Notes
    -----
    Each call fits one model from scratch; nothing is shared between trials but the matrix.
    """

    def __init__(
        self,
        model: str,
        data: TuningData,
        *,
        k: int = 10,
        metric: str = "ndcg",
        space: Callable[[optuna.trial.BaseTrial], dict[str, Any]] | None = None,
    ) -> None:
        if metric not in TARGETS:
            raise ValueError(f"metric must be one of {', '.join(TARGETS)}, got {metric!r}")
        if k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        self.model = model
        self.space = space or space_for(model)
        self.data = data
        self.k = k
        self.metric = f"{metric}@{k}"

    def __call__(self, trial: optuna.trial.BaseTrial) -> float:
        params = self.space(trial)
        summary = self.score(params)
        for name, value in summary.items():
            trial.set_user_attr(name, value)
        logger.debug(
            "%s trial %s: %s %.4f", self.model, trial.number, self.metric, summary[self.metric]
        )
        return summary[self.metric]

    def score(self, params: dict[str, Any]) -> dict[str, float]:
        """Fit ``model`` with ``params`` on the fit part; metrics on the validation part.

        Returns
        -------
        dict
            ``precision@k``, ``recall@k``, ``ndcg@k``, ``map@k`` and ``fit_seconds``.
        """
        model = make_model(self.model, **params)
        started = time.perf_counter()
        model.fit(self.data.interactions, users=self.data.users, movies=self.data.movies)
        fit_seconds = time.perf_counter() - started
        summary = evaluate_model(model, self.data.valid, k=self.k).summary
        keep = [f"{name}@{self.k}" for name in TARGETS]
        return {**{name: float(summary[name]) for name in keep}, "fit_seconds": fit_seconds}
