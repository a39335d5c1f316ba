"""Offline evaluation: ranking metrics per user and their summaries."""

from shrek.evaluate.evaluation import EvaluationResult, evaluate_model
from shrek.evaluate.metrics import catalog_coverage, per_user_metrics, summarize

__all__ = [
    "EvaluationResult",
    "catalog_coverage",
    "evaluate_model",
    "per_user_metrics",
    "summarize",
]
