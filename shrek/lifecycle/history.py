"""Metrics, latency and cost of every retrain, for notebook ``09_history``."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from shrek.lifecycle.registry import Registry

PANELS: tuple[tuple[str, str], ...] = (
    ("ndcg", "offline nDCG@10 (temporal split)"),
    ("latency_ms", "median request time, ms (in process)"),
    ("fit_seconds", "training time, s"),
    ("size_mb", "model size, MB"),
)


def history(state_dir: str | Path) -> pd.DataFrame:
    """One row per registered model version, in training order, with its cost.

    Returns
    -------
    pandas.DataFrame
        ``[n_versions, 11]`` indexed by version: status, cutoff, nDCG, fairness, training
        time, size (bytes and MB), latency and the latest decision's reason.
    """
    table = Registry(state_dir).table()
    if table.empty:
        return table
    table["size_mb"] = table["size_bytes"] / 2**20
    table["cutoff"] = pd.to_datetime(table["cutoff"])
    return table


def decisions(state_dir: str | Path) -> pd.DataFrame:
    """Every decision of the registry with its reason, oldest first."""
    frame = Registry(state_dir).decisions()
    return frame[["at", "run_id", "version", "action", "from_status", "to_status", "reason"]]


def runs(state_dir: str | Path) -> pd.DataFrame:
    """Every scheduled run: when it was due, its status and why it failed."""
    return Registry(state_dir).runs()


def plot_history(state_dir: str | Path) -> Figure:
    """Four panels across retrains: nDCG@10, latency, training time and model size.

    Each point is a retrain (x: its data cut-off), coloured by its current status.

    Notes
    -----
    Made through ``pyplot`` and closed at once, like :mod:`shrek.report.figures`: importing
    ``pyplot`` is what makes a notebook kernel render the returned figure.
    """
    table = history(state_dir)
    figure = plt.figure(figsize=(11, 6.5), layout="constrained")
    axes = figure.subplots(2, 2, sharex=True).ravel()
    colors = {"production": "tab:green", "canary": "tab:orange", "candidate": "tab:blue"}
    for axis, (column, title) in zip(axes, PANELS, strict=True):
        axis.set_title(title, fontsize=10)
        if table.empty:
            continue
        axis.plot(table["cutoff"], table[column], color="0.7", zorder=1)
        for status, rows in table.groupby("status"):
            axis.scatter(
                rows["cutoff"],
                rows[column],
                label=status,
                color=colors.get(status, "tab:gray"),
                zorder=2,
            )
        axis.tick_params(axis="x", labelrotation=30)
    if not table.empty:
        axes[0].legend(fontsize=8)
    figure.suptitle(f"Retrains in {state_dir}")
    plt.close(figure)
    return figure
