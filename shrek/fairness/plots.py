"""Bar charts of group means with their bootstrap intervals."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from shrek.fairness._validation import require_choice
from shrek.fairness.groups import FEATURES
from shrek.fairness.outcomes import OUTCOMES
from shrek.fairness.report import FairnessReport

CHECKED_OUTCOMES: tuple[str, ...] = ("hit_at_k", "ndcg_at_k", "diversity", "personalization")


def plot_groups(
    reports: FairnessReport | Mapping[str, FairnessReport],
    *,
    feature: str = "gender",
    metrics: Sequence[str] = CHECKED_OUTCOMES,
    width: float = 4.0,
) -> Figure:
    """Draw one panel per outcome: a bar per group and model, with the interval as error bar.

    Parameters
    ----------
    reports : FairnessReport or mapping of str to FairnessReport
        One model, or several drawn side by side in each group.
    feature : str, default "gender"
        One of ``"gender"``, ``"age_band"``, ``"occupation"``, ``"gender_x_age_band"``;
        must have been audited.
    metrics : sequence of str, default the four outcomes the checks use
        Outcomes to draw, from :data:`shrek.fairness.outcomes.OUTCOMES`.
    width : float, default 4.0
        Width of one panel in inches (grows with the number of groups).

    Returns
    -------
    matplotlib.figure.Figure
        Small groups (fewer than ``min_group_size`` users, left out of the checks) are hatched
        and their tick labels give the group size.

    Raises
    ------
    ValueError
        If ``feature`` or a metric is not an accepted name, or ``feature`` was not audited.
    """
    many = {reports.model: reports} if isinstance(reports, FairnessReport) else dict(reports)
    require_choice(feature, "feature", FEATURES)
    for metric in metrics:
        require_choice(metric, "metrics", OUTCOMES)
    for name, report in many.items():
        if feature not in report.features:
            raise ValueError(
                f"feature must be one of the features audited for {name!r}, "
                f"{list(report.features)}, got {feature!r}"
            )

    first = next(iter(many.values())).features[feature].by_group
    groups = list(dict.fromkeys(first["group"]))
    panel_width = max(width, 0.45 * len(groups) * len(many))
    if len(groups) > 8 or panel_width > 10:
        n_columns = 1
    elif panel_width > 5:  # wide panels in a 2 x 2 grid, not a strip of four
        n_columns = min(len(metrics), 2)
    else:
        n_columns = min(len(metrics), 4)
    n_rows = -(-len(metrics) // n_columns)
    figure = Figure(figsize=(panel_width * n_columns, 3.2 * n_rows), layout="constrained")
    axes = figure.subplots(n_rows, n_columns, squeeze=False).ravel()
    for ax, metric in zip(axes, metrics, strict=False):
        _draw_panel(ax, many, feature, metric, groups)
    for ax in axes[len(metrics) :]:
        ax.set_visible(False)
    if len(many) > 1:  # plain patches: a bar of a small group is hatched, the model is not
        handles = [Patch(facecolor=f"C{i}", label=name) for i, name in enumerate(many)]
        figure.legend(handles=handles, loc="outside right upper")
    title = f"{', '.join(many)}: group means by {feature} with bootstrap intervals"
    figure.suptitle(title, fontsize="medium")
    return figure


def _draw_panel(
    ax: Axes,
    reports: dict[str, FairnessReport],
    feature: str,
    metric: str,
    groups: list[str],
) -> None:
    """One outcome's panel: a bar per group and model, the interval as error bar, small
    groups hatched and labelled with their size."""
    bar = 0.8 / len(reports)
    positions = np.arange(len(groups))
    sizes: dict[str, int] = {}
    for i, (name, report) in enumerate(reports.items()):
        rows = report.features[feature].by_group
        rows = rows.loc[rows["metric"] == metric].set_index("group").reindex(groups)
        sizes.update(rows["n_users"].dropna().astype(int).to_dict())
        values = rows["value"].to_numpy(dtype=float)
        errors = np.vstack(
            [
                np.clip(values - rows["low"].to_numpy(dtype=float), 0, None),
                np.clip(rows["high"].to_numpy(dtype=float) - values, 0, None),
            ]
        )
        bars = ax.bar(
            positions + (i - (len(reports) - 1) / 2) * bar,
            np.nan_to_num(values),
            bar,
            yerr=np.nan_to_num(errors),
            capsize=2,
            color=f"C{i}",
            label=name,
        )
        for patch, small in zip(bars, rows["small"].fillna(False), strict=True):
            if small:
                patch.set_hatch("//")
                patch.set_alpha(0.5)
    small_groups = set(_small_groups(reports, feature))
    rotated = len(groups) > 6
    separator = " " if rotated else "\n"
    labels = [f"{g}{separator}(n={sizes.get(g, 0)})" if g in small_groups else g for g in groups]
    ax.set_xticks(positions, labels, rotation=90 if rotated else 0, fontsize="small")
    ax.set_title(metric)
    ax.set_ylim(bottom=0)


def _small_groups(reports: dict[str, FairnessReport], feature: str) -> list[str]:
    """Groups flagged small in any of the reports."""
    small: list[str] = []
    for report in reports.values():
        rows = report.features[feature].by_group
        small.extend(rows.loc[rows["small"], "group"].unique())
    return small
