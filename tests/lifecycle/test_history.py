"""Notebook 09_history runs with papermill on a small registry and shows every retrain, its
cost and every decision (issue 7)."""

from __future__ import annotations

from datetime import timedelta

import nbformat
import papermill
from lifecycle.helpers import ROOT, START

from shrek.lifecycle.history import history
from shrek.lifecycle.registry import Registry

VERSIONS = ("shrek-als:first", "shrek-als:better", "shrek-als:worse")


def small_registry(folder) -> Registry:
    """Three retrains a week apart: production, promoted over it, rejected."""
    registry = Registry(folder)
    for week, version in enumerate(VERSIONS):
        registry.register(
            version,
            model="als",
            run_id=f"run-{week}",
            ndcg=(0.10, 0.14, 0.08)[week],
            fairness="PASS",
            fit_seconds=1.5 + week,
            size_bytes=2**20 * (week + 1),
            latency_ms=2.0 + week,
            cutoff=(START + timedelta(weeks=week)).isoformat(),
        )
    first, better, worse = VERSIONS
    registry.transition([(first, "production")], action="promote", reason="first model")
    registry.transition([(better, "canary")], action="canary", reason="beats production")
    registry.transition(
        [(first, "retired"), (better, "production")], action="promote", reason="A/B: not worse"
    )
    registry.transition([(worse, "retired")], action="reject", reason="rejected: nDCG@10 0.08")
    return registry


def test_notebook_09_shows_every_retrain_and_decision(tmp_path):
    state = tmp_path / "lifecycle"
    small_registry(state)
    output = tmp_path / "09_history.ipynb"

    papermill.execute_notebook(
        str(ROOT / "notebooks" / "09_history.ipynb"),
        str(output),
        parameters={"STATE_DIR": str(state)},
        kernel_name="python3",
        progress_bar=False,
        cwd=str(tmp_path),
        kernel_manager_class="shrek.pipeline.runner.LocalKernelManager",
    )

    cells = nbformat.read(output, as_version=4).cells
    outputs = [out for cell in cells if cell.cell_type == "code" for out in cell.outputs]
    text = "\n".join(str(out.get("data", {}).get("text/plain", "")) for out in outputs)
    assert not [out for out in outputs if out.output_type == "error"]
    assert all(version in text for version in VERSIONS)
    assert "rejected: nDCG@10 0.08" in text and "A/B: not worse" in text
    assert sum("image/png" in out.get("data", {}) for out in outputs) == 1  # not "<Figure ...>"
    assert history(state)["size_mb"].tolist() == [1.0, 2.0, 3.0]
