"""Group metrics with fairlearn's MetricFrame, bootstrap intervals and the checks.

:func:`audit_fairness` returns one :class:`~shrek.fairness.report.FairnessReport` per model.
It holds, for each audited feature, every group's mean of every per-user outcome with a
bootstrap interval, the worst-pair difference and ratio with intervals, and the five checks
of :func:`shrek.fairness.checks.default_checks`.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from fairlearn.metrics import MetricFrame, selection_rate

from shrek.fairness._bootstrap import fixed_pair, group_mean_replicates, percentile_interval
from shrek.fairness._validation import require_fraction, require_frame, require_int
from shrek.fairness.checks import (
    CheckResult,
    CheckSpec,
    Status,
    decide,
    default_checks,
    overall_verdict,
)
from shrek.fairness.errors import FairnessWarning
from shrek.fairness.groups import FEATURES, group_order, sensitive_features
from shrek.fairness.outcomes import OUTCOMES, per_user_outcomes
from shrek.fairness.report import Estimate, FairnessReport, GroupAudit

logger = logging.getLogger(__name__)


def audit_fairness(
    outcomes: pd.DataFrame,
    users: pd.DataFrame,
    *,
    model: str = "model",
    features: Sequence[str] = FEATURES,
    min_group_size: int = 30,
    n_boot: int = 1000,
    confidence_level: float = 0.95,
    random_state: int = 0,
    spd_max: float = 0.1,
    dir_min: float = 0.8,
    diversity_ratio_min: float = 0.8,
    personalization_diff_max: float = 0.05,
    ndcg_ratio_min: float = 0.8,
) -> FairnessReport:
    """Compare groups of users on their outcomes and run the fairness checks.

    Parameters
    ----------
    outcomes : pandas.DataFrame, shape [n_users, 1 + len(OUTCOMES)]
        From :func:`shrek.fairness.outcomes.per_user_outcomes`.
    users : pandas.DataFrame, shape [n_all_users, >= 4]
        ``user_id``, ``age``, ``gender``, ``occupation``; see
        :func:`shrek.fairness.groups.sensitive_features`.
    model : str, default "model"
        Name written in the report.
    features : sequence of str, default all four
        Any of ``"gender"``, ``"age_band"``, ``"occupation"``, ``"gender_x_age_band"``.
    min_group_size : int, default 30
        Groups with fewer users are reported and flagged ``small`` but left out of the
        checks: with a handful of users a group's hit rate moves by tens of points.
    n_boot : int, default 1000
        Bootstrap replicates for every interval.
    confidence_level : float, default 0.95
        Coverage of the percentile intervals.
    random_state : int, default 0
        Seed of the bootstrap; the same seed gives the same report.
    spd_max, dir_min, diversity_ratio_min, personalization_diff_max, ndcg_ratio_min : float
        Thresholds of the five checks, see :func:`shrek.fairness.checks.default_checks`.

    Returns
    -------
    FairnessReport

    Raises
    ------
    TypeError, ValueError
        If an input has the wrong type, misses a column or a setting is out of range.

    Warns
    -----
    FairnessWarning
        When users have no value for a feature (e.g. missing gender); they are left out of
        that feature's groups, and the sentence is kept in the report's notes.

    Notes
    -----
    Group means and worst-pair difference and ratio come from fairlearn's ``MetricFrame``
    (hit@k through ``selection_rate``, so its difference is the statistical parity
    difference and its ratio the disparate impact ratio). Intervals come from a stratified
    bootstrap over users, seeded per feature: every group is resampled to its own size, and
    the gap between the two groups that are the extremes of the point estimate is measured
    in each replicate (re-choosing the extremes in every replicate would push the interval
    above the estimate, see :func:`shrek.fairness._bootstrap.fixed_pair`). Calibration is
    averaged over the users who have a training history.

    The worst pair of many groups is biased away from parity: even groups with equal true
    means differ by chance, and the more groups, the larger the largest gap. Checks over
    occupation or gender × age band are therefore stricter than over gender, and more often
    INCONCLUSIVE; raising ``min_group_size`` trades coverage of small groups for power.
    """
    require_frame(outcomes, "outcomes", ["user_id", *OUTCOMES])
    repeated = outcomes["user_id"][outcomes["user_id"].duplicated()]
    if len(repeated):
        raise ValueError(
            f"outcomes must hold one row per user_id, got {len(repeated)} repeated id(s), "
            f"e.g. {repeated.iloc[0]}"
        )
    settings = {
        "min_group_size": require_int(min_group_size, "min_group_size", minimum=1),
        "n_boot": require_int(n_boot, "n_boot", minimum=1),
        "confidence_level": require_fraction(
            confidence_level, "confidence_level", closed_high=False
        ),
        "random_state": require_int(random_state, "random_state", minimum=0),
    }
    specs = default_checks(
        spd_max=spd_max,
        dir_min=dir_min,
        diversity_ratio_min=diversity_ratio_min,
        personalization_diff_max=personalization_diff_max,
        ndcg_ratio_min=ndcg_ratio_min,
    )
    settings["thresholds"] = {spec.name: spec.threshold for spec in specs}
    labels = sensitive_features(users, features=features).reindex(
        pd.Index(outcomes["user_id"].to_numpy(dtype="int64"), name="user_id")
    )

    started = time.perf_counter()
    audits: dict[str, GroupAudit] = {}
    checks: list[CheckResult] = []
    for feature in features:
        audit = _audit_feature(
            outcomes,
            labels[feature],
            feature,
            min_group_size=settings["min_group_size"],
            n_boot=settings["n_boot"],
            confidence_level=settings["confidence_level"],
            random_state=settings["random_state"],
        )
        audits[feature] = audit
        checks.extend(_run_check(spec, audit, settings["min_group_size"]) for spec in specs)
    logger.debug("audited %s in %.2f s", model, time.perf_counter() - started)

    verdict = overall_verdict([result.status for result in checks])
    notes = [note for audit in audits.values() for note in audit.notes]
    logger.info("fairness verdict of %s: %s", model, verdict)
    return FairnessReport(
        model=model,
        k=outcomes.attrs.get("k"),
        n_users=len(outcomes),
        features=audits,
        checks=tuple(checks),
        verdict=verdict,
        settings=settings,
        notes=notes,
    )


def audit_model(
    recommendations: pd.DataFrame,
    rating_true: pd.DataFrame,
    rating_train: pd.DataFrame,
    users: pd.DataFrame,
    movies: pd.DataFrame,
    *,
    k: int = 10,
    model: str = "model",
    **options: Any,
) -> FairnessReport:
    """Measure per-user outcomes of one model's lists, then audit them.

    Parameters
    ----------
    recommendations, rating_true, rating_train, movies, k
        See :func:`shrek.fairness.outcomes.per_user_outcomes`.
    users : pandas.DataFrame
        See :func:`audit_fairness`.
    model : str, default "model"
    **options
        Keyword options of :func:`audit_fairness` (thresholds, ``min_group_size``, ...).

    Returns
    -------
    FairnessReport
    """
    outcomes = per_user_outcomes(recommendations, rating_true, rating_train, movies, k=k)
    return audit_fairness(outcomes, users, model=model, **options)


def _audit_feature(
    outcomes: pd.DataFrame,
    labels: pd.Series,
    feature: str,
    *,
    min_group_size: int,
    n_boot: int,
    confidence_level: float,
    random_state: int,
) -> GroupAudit:
    notes: list[str] = []
    present = labels.notna().to_numpy()
    n_excluded = int((~present).sum())
    if n_excluded:
        note = (
            f"{n_excluded} of {len(labels)} users have no {feature!r} value; they are left out "
            f"of the {feature!r} audit"
        )
        warnings.warn(note, FairnessWarning, stacklevel=3)
        notes.append(note)
    if not present.any():
        undefined = dict.fromkeys(OUTCOMES, Estimate(math.nan, math.nan, math.nan))
        empty = _tidy_groups([], np.zeros(0), min_group_size, *[np.zeros((0, len(OUTCOMES)))] * 3)
        return GroupAudit(feature, empty, (), undefined, dict(undefined), n_excluded, notes)
    values = outcomes.loc[present, list(OUTCOMES)].to_numpy(dtype=float)
    group_of = labels[present].astype(str).to_numpy()
    order = group_order(feature, group_of)
    sizes = pd.Series(group_of).value_counts().reindex(order).to_numpy()
    compared = tuple(g for g, n in zip(order, sizes, strict=True) if n >= min_group_size)
    notes.extend(_small_group_notes(feature, order, sizes, min_group_size))

    means = _metric_frame(values, group_of, feature).by_group.reindex(order)
    rng = np.random.default_rng([random_state, FEATURES.index(feature)])
    codes = pd.Categorical(group_of, categories=order).codes
    replicates = group_mean_replicates(values, codes, len(order), n_boot=n_boot, rng=rng)
    low, high = percentile_interval(replicates, confidence_level)
    by_group = _tidy_groups(order, sizes, min_group_size, means.to_numpy(), low, high)

    in_compared = np.isin(group_of, compared)
    difference, ratio = _worst_pair_estimates(
        values[in_compared],
        group_of[in_compared],
        feature,
        replicates[:, [order.index(g) for g in compared], :],
        confidence_level,
        compared,
    )
    return GroupAudit(feature, by_group, compared, difference, ratio, n_excluded, notes)


def _metric_frame(values: np.ndarray, group_of: np.ndarray, feature: str) -> MetricFrame:
    """MetricFrame of every outcome's mean; hit@k as fairlearn's ``selection_rate``."""
    hits = np.nan_to_num(values[:, OUTCOMES.index("hit_at_k")]).astype(int)
    metrics: dict[str, Any] = {"hit_at_k": selection_rate}
    sample_params: dict[str, dict[str, np.ndarray]] = {}
    for j, name in enumerate(OUTCOMES):
        if name != "hit_at_k":
            metrics[name] = _defined_mean
            sample_params[name] = {"values": values[:, j]}
    return MetricFrame(
        metrics=metrics,
        y_true=np.ones_like(hits),
        y_pred=hits,
        sensitive_features=pd.Series(group_of, name=feature),
        sample_params=sample_params,
    )


def _defined_mean(y_true: np.ndarray, y_pred: np.ndarray, values: np.ndarray) -> float:
    """Mean of the defined (non-NaN) values; NaN when there are none. Ignores y_true, y_pred."""
    defined = np.asarray(values, dtype=float)
    defined = defined[np.isfinite(defined)]
    return float(defined.mean()) if len(defined) else math.nan


def _worst_pair_estimates(
    values: np.ndarray,
    group_of: np.ndarray,
    feature: str,
    replicates: np.ndarray,
    confidence_level: float,
    compared: tuple[str, ...],
) -> tuple[dict[str, Estimate], dict[str, Estimate]]:
    """Worst-pair difference and ratio of every outcome across the compared groups."""
    if len(set(group_of)) < 2:
        undefined = Estimate(math.nan, math.nan, math.nan)
        return dict.fromkeys(OUTCOMES, undefined), dict.fromkeys(OUTCOMES, undefined)
    frame = _metric_frame(values, group_of, feature)
    point_difference = frame.difference(method="between_groups")
    point_ratio = frame.ratio(method="between_groups")
    boot_difference, boot_ratio = fixed_pair(
        replicates, frame.by_group.reindex(list(compared)).to_numpy(dtype=float)
    )
    difference_low, difference_high = percentile_interval(boot_difference, confidence_level)
    ratio_low, ratio_high = percentile_interval(boot_ratio, confidence_level)
    difference, ratio = {}, {}
    for j, name in enumerate(OUTCOMES):
        difference[name] = Estimate(
            float(point_difference[name]), float(difference_low[j]), float(difference_high[j])
        )
        ratio[name] = Estimate(float(point_ratio[name]), float(ratio_low[j]), float(ratio_high[j]))
    return difference, ratio


def _tidy_groups(
    order: list[str],
    sizes: np.ndarray,
    min_group_size: int,
    means: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
) -> pd.DataFrame:
    n_groups, n_outcomes = len(order), len(OUTCOMES)
    return pd.DataFrame(
        {
            "group": np.repeat(np.array(order, dtype=object), n_outcomes),
            "n_users": np.repeat(sizes, n_outcomes).astype("int64"),
            "small": np.repeat(sizes < min_group_size, n_outcomes),
            "metric": np.tile(np.array(OUTCOMES, dtype=object), n_groups),
            "value": means.reshape(-1),
            "low": low.reshape(-1),
            "high": high.reshape(-1),
        }
    )


def _small_group_notes(
    feature: str, order: list[str], sizes: np.ndarray, min_group_size: int
) -> list[str]:
    small = [f"{g!r} ({n})" for g, n in zip(order, sizes, strict=True) if n < min_group_size]
    if not small:
        return []
    return [
        f"{feature!r} groups with fewer than min_group_size={min_group_size} users are "
        f"reported and flagged small but left out of the checks: {', '.join(small)}"
    ]


def _run_check(spec: CheckSpec, audit: GroupAudit, min_group_size: int) -> CheckResult:
    compared = audit.compared
    if len(compared) < 2:
        if compared:
            n = int(audit.by_group.loc[audit.by_group["group"] == compared[0], "n_users"].iloc[0])
            reason = (
                f"{audit.feature}: only one group ({compared[0]!r}, {n} users) has at least "
                f"{min_group_size} users; the check needs two"
            )
        else:
            reason = (
                f"{audit.feature}: no group has at least {min_group_size} users, so there is "
                "nothing to compare"
            )
        return CheckResult(
            spec=spec,
            feature=audit.feature,
            value=math.nan,
            low=math.nan,
            high=math.nan,
            status=Status.NOT_APPLICABLE,
            reason=reason,
            groups=compared,
        )

    estimate = getattr(audit, spec.statistic)[spec.metric]
    means = audit.by_group.loc[audit.by_group["metric"] == spec.metric].set_index("group")
    means = means.loc[list(compared), "value"]
    lowest, highest = str(means.idxmin()), str(means[::-1].idxmax())
    status = decide(estimate.value, estimate.low, estimate.high, spec)
    return CheckResult(
        spec=spec,
        feature=audit.feature,
        value=estimate.value,
        low=estimate.low,
        high=estimate.high,
        status=status,
        reason=_reason(spec, audit.feature, estimate, status, means, lowest, highest),
        groups=compared,
        lowest_group=lowest,
        highest_group=highest,
    )


def _reason(
    spec: CheckSpec,
    feature: str,
    estimate: Estimate,
    status: Status,
    means: pd.Series,
    lowest: str,
    highest: str,
) -> str:
    extremes = f"lowest {lowest!r} {means[lowest]:.3f}, highest {highest!r} {means[highest]:.3f}"
    if math.isnan(estimate.value):
        return (
            f"{feature}: {spec.label} is undefined: {spec.metric} is 0 in every compared "
            "group (0/0)"
        )
    if math.isnan(estimate.low) or math.isnan(estimate.high):
        return f"{feature}: {spec.label} = {estimate.value:.3f} has no defined interval"
    passing = "below" if spec.comparison == "<" else "at or above"
    failing = "at or above" if spec.comparison == "<" else "below"
    relation = {
        Status.PASS: f"entirely {passing}",
        Status.FAIL: f"entirely {failing}",
        Status.INCONCLUSIVE: "straddles",
    }[status]
    return (
        f"{feature}: {spec.label} = {estimate.value:.3f}, interval "
        f"[{estimate.low:.3f}, {estimate.high:.3f}] {relation} {spec.threshold:g} ({extremes})"
    )
