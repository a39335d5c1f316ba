import re

import numpy as np
import pytest
from matplotlib.container import BarContainer
from matplotlib.figure import Figure

from shrek.fairness import audit_fairness, plot_groups


@pytest.fixture
def report(make_outcomes, make_users):
    rng = np.random.default_rng(2)
    users = make_users(["F", "M"] * 40, occupation=["a"] * 79 + ["b"])
    outcomes = make_outcomes(users["user_id"], hit_at_k=rng.random(80) < 0.7)
    return audit_fairness(outcomes, users, model="als", n_boot=100)


def test_plot_draws_a_panel_per_metric_with_error_bars(report):
    figure = plot_groups({"als": report, "again": report}, feature="gender")

    assert isinstance(figure, Figure)
    visible = [ax for ax in figure.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == [
        "hit_at_k",
        "ndcg_at_k",
        "diversity",
        "personalization",
    ]
    assert len(visible[0].patches) == 4  # two groups, two models
    bars = [c for c in visible[0].containers if isinstance(c, BarContainer)]
    assert len(bars) == 2 and all(c.errorbar is not None for c in bars)


def test_plot_hatches_small_groups(report):
    figure = plot_groups(report, feature="occupation", metrics=["hit_at_k"])

    bars = figure.axes[0].patches
    assert [bar.get_hatch() for bar in bars] == [None, "//"]
    labels = [label.get_text() for label in figure.axes[0].get_xticklabels()]
    assert labels == ["a", "b\n(n=1)"]


def test_plot_rejects_unknown_names(report, make_outcomes, make_users):
    message = "metrics must be one of ['hit_at_k', 'ndcg_at_k', 'recall_at_k', 'diversity', "
    with pytest.raises(ValueError, match=re.escape(message)):
        plot_groups(report, metrics=["accuracy"])

    users = make_users(["F", "M"] * 20)
    only_gender = audit_fairness(
        make_outcomes(users["user_id"]), users, model="pop", features=["gender"], n_boot=10
    )
    message = "feature must be one of the features audited for 'pop', ['gender'], got 'occupation'"
    with pytest.raises(ValueError, match=re.escape(message)):
        plot_groups(only_gender, feature="occupation")


def test_wide_panels_go_in_a_grid_not_a_strip(make_outcomes, make_users):
    """Regression (newcomer trial of issue 4): seven age bands for three models made a strip
    of four panels 38 inches wide."""
    ages = [15, 20, 30, 40, 47, 52, 60] * 10  # every age band
    users = make_users(["F", "M"] * 35, age=ages)
    report = audit_fairness(make_outcomes(users["user_id"]), users, model="als", n_boot=50)
    figure = plot_groups(
        {"popularity": report, "als": report, "lightfm": report}, feature="age_band"
    )
    width, height = figure.get_size_inches()
    assert width < 3 * height
    assert sum(ax.get_visible() for ax in figure.axes) == 4
