"""Fairness audit: per-user outcomes, group metrics with fairlearn, checks and the export gate.

Typical use, once per model::

    outcomes = per_user_outcomes(recommendations, rating_true, rating_train, movies, k=10)
    report = audit_fairness(outcomes, users, model="als")
    report.checks_table()
    eligible = gate({"als": report}, mode="block")
"""

from shrek.fairness.audit import audit_fairness, audit_model
from shrek.fairness.checks import CheckResult, CheckSpec, Status, default_checks, gate
from shrek.fairness.errors import FairnessGateWarning, FairnessWarning
from shrek.fairness.groups import AGE_BANDS, FEATURES, age_band, sensitive_features
from shrek.fairness.outcomes import OUTCOMES, per_user_outcomes
from shrek.fairness.plots import plot_groups
from shrek.fairness.report import (
    Estimate,
    FairnessReport,
    GroupAudit,
    checks_table,
    fairness_summary,
)

__all__ = [
    "AGE_BANDS",
    "FEATURES",
    "OUTCOMES",
    "CheckResult",
    "CheckSpec",
    "Estimate",
    "FairnessGateWarning",
    "FairnessReport",
    "FairnessWarning",
    "GroupAudit",
    "Status",
    "age_band",
    "audit_fairness",
    "audit_model",
    "checks_table",
    "default_checks",
    "fairness_summary",
    "gate",
    "per_user_outcomes",
    "plot_groups",
    "sensitive_features",
]
