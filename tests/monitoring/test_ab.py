"""A/B analysis: A/A runs are not significant, a 70/30 split under a 50/50 config is flagged,
a real effect is found, and the power analysis agrees with the textbook value (issue 6)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from shrek.monitoring.ab import ab_report, ab_test, required_sample_size, srm_test


def outcomes(rng: np.random.Generator, n: int, rate: float) -> np.ndarray:
    return rng.random(n) < rate


def synthetic_joined(n_control: int, n_treatment: int, rates: tuple[float, float], seed: int):
    """Evaluated requests as join_outcomes returns them, one per user."""
    rng = np.random.default_rng(seed)
    hits = np.r_[outcomes(rng, n_control, rates[0]), outcomes(rng, n_treatment, rates[1])]
    n = n_control + n_treatment
    return pd.DataFrame(
        {
            "timestamp": pd.date_range("2026-03-01", periods=n, freq="s"),
            "user_id": np.arange(1, n + 1),
            "variant": ["stable"] * n_control + ["candidate"] * n_treatment,
            "hit": hits,
        }
    )


def test_an_aa_run_is_not_declared_significant():
    report = ab_report(synthetic_joined(2000, 2000, (0.12, 0.12), seed=3))

    assert not report.significant
    assert not report.srm
    assert report.p_value > 0.05
    assert report.ci_low < 0 < report.ci_high
    assert report.verdict.startswith("no significant difference")


def test_aa_runs_are_significant_about_alpha_of_the_time():
    rng = np.random.default_rng(11)
    significant = [
        ab_test(outcomes(rng, 1000, 0.1), outcomes(rng, 1000, 0.1), n_boot=100).significant
        for _ in range(200)
    ]

    assert 0.01 <= np.mean(significant) <= 0.10


def test_a_70_30_split_configured_as_50_50_is_a_sample_ratio_mismatch():
    report = ab_report(synthetic_joined(1400, 600, (0.1, 0.1), seed=1))

    assert report.srm
    assert report.observed_treatment_share == pytest.approx(0.3)
    assert not report.significant
    assert report.verdict.startswith("SAMPLE RATIO MISMATCH: 30.0% of requests went to candidate")
    assert "SAMPLE RATIO MISMATCH" in str(report)


def test_the_same_70_30_split_is_fine_when_configured():
    report = ab_report(
        synthetic_joined(1400, 600, (0.1, 0.1), seed=1), expected_treatment_share=0.3
    )

    assert not report.srm


def test_a_real_difference_is_found_and_named():
    report = ab_report(synthetic_joined(5000, 5000, (0.10, 0.14), seed=2))

    assert report.significant
    assert 0 < report.ci_low < report.difference < report.ci_high
    assert report.verdict.startswith("candidate is better: watch-through candidate")


def test_a_small_run_is_called_underpowered():
    report = ab_report(synthetic_joined(100, 100, (0.10, 0.11), seed=4))

    assert not report.significant
    assert "underpowered" in report.verdict


def test_required_sample_size_matches_the_normal_approximation():
    # 10% -> 12%: Cohen's h = 2 asin(sqrt(.12)) - 2 asin(sqrt(.10)) = 0.06398;
    # n per group = 2 (z_.975 + z_.8)^2 / h^2 = 2 * 2.80159^2 / 0.06398^2 = 3834.6.
    h = 2 * math.asin(math.sqrt(0.12)) - 2 * math.asin(math.sqrt(0.10))
    expected = math.ceil(2 * (1.959964 + 0.841621) ** 2 / h**2)

    assert required_sample_size(0.10, mde=0.02, alpha=0.05, power=0.8) == expected == 3835


def test_an_unequal_split_needs_more_control_requests_than_half_the_total():
    n_control = required_sample_size(0.10, mde=0.02, ratio=3 / 7)

    assert n_control > 3835


def test_srm_test_of_a_balanced_split_is_not_small():
    assert srm_test(5000, 5000, expected_treatment_share=0.5) == pytest.approx(1.0)
    assert srm_test(7000, 3000, expected_treatment_share=0.5) < 1e-10


def test_one_per_user_keeps_each_users_first_request():
    joined = synthetic_joined(50, 50, (0.5, 0.5), seed=5)
    doubled = pd.concat([joined, joined.assign(timestamp=joined["timestamp"] + pd.Timedelta("1h"))])

    report = ab_report(doubled, one_per_user=True)

    assert (report.control.requests, report.treatment.requests) == (50, 50)


def test_report_serializes():
    report = ab_report(synthetic_joined(300, 300, (0.2, 0.2), seed=6))

    document = report.to_dict()
    assert document["control"]["requests"] == 300
    assert set(report.to_frame().index) == {"stable", "candidate"}


def test_a_missing_variant_names_the_variants_present():
    joined = synthetic_joined(10, 0, (0.5, 0.5), seed=0)

    with pytest.raises(ValueError) as err:
        ab_report(joined)

    assert str(err.value) == (
        "variant 'candidate' must have requests in the log; variants present: ['stable']"
    )


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        (
            "expected_treatment_share",
            1.0,
            "expected_treatment_share must be a number strictly between 0 and 1, got 1.0",
        ),
        ("alpha", 0, "alpha must be a number strictly between 0 and 1, got 0"),
        ("mde", 2.0, "mde must be a watch-through difference in (0, 1), got 2.0"),
        ("n_boot", 10, "n_boot must be ≥ 100 resamples, got 10"),
    ],
)
def test_bad_options_are_rejected_with_exact_messages(option, value, message):
    with pytest.raises(ValueError) as err:
        ab_test([True, False], [False, True], **{option: value})

    assert str(err.value) == message
