"""Drift signals between a training window and a later window."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from shrek.monitoring.drift import drift_report, latest_window, popularity_shift, psi


def ratings(rows: list[tuple[int, str, int]], start: str = "2026-01-01") -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["user_id", "movie_id", "rating"])
    frame["timestamp"] = pd.date_range(start, periods=len(frame), freq="h")
    return frame


def test_psi_of_identical_distributions_is_zero():
    assert psi([10, 20, 30], [1, 2, 3]) == 0.0


def test_psi_matches_the_formula():
    # shares r = (0.5, 0.5), c = (0.8, 0.2)
    expected = (0.8 - 0.5) * math.log(0.8 / 0.5) + (0.2 - 0.5) * math.log(0.2 / 0.5)

    assert psi([50, 50], [80, 20]) == pytest.approx(expected)


def test_psi_rejects_mismatched_bins():
    with pytest.raises(ValueError, match=r"same bins, got shapes \(2,\) and \(3,\)"):
        psi([1, 2], [1, 2, 3])


def test_popularity_shift_is_total_variation_and_top_overlap():
    reference = ratings([(1, "a+1", 3), (2, "a+1", 3), (3, "b+2", 3), (4, "c+3", 3)])
    current = ratings([(1, "a+1", 3), (2, "d+4", 3)])

    distance, overlap = popularity_shift(reference, current, top_k=2)

    # shares: a .5/.5, b .25/0, c .25/0, d 0/.5 -> 0.5 * (0 + .25 + .25 + .5) = 0.5
    assert distance == pytest.approx(0.5)
    # top 2: {a, b} (ties by id) and {a, d}
    assert overlap == pytest.approx(1 / 3)


def test_drift_report_counts_new_users_movies_and_quarantine():
    reference = ratings([(1, "a+1", 5), (2, "b+2", 4), (3, "a+1", 3)])
    current = ratings([(1, "a+1", 5), (4, "c+3", 1), (5, "a+1", 1), (4, "a+1", 2)])

    report = drift_report(reference, current, quarantined=1, accepted=9)

    assert report.new_user_share == pytest.approx(2 / 3)
    assert report.new_movie_share == pytest.approx(1 / 2)
    assert report.quarantine_rate == pytest.approx(0.1)
    assert report.rating_psi > 0.25 and report.rating_drift == "major"
    assert report.to_dict()["n_current"] == 4


def test_no_drift_between_two_samples_of_one_distribution():
    rng = np.random.default_rng(0)
    rows = [
        (int(u), f"m+{m}", int(r))
        for u, m, r in zip(
            rng.integers(1, 200, 4000),
            rng.zipf(1.5, 4000) % 100,
            rng.integers(1, 6, 4000),
            strict=True,
        )
    ]
    frame = ratings(rows)

    report = drift_report(frame.iloc[:2000], frame.iloc[2000:])

    assert report.rating_psi < 0.01 and report.rating_drift == "stable"
    assert report.popularity_shift < 0.15


def test_latest_window_keeps_the_newest_events():
    frame = ratings([(1, "a+1", 3)] * 48)

    assert len(latest_window(frame, window="1D")) == 24


def test_empty_windows_are_rejected():
    with pytest.raises(ValueError, match="current must hold at least one rating, got an empty"):
        drift_report(ratings([(1, "a+1", 3)]), ratings([]))
