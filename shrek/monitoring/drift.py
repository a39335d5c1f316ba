"""Drift between the training window and the latest collection window.

=========================  ==================================================================
signal                     definition
=========================  ==================================================================
``rating_psi``             population stability index of the rating distribution, one bin per
                           rating value: ``sum((c - r) * ln(c / r))`` over the shares ``r``
                           (reference) and ``c`` (current), each floored at ``eps``
``popularity_shift``       total variation distance between the movies' shares of ratings,
                           ``0.5 * sum(|c_m - r_m|)``: 0 same popularity, 1 disjoint movies
``top_overlap``            Jaccard overlap of the ``top_k`` most rated movies of each window
``new_user_share``         share of the current window's users absent from the reference
``new_movie_share``        share of the current window's movies absent from the reference
``quarantine_rate``        share of the window's lines the collector quarantined
=========================  ==================================================================

Rule of thumb for PSI: below 0.1 stable, 0.1–0.25 moderate shift, above 0.25 a major shift
(:data:`PSI_THRESHOLDS`).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from shrek.data.schemas import DEFAULT_RATING_SCALE
from shrek.monitoring.online import OnlineLog

logger = logging.getLogger(__name__)

PSI_THRESHOLDS: tuple[float, float] = (0.1, 0.25)


@dataclass(frozen=True)
class DriftReport:
    """Drift signals of one comparison (see the module docstring for their definitions)."""

    rating_psi: float
    popularity_shift: float
    top_overlap: float
    new_user_share: float
    new_movie_share: float
    quarantine_rate: float
    n_reference: int
    n_current: int
    current_start: pd.Timestamp | None
    current_end: pd.Timestamp | None

    @property
    def rating_drift(self) -> str:
        """``"stable"``, ``"moderate"`` or ``"major"`` by :data:`PSI_THRESHOLDS`."""
        low, high = PSI_THRESHOLDS
        if self.rating_psi < low:
            return "stable"
        return "moderate" if self.rating_psi < high else "major"

    def to_dict(self) -> dict:
        document = asdict(self)
        for key in ("current_start", "current_end"):
            value = document[key]
            document[key] = None if value is None else pd.Timestamp(value).isoformat()
        document["rating_drift"] = self.rating_drift
        return document

    def to_frame(self) -> pd.DataFrame:
        """The signals as a one-column table (``value``), for notebooks."""
        document = self.to_dict()
        return pd.DataFrame({"value": pd.Series(document, dtype=object)})


def psi(reference: np.ndarray, current: np.ndarray, *, eps: float = 1e-4) -> float:
    """Population stability index of two histograms over the same bins.

    Parameters
    ----------
    reference, current : array-like of float
        Counts (or shares) per bin, ``[n_bins]`` each.
    eps : float, default 1e-4
        Floor of each share, so that empty bins give a large but finite index.

    Returns
    -------
    float
        0 for identical distributions; grows with the shift.
    """
    r = np.asarray(reference, dtype=float)
    c = np.asarray(current, dtype=float)
    if r.shape != c.shape or r.ndim != 1 or r.size == 0:
        raise ValueError(
            f"reference and current must be 1-d histograms of the same bins, got shapes "
            f"{r.shape} and {c.shape}"
        )
    if r.sum() <= 0 or c.sum() <= 0:
        raise ValueError("reference and current must each hold at least one count, got none")
    r = np.maximum(r / r.sum(), eps)
    c = np.maximum(c / c.sum(), eps)
    return float(np.sum((c - r) * np.log(c / r)))


def rating_psi(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    rating_scale: tuple[int, int] = DEFAULT_RATING_SCALE,
) -> float:
    """PSI of the ``rating`` column, one bin per value of ``rating_scale`` (inclusive)."""
    low, high = rating_scale
    bins = np.arange(low, high + 1)
    counts = [r["rating"].value_counts().reindex(bins, fill_value=0) for r in (reference, current)]
    return psi(counts[0].to_numpy(), counts[1].to_numpy())


def popularity_shift(
    reference: pd.DataFrame, current: pd.DataFrame, *, top_k: int = 50
) -> tuple[float, float]:
    """Total variation distance of movie popularity, and Jaccard overlap of the top ``top_k``.

    Parameters
    ----------
    reference, current : pandas.DataFrame
        Ratings (or events) with a ``movie_id`` column.
    top_k : int, default 50
        Size of each window's list of most rated movies.

    Returns
    -------
    tuple of float
        ``(distance, overlap)``, both 0–1.
    """
    if top_k < 1:
        raise ValueError(f"top_k must be ≥ 1, got {top_k!r}")
    r = reference["movie_id"].value_counts(normalize=True)
    c = current["movie_id"].value_counts(normalize=True)
    movies = r.index.union(c.index)
    distance = 0.5 * float(
        np.abs(r.reindex(movies, fill_value=0) - c.reindex(movies, fill_value=0)).sum()
    )
    top_r = set(r.sort_index().sort_values(ascending=False, kind="stable").index[:top_k])
    top_c = set(c.sort_index().sort_values(ascending=False, kind="stable").index[:top_k])
    union = top_r | top_c
    overlap = len(top_r & top_c) / len(union) if union else 1.0
    return distance, overlap


def latest_window(
    events: pd.DataFrame, *, window: str | pd.Timedelta = "7D", end: pd.Timestamp | None = None
) -> pd.DataFrame:
    """Rows of ``events`` whose ``timestamp`` lies in ``(end - window, end]``.

    ``end`` defaults to the newest timestamp of ``events``.
    """
    window = pd.Timedelta(window)
    if pd.isna(window) or window <= pd.Timedelta(0):
        raise ValueError(f"window must be a positive duration like '7D', got {window!r}")
    if events.empty:
        return events
    end = pd.Timestamp(end) if end is not None else events["timestamp"].max()
    keep = (events["timestamp"] > end - window) & (events["timestamp"] <= end)
    return events[keep]


def drift_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    quarantined: int = 0,
    accepted: int | None = None,
    rating_scale: tuple[int, int] = DEFAULT_RATING_SCALE,
    top_k: int = 50,
) -> DriftReport:
    """Compare the current window's ratings with the reference (training) window.

    Parameters
    ----------
    reference : pandas.DataFrame
        Training ratings, ``[n_reference, ≥ 4]``: user_id, movie_id, rating, timestamp.
    current : pandas.DataFrame
        Ratings of the latest collection window, same columns.
    quarantined : int, default 0
        Lines of the window the collector quarantined.
    accepted : int, optional
        Lines of the window it accepted; ``len(current)`` when omitted.
    rating_scale : tuple of int, default (1, 5)
    top_k : int, default 50

    Returns
    -------
    DriftReport

    Raises
    ------
    ValueError
        If either window holds no rating.
    """
    for name, frame in (("reference", reference), ("current", current)):
        if frame.empty:
            raise ValueError(f"{name} must hold at least one rating, got an empty table")
    accepted = len(current) if accepted is None else accepted
    seen_total = accepted + quarantined
    distance, overlap = popularity_shift(reference, current, top_k=top_k)
    users = current["user_id"].drop_duplicates()
    movies = current["movie_id"].drop_duplicates()
    report = DriftReport(
        rating_psi=rating_psi(reference, current, rating_scale=rating_scale),
        popularity_shift=distance,
        top_overlap=overlap,
        new_user_share=float((~users.isin(reference["user_id"])).mean()),
        new_movie_share=float((~movies.isin(reference["movie_id"])).mean()),
        quarantine_rate=quarantined / seen_total if seen_total else float("nan"),
        n_reference=len(reference),
        n_current=len(current),
        current_start=current["timestamp"].min(),
        current_end=current["timestamp"].max(),
    )
    logger.info(
        "drift: PSI %.3f (%s), popularity shift %.3f, new users %.1f%%",
        report.rating_psi,
        report.rating_drift,
        report.popularity_shift,
        100 * report.new_user_share,
    )
    return report


def drift_of_log(
    log: OnlineLog,
    *,
    reference_dir: str | Path | None,
    window: str | pd.Timedelta = "7D",
    rating_scale: tuple[int, int] = DEFAULT_RATING_SCALE,
) -> DriftReport | None:
    """Drift of a log's latest rate events against a training dataset folder.

    Parameters
    ----------
    log : OnlineLog
        A parsed log or topic (:func:`shrek.monitoring.logs.load_log`); its rejected lines
        give the quarantine rate.
    reference_dir : str or Path, optional
        A dataset folder (:meth:`Dataset.save`, e.g. a run's ``data/``); None or empty: no
        report.
    window : str or pandas.Timedelta, default "7D"
        The latest window of rate events that is compared.
    rating_scale : tuple of int, default (1, 5)

    Returns
    -------
    DriftReport or None
        None without a reference or without rate events.
    """
    from shrek.data.dataset import Dataset

    if not reference_dir:
        return None
    rates = log.events[log.events["kind"] == "rate"].rename(columns={"value": "rating"})
    current = latest_window(rates, window=window)
    if current.empty:
        logger.warning("no rate events in the log: no drift report")
        return None
    return drift_report(
        Dataset.load(reference_dir).ratings,
        current,
        quarantined=len(log.rejected),
        accepted=len(log.requests) + len(log.events),
        rating_scale=rating_scale,
    )
