"""The fairness report of a model: groups, checks and verdict, as tables and as JSON."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from shrek.fairness.checks import CheckResult, Status, gate


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its bootstrap interval; NaN where undefined."""

    value: float
    low: float
    high: float

    def to_dict(self) -> dict[str, float | None]:
        """JSON-serialisable: NaN becomes ``None``."""
        return {name: _json_float(getattr(self, name)) for name in ("value", "low", "high")}


@dataclass
class GroupAudit:
    """The groups of one feature compared on every outcome.

    Attributes
    ----------
    feature : str
    by_group : pandas.DataFrame, shape [n_groups * n_outcomes, 7]
        Tidy: ``group``, ``n_users``, ``small``, ``metric``, ``value``, ``low``, ``high``.
    compared : tuple of str
        The groups with at least ``min_group_size`` users, which the checks compare.
    difference, ratio : dict of str to Estimate
        Worst pair across ``compared`` for every outcome (NaN with fewer than two groups).
    n_excluded : int
        Users left out because they have no value for the feature.
    notes : list of str
    """

    feature: str
    by_group: pd.DataFrame
    compared: tuple[str, ...]
    difference: dict[str, Estimate]
    ratio: dict[str, Estimate]
    n_excluded: int
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary of the feature's groups."""
        groups = []
        for group, rows in self.by_group.groupby("group", sort=False):
            groups.append(
                {
                    "group": group,
                    "n_users": int(rows["n_users"].iloc[0]),
                    "small": bool(rows["small"].iloc[0]),
                    "metrics": {
                        row.metric: Estimate(row.value, row.low, row.high).to_dict()
                        for row in rows.itertuples()
                    },
                }
            )
        return {
            "groups": groups,
            "compared": list(self.compared),
            "difference": {m: e.to_dict() for m, e in self.difference.items()},
            "ratio": {m: e.to_dict() for m, e in self.ratio.items()},
            "n_excluded": self.n_excluded,
            "notes": list(self.notes),
        }


@dataclass
class FairnessReport:
    """The fairness audit of one model.

    Attributes
    ----------
    model : str
    k : int or None
        The list length the outcomes measured (``outcomes.attrs["k"]``).
    n_users : int
        Users audited.
    features : dict of str to GroupAudit
    checks : tuple of CheckResult
        Five checks per feature, in feature order.
    verdict : Status
        FAIL if any check failed, else INCONCLUSIVE if any was, else PASS (or
        NOT_APPLICABLE when no check could be made).
    settings : dict
        Thresholds, ``min_group_size``, ``n_boot``, ``confidence_level``, ``random_state``.
    notes : list of str
        Every warning the audit issued, and the small groups it flagged.
    """

    model: str
    k: int | None
    n_users: int
    features: dict[str, GroupAudit]
    checks: tuple[CheckResult, ...]
    verdict: Status
    settings: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    def checks_table(self) -> pd.DataFrame:
        """The checks as a tidy table.

        Returns
        -------
        pandas.DataFrame, shape [n_features * 5, 15]
            One row per check: ``model``, ``check``, ``feature``, ``metric``, ``statistic``,
            ``value``, ``low``, ``high``, ``comparison``, ``threshold``, ``status``,
            ``reason``, ``groups`` (the groups compared), ``lowest_group``, ``highest_group``.
            Undefined values are NaN; ``status`` and ``reason`` never are.
        """
        rows = [{"model": self.model, **result.to_dict()} for result in self.checks]
        table = pd.DataFrame(rows)
        return table.astype({"value": float, "low": float, "high": float})

    def groups_table(self) -> pd.DataFrame:
        """Every group's mean of every outcome, with its interval, as a tidy table.

        Returns
        -------
        pandas.DataFrame, shape [sum over features of n_groups * n_outcomes, 9]
            ``model``, ``feature``, ``group``, ``n_users``, ``small``, ``metric``, ``value``,
            ``low``, ``high``.
        """
        frames = [
            audit.by_group.assign(model=self.model, feature=name)
            for name, audit in self.features.items()
        ]
        columns = ["model", "feature", "group", "n_users", "small", "metric", "value", "low"]
        return pd.concat(frames, ignore_index=True)[[*columns, "high"]]

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable report (NaN becomes ``None``) for ``fairness.json``."""
        return {
            "model": self.model,
            "k": self.k,
            "n_users": self.n_users,
            "verdict": str(self.verdict),
            "settings": dict(self.settings),
            "checks": [result.to_dict() for result in self.checks],
            "features": {name: audit.to_dict() for name, audit in self.features.items()},
            "notes": list(self.notes),
        }


def checks_table(reports: FairnessReport | Mapping[str, FairnessReport]) -> pd.DataFrame:
    """The checks of one or several models as one tidy table.

    Parameters
    ----------
    reports : FairnessReport or mapping of str to FairnessReport

    Returns
    -------
    pandas.DataFrame, shape [n_models * n_features * 5, 15]
        The rows of :meth:`FairnessReport.checks_table`, model after model.
    """
    many = [reports] if isinstance(reports, FairnessReport) else list(reports.values())
    return pd.concat([report.checks_table() for report in many], ignore_index=True)


def fairness_summary(
    reports: Mapping[str, FairnessReport],
    *,
    mode: str = "block",
    fail_on_inconclusive: bool = False,
) -> dict[str, Any]:
    """Everything ``fairness.json`` holds: the gate, each verdict and each full report.

    Parameters
    ----------
    reports : mapping of str to FairnessReport
        Model name to its report.
    mode, fail_on_inconclusive
        See :func:`shrek.fairness.checks.gate`.

    Returns
    -------
    dict
        ``{"gate_mode", "fail_on_inconclusive", "verdicts", "eligible", "passed",
        "models"}``; JSON-serialisable.
    """
    eligible = gate(reports, mode=mode, fail_on_inconclusive=fail_on_inconclusive)
    verdicts = {name: str(report.verdict) for name, report in reports.items()}
    return {
        "gate_mode": mode,
        "fail_on_inconclusive": fail_on_inconclusive,
        "verdicts": verdicts,
        "eligible": eligible,
        "passed": [name for name, verdict in verdicts.items() if verdict == Status.PASS],
        "models": {name: report.to_dict() for name, report in reports.items()},
    }


def _json_float(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)
