"""Committed notebooks are thin: no outputs, a tagged parameters cell first, no definitions."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


def test_the_pipeline_notebooks_exist():
    from shrek.pipeline.runner import NOTEBOOKS as PIPELINE

    assert set(PIPELINE) <= {path.stem for path in NOTEBOOKS}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_thin(path):
    book = nbformat.read(path, as_version=4)
    code = [cell for cell in book.cells if cell.cell_type == "code"]
    assert code[0].metadata.get("tags") == ["parameters"]
    assert book.cells[0].cell_type == "markdown"
    for cell in code:
        assert cell.outputs == [], f"{path.name} has outputs"
        assert cell.execution_count is None
        assert "def " not in cell.source and "class " not in cell.source
