"""The fairness checks, their verdicts and the export gate.

Every check compares the groups of one feature on one outcome with one statistic. With more
than two groups it compares the worst pair: the difference is the highest group mean minus
the lowest, the ratio the lowest over the highest. These are fairlearn's
``MetricFrame.difference(method="between_groups")`` and ``MetricFrame.ratio(...)``, so a
check passes only if every pair of groups passes it.

A check is decided on its bootstrap interval, never on the point estimate alone. It PASSES
when the whole interval is on the passing side of the threshold (below it for ``value < t``,
at or above it for ``value >= t``), FAILS when the whole interval is on the other side, and is
INCONCLUSIVE when the interval straddles the threshold or is undefined (a ratio 0/0). A check
that cannot be made, because fewer than two groups are large enough to compare, is
NOT_APPLICABLE. No status is ever NaN, and each comes with a one-line reason.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Literal

from shrek.fairness._validation import require_choice, require_fraction
from shrek.fairness.errors import FairnessGateWarning

if TYPE_CHECKING:
    from shrek.fairness.report import FairnessReport

logger = logging.getLogger(__name__)

GATE_MODES: tuple[str, ...] = ("block", "warn")
CHECK_LABELS: dict[str, str] = {
    "statistical_parity": "|SPD| of hit_at_k",
    "disparate_impact": "DIR of hit_at_k",
    "diversity_parity": "diversity ratio",
    "personalization_parity": "personalization difference",
    "quality_parity": "nDCG@k ratio",
}


class Status(StrEnum):
    """Outcome of one check or of a whole audit; a ``str``, so it serialises as text."""

    PASS = "PASS"
    FAIL = "FAIL"
    INCONCLUSIVE = "INCONCLUSIVE"
    NOT_APPLICABLE = "NOT_APPLICABLE"


@dataclass(frozen=True)
class CheckSpec:
    """One check: compare groups on ``metric`` with ``statistic`` against ``threshold``.

    Parameters
    ----------
    name : str
        Short name, e.g. ``"statistical_parity"``.
    metric : str
        The per-user outcome compared, one of :data:`shrek.fairness.outcomes.OUTCOMES`.
    statistic : {"difference", "ratio"}
        Highest minus lowest group mean, or lowest over highest.
    comparison : {"<", ">="}
        How a passing value relates to ``threshold``.
    threshold : float
        The bound.
    label : str
        How the reason names the statistic, e.g. ``"|SPD| of hit_at_k"``.
    """

    name: str
    metric: str
    statistic: Literal["difference", "ratio"]
    comparison: Literal["<", ">="]
    threshold: float
    label: str

    def passes(self, value: float) -> bool:
        """Whether ``value`` is on the passing side of the threshold."""
        if self.comparison == "<":
            return value < self.threshold
        return value >= self.threshold


@dataclass(frozen=True)
class CheckResult:
    """The decision of one check on one feature.

    ``value``, ``low`` and ``high`` are NaN when undefined; ``status`` and ``reason`` never are.
    """

    spec: CheckSpec
    feature: str
    value: float
    low: float
    high: float
    status: Status
    reason: str
    groups: tuple[str, ...]
    lowest_group: str | None = None
    highest_group: str | None = None

    def to_dict(self) -> dict[str, object]:
        """A JSON-serialisable dict; NaN becomes ``None``."""
        return {
            "check": self.spec.name,
            "feature": self.feature,
            "metric": self.spec.metric,
            "statistic": self.spec.statistic,
            "value": _finite_or_none(self.value),
            "low": _finite_or_none(self.low),
            "high": _finite_or_none(self.high),
            "comparison": self.spec.comparison,
            "threshold": self.spec.threshold,
            "status": str(self.status),
            "reason": self.reason,
            "groups": list(self.groups),
            "lowest_group": self.lowest_group,
            "highest_group": self.highest_group,
        }


def default_checks(
    *,
    spd_max: float = 0.1,
    dir_min: float = 0.8,
    diversity_ratio_min: float = 0.8,
    personalization_diff_max: float = 0.05,
    ndcg_ratio_min: float = 0.8,
) -> tuple[CheckSpec, ...]:
    """The five checks of the audit with their thresholds.

    Parameters
    ----------
    spd_max : float, default 0.1
        Statistical parity: the hit@k difference between groups must be below this.
    dir_min : float, default 0.8
        Disparate impact: the hit@k ratio between groups must be at least this.
    diversity_ratio_min : float, default 0.8
        Diversity parity: the ratio of mean intra-list diversity must be at least this.
    personalization_diff_max : float, default 0.05
        Personalization parity: the difference must be below this (5 percentage points).
    ndcg_ratio_min : float, default 0.8
        Quality parity: the nDCG@k ratio must be at least this.

    Returns
    -------
    tuple of CheckSpec, length 5

    Raises
    ------
    ValueError
        If a threshold is outside (0, 1].
    """
    rows = (
        ("statistical_parity", "hit_at_k", "difference", "<", spd_max, "spd_max"),
        ("disparate_impact", "hit_at_k", "ratio", ">=", dir_min, "dir_min"),
        (
            "diversity_parity",
            "diversity",
            "ratio",
            ">=",
            diversity_ratio_min,
            "diversity_ratio_min",
        ),
        (
            "personalization_parity",
            "personalization",
            "difference",
            "<",
            personalization_diff_max,
            "personalization_diff_max",
        ),
        ("quality_parity", "ndcg_at_k", "ratio", ">=", ndcg_ratio_min, "ndcg_ratio_min"),
    )
    return tuple(
        CheckSpec(
            name=name,
            metric=metric,
            statistic=statistic,
            comparison=comparison,
            threshold=require_fraction(threshold, parameter),
            label=CHECK_LABELS[name],
        )
        for name, metric, statistic, comparison, threshold, parameter in rows
    )


def decide(value: float, low: float, high: float, spec: CheckSpec) -> Status:
    """PASS, FAIL or INCONCLUSIVE from the interval ``[low, high]`` (see the module docstring).

    An undefined value or interval (NaN) gives INCONCLUSIVE.
    """
    if any(math.isnan(x) for x in (value, low, high)):
        return Status.INCONCLUSIVE
    low_passes, high_passes = spec.passes(low), spec.passes(high)
    if low_passes and high_passes:
        return Status.PASS
    if not low_passes and not high_passes:
        return Status.FAIL
    return Status.INCONCLUSIVE


def overall_verdict(statuses: list[Status] | tuple[Status, ...]) -> Status:
    """Combine check statuses: any FAIL fails; else any INCONCLUSIVE is inconclusive.

    Otherwise PASS if at least one check passed, NOT_APPLICABLE if none could be made.
    """
    if Status.FAIL in statuses:
        return Status.FAIL
    if Status.INCONCLUSIVE in statuses:
        return Status.INCONCLUSIVE
    if Status.PASS in statuses:
        return Status.PASS
    return Status.NOT_APPLICABLE


def gate(
    verdicts: Mapping[str, FairnessReport | Status | str],
    *,
    mode: str = "block",
    fail_on_inconclusive: bool = False,
) -> dict[str, bool]:
    """Decide which models are eligible for export.

    Parameters
    ----------
    verdicts : mapping of str to FairnessReport or str
        Model name to its audit report or its overall verdict (``"PASS"``, ``"FAIL"``,
        ``"INCONCLUSIVE"`` or ``"NOT_APPLICABLE"``).
    mode : {"block", "warn"}, default "block"
        ``"block"``: a model that failed is not eligible. ``"warn"``: every model is
        eligible, and a :class:`FairnessGateWarning` names each one that failed.
    fail_on_inconclusive : bool, default False
        In ``"block"`` mode, also block models whose verdict is INCONCLUSIVE or
        NOT_APPLICABLE.

    Returns
    -------
    dict of str to bool
        Model name to whether it may be exported.

    Raises
    ------
    ValueError
        If ``mode`` or a verdict is not one of the accepted values.
    """
    require_choice(mode, "mode", GATE_MODES)
    statuses = {model: _status_of(model, verdict) for model, verdict in verdicts.items()}
    blocking = {Status.FAIL}
    if fail_on_inconclusive:
        blocking |= {Status.INCONCLUSIVE, Status.NOT_APPLICABLE}

    eligible: dict[str, bool] = {}
    for model, status in statuses.items():
        blocked = status in blocking
        if blocked and mode == "warn":
            warnings.warn(
                f"model {model!r} has fairness verdict {status}; exported anyway because "
                "the gate mode is 'warn'",
                FairnessGateWarning,
                stacklevel=2,
            )
        eligible[model] = not (blocked and mode == "block")
        logger.info("fairness gate: %s %s -> eligible=%s", model, status, eligible[model])
    return eligible


def _status_of(model: str, verdict: object) -> Status:
    value = getattr(verdict, "verdict", verdict)
    accepted = [str(status) for status in Status]
    if str(value) not in accepted:
        raise ValueError(
            f"verdicts[{model!r}] must be a FairnessReport or one of {accepted}, got {value!r}"
        )
    return Status(str(value))


def _finite_or_none(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)
