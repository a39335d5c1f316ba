"""A/B analysis of watch-through between two variants, with a plain verdict.

The unit is the evaluated request (a row of :func:`shrek.monitoring.online.join_outcomes`); its
outcome is ``hit`` (the user started a recommended movie within the window). The report holds

- a two-proportion z-test (``statsmodels.stats.proportion.proportions_ztest``),
- a bootstrap interval of the difference in watch-through (``scipy.stats.bootstrap``),
- a sample-ratio-mismatch (SRM) check: a chi-square goodness-of-fit test of the requests per
  variant against the configured split (``scipy.stats.chisquare``),
- a power analysis: the requests per variant needed to detect a minimum effect
  (``statsmodels.stats.power.NormalIndPower`` on Cohen's h),
- a verdict in one sentence.

Notes
-----
Requests of one user are not independent (the canary router sends a user to the same variant
every time), so with many requests per user the z-test and the per-request bootstrap are too
confident. The closed-loop simulation asks once per user; for live traffic, evaluate one
request per user (``joined.drop_duplicates("user_id")``) or read the interval with care.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

logger = logging.getLogger(__name__)

DEFAULT_SRM_ALPHA = 0.001


@dataclass(frozen=True)
class VariantSummary:
    """Requests and hits of one variant."""

    name: str
    requests: int
    hits: int

    @property
    def watch_through(self) -> float:
        return self.hits / self.requests if self.requests else float("nan")


@dataclass(frozen=True)
class ABReport:
    """The result of :func:`ab_test`; ``str(report)`` is the plain-text report.

    Attributes
    ----------
    control, treatment : VariantSummary
    difference : float
        Treatment minus control watch-through.
    ci_low, ci_high : float
        Bootstrap interval of ``difference`` at ``1 - alpha``.
    z_statistic, p_value : float
        Two-sided two-proportion z-test.
    expected_treatment_share, observed_treatment_share : float
        The configured and the observed share of requests on the treatment.
    srm_p_value : float
        Chi-square goodness of fit of the split; ``srm`` is True when below ``srm_alpha``.
    required_control, required_treatment : int
        Requests on each variant for ``power`` to detect ``mde`` at ``alpha`` from the
        control's watch-through, at the configured split.
    significant : bool
        ``p_value < alpha`` and no sample-ratio mismatch.
    verdict : str
        One sentence for humans.
    """

    control: VariantSummary
    treatment: VariantSummary
    difference: float
    ci_low: float
    ci_high: float
    z_statistic: float
    p_value: float
    alpha: float
    expected_treatment_share: float
    observed_treatment_share: float
    srm_p_value: float
    srm_alpha: float
    srm: bool
    mde: float
    power: float
    required_control: int
    required_treatment: int
    significant: bool
    verdict: str

    @property
    def underpowered(self) -> bool:
        """Whether a variant has fewer requests than the power analysis needs for ``mde``."""
        return (
            self.control.requests < self.required_control
            or self.treatment.requests < self.required_treatment
        )

    def to_dict(self) -> dict:
        document = asdict(self)
        document["underpowered"] = self.underpowered
        for side in ("control", "treatment"):
            document[side]["watch_through"] = getattr(self, side).watch_through
        return document

    def to_frame(self) -> pd.DataFrame:
        """One row per variant: requests, hits, watch_through."""
        return pd.DataFrame(
            [
                {
                    "variant": v.name,
                    "requests": v.requests,
                    "hits": v.hits,
                    "watch_through": v.watch_through,
                }
                for v in (self.control, self.treatment)
            ]
        ).set_index("variant")

    def __str__(self) -> str:
        c, t = self.control, self.treatment
        level = round(100 * (1 - self.alpha))
        return "\n".join(
            [
                f"A/B report: {t.name} (treatment) vs {c.name} (control)",
                f"  {c.name:<12} {c.requests:>8} requests {c.hits:>7} hits  "
                f"watch-through {c.watch_through:.4f}",
                f"  {t.name:<12} {t.requests:>8} requests {t.hits:>7} hits  "
                f"watch-through {t.watch_through:.4f}",
                f"  difference {self.difference:+.4f}, {level}% bootstrap interval "
                f"[{self.ci_low:+.4f}, {self.ci_high:+.4f}]",
                f"  z-test z = {self.z_statistic:.3f}, p = {self.p_value:.4g} (alpha {self.alpha})",
                f"  split: expected {self.expected_treatment_share:.3f} on {t.name}, observed "
                f"{self.observed_treatment_share:.3f}, SRM chi-square p = "
                f"{self.srm_p_value:.3g}{'  <-- SAMPLE RATIO MISMATCH' if self.srm else ''}",
                f"  power: {self.required_control} {c.name} + {self.required_treatment} "
                f"{t.name} requests detect {self.mde:+.3f} at power {self.power}",
                f"  verdict: {self.verdict}",
            ]
        )


def ab_test(
    control_hits: np.ndarray | pd.Series,
    treatment_hits: np.ndarray | pd.Series,
    *,
    control: str = "stable",
    treatment: str = "candidate",
    expected_treatment_share: float = 0.5,
    alpha: float = 0.05,
    srm_alpha: float = DEFAULT_SRM_ALPHA,
    mde: float = 0.02,
    power: float = 0.8,
    n_boot: int = 2000,
    seed: int = 0,
) -> ABReport:
    """Compare the watch-through of two variants from their per-request outcomes.

    Parameters
    ----------
    control_hits, treatment_hits : array-like of bool
        One outcome per evaluated request, ``[n_control]`` and ``[n_treatment]``.
    control, treatment : str
        Names of the variants in the report.
    expected_treatment_share : float, default 0.5
        The configured share of traffic on the treatment, strictly between 0 and 1.
    alpha : float, default 0.05
        Significance level of the z-test; the bootstrap interval is at ``1 - alpha``.
    srm_alpha : float, default 0.001
        Level of the sample-ratio-mismatch test (strict: a mismatch means a broken split).
    mde : float, default 0.02
        Minimum detectable effect, in watch-through points (absolute), for the power analysis.
    power : float, default 0.8
    n_boot : int, default 2000
        Bootstrap resamples.
    seed : int, default 0

    Returns
    -------
    ABReport

    Raises
    ------
    ValueError
        For a parameter out of range or a variant without requests.
    """
    _check_fraction("expected_treatment_share", expected_treatment_share)
    _check_fraction("alpha", alpha)
    _check_fraction("srm_alpha", srm_alpha)
    _check_fraction("power", power)
    if not 0 < mde < 1:
        raise ValueError(f"mde must be a watch-through difference in (0, 1), got {mde!r}")
    if n_boot < 100:
        raise ValueError(f"n_boot must be ≥ 100 resamples, got {n_boot!r}")
    a = np.asarray(control_hits, dtype=float)
    b = np.asarray(treatment_hits, dtype=float)
    for name, values in ((control, a), (treatment, b)):
        if values.size == 0:
            raise ValueError(f"variant {name!r} must have at least one request, got none")

    summaries = (
        VariantSummary(control, int(a.size), int(a.sum())),
        VariantSummary(treatment, int(b.size), int(b.sum())),
    )
    z, p = _z_test(summaries)
    ci_low, ci_high = _bootstrap_difference(a, b, alpha=alpha, n_boot=n_boot, seed=seed)
    srm_p = srm_test(a.size, b.size, expected_treatment_share=expected_treatment_share)
    ratio = expected_treatment_share / (1 - expected_treatment_share)
    required = required_sample_size(
        summaries[0].watch_through, mde=mde, alpha=alpha, power=power, ratio=ratio
    )
    srm = srm_p < srm_alpha
    significant = bool(p < alpha) and not srm
    report = ABReport(
        control=summaries[0],
        treatment=summaries[1],
        difference=float(b.mean() - a.mean()),
        ci_low=ci_low,
        ci_high=ci_high,
        z_statistic=z,
        p_value=p,
        alpha=alpha,
        expected_treatment_share=expected_treatment_share,
        observed_treatment_share=b.size / (a.size + b.size),
        srm_p_value=srm_p,
        srm_alpha=srm_alpha,
        srm=srm,
        mde=mde,
        power=power,
        required_control=required,
        required_treatment=int(math.ceil(required * ratio)),
        significant=significant,
        verdict="",
    )
    report = _with_verdict(report)
    logger.info("A/B: %s", report.verdict)
    return report


def ab_report(
    joined: pd.DataFrame,
    *,
    control: str = "stable",
    treatment: str = "candidate",
    one_per_user: bool = False,
    **options: float | int,
) -> ABReport:
    """:func:`ab_test` on the evaluated requests of :func:`~shrek.monitoring.online.join_outcomes`.

    Parameters
    ----------
    joined : pandas.DataFrame
        ``[n_requests, ...]`` with ``variant`` and ``hit`` columns.
    control, treatment : str
        The two values of ``variant`` to compare.
    one_per_user : bool, default False
        Keep only each user's first request (see the module Notes).
    **options
        Passed to :func:`ab_test` (``expected_treatment_share``, ``alpha``, ``mde`` ...).

    Raises
    ------
    ValueError
        If a variant has no request, naming the variants present.
    """
    if one_per_user:
        joined = joined.sort_values("timestamp", kind="stable").drop_duplicates("user_id")
    present = sorted(joined["variant"].astype(str).unique())
    for name in (control, treatment):
        if name not in present:
            raise ValueError(
                f"variant {name!r} must have requests in the log; variants present: {present}"
            )
    hits = joined["hit"].astype(bool)
    return ab_test(
        hits[joined["variant"] == control].to_numpy(),
        hits[joined["variant"] == treatment].to_numpy(),
        control=control,
        treatment=treatment,
        **options,
    )


def srm_test(n_control: int, n_treatment: int, *, expected_treatment_share: float) -> float:
    """p-value of a chi-square goodness-of-fit test of the observed split against the expected.

    Parameters
    ----------
    n_control, n_treatment : int
        Requests (or users) seen on each variant.
    expected_treatment_share : float
        The configured share on the treatment, strictly between 0 and 1.
    """
    _check_fraction("expected_treatment_share", expected_treatment_share)
    total = n_control + n_treatment
    expected = [total * (1 - expected_treatment_share), total * expected_treatment_share]
    return float(stats.chisquare([n_control, n_treatment], f_exp=expected).pvalue)


def required_sample_size(
    baseline: float,
    *,
    mde: float,
    alpha: float = 0.05,
    power: float = 0.8,
    ratio: float = 1.0,
) -> int:
    """Requests on the control needed to detect ``baseline`` -> ``baseline + mde``.

    Parameters
    ----------
    baseline : float
        The control's watch-through, 0–1.
    mde : float
        Minimum detectable effect in absolute points; the treatment rate is capped below 1.
    alpha, power : float
        Two-sided level and power.
    ratio : float, default 1.0
        Treatment requests per control request (1.0 for a 50/50 split).

    Returns
    -------
    int
        Requests on the control (``ceil``); the treatment needs ``ratio`` times as many.

    Notes
    -----
    Uses Cohen's effect size ``h`` for proportions (``proportion_effectsize``) with
    ``NormalIndPower``; a baseline of exactly 0 or 1 is moved by 1e-6 to keep ``h`` finite.
    """
    from statsmodels.stats.power import NormalIndPower
    from statsmodels.stats.proportion import proportion_effectsize

    if not 0 <= baseline <= 1 or math.isnan(baseline):
        raise ValueError(f"baseline must be a watch-through 0–1, got {baseline!r}")
    p1 = min(max(baseline, 1e-6), 1 - 1e-6)
    p2 = min(p1 + mde, 1 - 1e-6)
    if p2 <= p1:
        p2 = max(p1 - mde, 1e-6)
    effect = abs(proportion_effectsize(p2, p1))
    n = NormalIndPower().solve_power(
        effect_size=effect, alpha=alpha, power=power, ratio=ratio, alternative="two-sided"
    )
    return int(math.ceil(float(np.asarray(n).item())))


def _z_test(summaries: tuple[VariantSummary, VariantSummary]) -> tuple[float, float]:
    from statsmodels.stats.proportion import proportions_ztest

    hits = np.array([summaries[1].hits, summaries[0].hits])
    requests = np.array([summaries[1].requests, summaries[0].requests])
    if hits.sum() in (0, requests.sum()):  # no variance at all: no evidence of a difference
        return 0.0, 1.0
    z, p = proportions_ztest(hits, requests)
    return float(z), float(p)


def _bootstrap_difference(
    a: np.ndarray, b: np.ndarray, *, alpha: float, n_boot: int, seed: int
) -> tuple[float, float]:
    if np.ptp(np.r_[a, b]) == 0:
        return 0.0, 0.0

    def difference(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
        return y.mean(axis=axis) - x.mean(axis=axis)

    result = stats.bootstrap(
        (a, b),
        difference,
        n_resamples=n_boot,
        confidence_level=1 - alpha,
        method="percentile",
        vectorized=True,
        rng=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def _with_verdict(report: ABReport) -> ABReport:
    from dataclasses import replace

    c, t = report.control, report.treatment
    delta = f"{100 * report.difference:+.1f} points"
    if report.srm:
        verdict = (
            f"SAMPLE RATIO MISMATCH: {report.observed_treatment_share:.1%} of requests went to "
            f"{t.name} where {report.expected_treatment_share:.1%} were configured (p = "
            f"{report.srm_p_value:.2g}); the split is broken, do not trust this comparison"
        )
    elif report.significant:
        better = t.name if report.difference > 0 else c.name
        verdict = (
            f"{better} is better: watch-through {t.name} {t.watch_through:.1%} vs {c.name} "
            f"{c.watch_through:.1%} ({delta}, p = {report.p_value:.2g})"
        )
    elif report.underpowered:
        verdict = (
            f"no significant difference yet ({delta}, p = {report.p_value:.2g}); "
            f"underpowered: about {report.required_control} {c.name} and "
            f"{report.required_treatment} {t.name} requests are needed to detect "
            f"{100 * report.mde:.1f} points"
        )
    else:
        verdict = (
            f"no significant difference ({delta}, p = {report.p_value:.2g}) with enough "
            f"requests to detect {100 * report.mde:.1f} points"
        )
    return replace(report, verdict=verdict)


def _check_fraction(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
        raise ValueError(f"{name} must be a number strictly between 0 and 1, got {value!r}")


def save_report(
    folder: str | Path,
    *,
    ab: ABReport,
    online: pd.DataFrame | None = None,
    drift: Any = None,
) -> Path:
    """Write ``ab_report.json`` (A/B report, online metrics table, drift) into ``folder``.

    Parameters
    ----------
    folder : str or Path
        Created if missing.
    ab : ABReport
    online : pandas.DataFrame, optional
        The table of :func:`~shrek.monitoring.online.online_metrics`.
    drift : DriftReport, optional

    Returns
    -------
    Path
        The JSON file.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    document = {
        "ab": ab.to_dict(),
        "online": None if online is None else json.loads(online.to_json(orient="records")),
        "drift": None if drift is None else drift.to_dict(),
    }
    path = folder / "ab_report.json"
    path.write_text(json.dumps(document, indent=2, default=str))
    logger.info("A/B report written to %s", path)
    return path
