"""The fairness audit of a run (notebook ``06_fairness``) and the gate it writes."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from shrek.fairness import FairnessReport, audit_model, checks_table, fairness_summary
from shrek.fairness.plots import plot_groups
from shrek.models.base import Recommender
from shrek.pipeline.stages import load_dataset, load_split, run_config

logger = logging.getLogger(__name__)

FAIRNESS_FILE = "fairness.json"


def audit_run(run_dir: str | Path) -> dict[str, FairnessReport]:
    """Audit every configured model of a run on the configured split; write ``fairness.json``.

    Returns
    -------
    dict of str to FairnessReport
        Model name to its report.
    """
    run_dir = Path(run_dir)
    config = run_config(run_dir)
    settings = config.fairness
    k = config.evaluation.k
    dataset = load_dataset(run_dir)
    train, test = load_split(run_dir, settings.split)
    options = settings.model_dump(exclude={"split", "models", "gate_mode", "fail_on_inconclusive"})

    reports = {}
    for name in settings.models:
        model = Recommender.load(run_dir / "models" / f"{name}_{settings.split}")
        users = [u for u in test["user_id"].unique() if u in model.interactions.users]
        recommendations = model.recommend(users, N=k)
        reports[name] = audit_model(
            recommendations,
            test,
            train,
            dataset.users,
            dataset.movies,
            k=k,
            model=name,
            **options,
        )
        logger.info("fairness of %s: %s", name, reports[name].verdict)

    summary = fairness_summary(
        reports, mode=settings.gate_mode, fail_on_inconclusive=settings.fail_on_inconclusive
    )
    summary["split"] = settings.split
    summary["k"] = k
    (run_dir / FAIRNESS_FILE).write_text(json.dumps(summary, indent=2, allow_nan=False))
    return reports


def checks(reports: dict[str, FairnessReport]) -> pd.DataFrame:
    """Every check of every model: value, interval, threshold, status and reason."""
    return checks_table(reports)


def group_figure(
    reports: dict[str, FairnessReport], feature: str, *, save_to: str | Path | None = None
) -> Figure:
    """Bars per group of ``feature`` with their intervals, every model side by side."""
    figure = plot_groups(reports, feature=feature)
    if save_to is not None:
        Path(save_to).mkdir(parents=True, exist_ok=True)
        figure.savefig(Path(save_to) / f"fairness_{feature}.png", dpi=110)
    return figure


def verdicts(run_dir: str | Path) -> pd.DataFrame:
    """The gate of a run: each model's verdict and whether it may be exported."""
    summary = read_fairness(run_dir)
    return pd.DataFrame(
        {
            "verdict": summary["verdicts"],
            "eligible_for_export": summary["eligible"],
        }
    ).rename_axis("model")


def read_fairness(run_dir: str | Path) -> dict[str, Any]:
    """The ``fairness.json`` of a run."""
    path = Path(run_dir) / FAIRNESS_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; run notebook 06_fairness first")
    return json.loads(path.read_text())
