"""Committed notebooks are thin: no outputs, a tagged parameters cell first, no definitions, and
one call into shrek per cell."""

from __future__ import annotations

import ast
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


def thickness(path: Path) -> list[str]:
    """Where a notebook breaks the house rule on cells, one message per cell.

    After the parameters cell: imports only in one cell (the first code cell after the
    parameters), before any other statement there and with no call into shrek; every other
    cell makes at most one call into shrek (a call of a name imported from shrek, or of an
    attribute of one) and, when it has more than one statement, is ``name = <that call>``
    followed by ``name``: the result as the last expression.
    """
    book = nbformat.read(path, as_version=4)
    cells = [(i, ast.parse(c.source)) for i, c in enumerate(book.cells) if c.cell_type == "code"]
    names = _shrek_names([tree for _, tree in cells])
    problems = []
    for position, (index, tree) in enumerate(cells[1:]):
        where = f"{path.name} cell {index}"
        is_import = [isinstance(node, IMPORTS) for node in tree.body]
        calls = _shrek_calls(tree, names)
        if any(is_import):
            if position != 0:
                problems.append(
                    f"{where}: imports outside the import cell (first after parameters)"
                )
            if is_import != sorted(is_import, reverse=True):
                problems.append(f"{where}: an import follows another statement")
            if calls:
                problems.append(f"{where}: the import cell calls shrek ({', '.join(calls)})")
            continue
        if len(calls) > 1:
            problems.append(f"{where}: {len(calls)} calls into shrek ({', '.join(calls)})")
        if len(tree.body) > 1 and not _assign_then_show(tree.body):
            problems.append(f"{where}: {len(tree.body)} statements, not `name = call` then `name`")
    return problems


IMPORTS = (ast.Import, ast.ImportFrom)


def _shrek_names(trees: list[ast.Module]) -> set[str]:
    """Names bound by ``import shrek...`` or ``from shrek... import ...``."""
    names = set()
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "shrek":
                names |= {alias.asname or alias.name for alias in node.names}
            elif isinstance(node, ast.Import):
                names |= {
                    alias.asname or "shrek"
                    for alias in node.names
                    if alias.name.split(".")[0] == "shrek"
                }
    return names


def _shrek_calls(tree: ast.AST, names: set[str]) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            root = node.func
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(root, ast.Name) and root.id in names:
                found.append(ast.unparse(node.func))
    return found


def _assign_then_show(body: list[ast.stmt]) -> bool:
    if len(body) != 2:
        return False
    bind, show = body
    return (
        isinstance(bind, ast.Assign)
        and len(bind.targets) == 1
        and isinstance(bind.targets[0], ast.Name)
        and isinstance(show, ast.Expr)
        and isinstance(show.value, ast.Name)
        and show.value.id == bind.targets[0].id
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_one_call_into_shrek_per_cell(path):
    """Regression (review of issue 2): "one call into shrek per cell" was not checked."""
    assert thickness(path) == []


def test_the_check_finds_thick_cells(tmp_path):
    book = nbformat.v4.new_notebook()
    book.cells = [
        nbformat.v4.new_markdown_cell("# Title"),
        nbformat.v4.new_code_cell("RUN_DIR = 'x'", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("x = 1\nfrom shrek.pipeline import stages"),
        nbformat.v4.new_code_cell("stages.prepare_data(RUN_DIR)\nstages.load_dataset(RUN_DIR)"),
        nbformat.v4.new_code_cell("table = stages.compare(RUN_DIR)\ntable.head()"),
        nbformat.v4.new_code_cell("import shrek"),
        nbformat.v4.new_code_cell("table = stages.compare(RUN_DIR)\ntable"),
    ]
    path = tmp_path / "thick.ipynb"
    nbformat.write(book, path)

    assert thickness(path) == [
        "thick.ipynb cell 2: an import follows another statement",
        "thick.ipynb cell 3: 2 calls into shrek (stages.prepare_data, stages.load_dataset)",
        "thick.ipynb cell 3: 2 statements, not `name = call` then `name`",
        "thick.ipynb cell 4: 2 statements, not `name = call` then `name`",
        "thick.ipynb cell 5: imports outside the import cell (first after parameters)",
    ]
