"""Run the notebooks in order with papermill into ``reports/runs/<run-id>/``."""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from jupyter_client.manager import KernelManager
from tqdm.auto import tqdm

from shrek.config import RunConfig
from shrek.data.download import DATA_DIR_VARIABLE
from shrek.errors import ShrekError
from shrek.pipeline.stages import comparison_table

logger = logging.getLogger(__name__)

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent.parent / "notebooks"
NOTEBOOKS = (
    "01_data",
    "02_eda",
    "03_train_als",
    "04_train_lightfm",
    "05_compare",
    "06_fairness",
)


class PipelineError(ShrekError):
    """A notebook of the pipeline failed."""


class LocalKernelManager(KernelManager):
    """Start notebook kernels on IPC sockets in a private folder, not on unencrypted TCP ports."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.transport = "ipc"
        self.socket_dir = Path(tempfile.mkdtemp(prefix="shrek-kernel-"))
        self.ip = str(self.socket_dir / "kernel")

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        """Remove the private socket folder too once the kernel is gone for good."""
        await super()._async_cleanup_resources(restart=restart)
        if not restart:
            shutil.rmtree(self.socket_dir, ignore_errors=True)


def new_run_id() -> str:
    """``YYYYmmddTHHMMSSZ-<6 hex>``: sortable by time, unique across concurrent runs."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def run_pipeline(
    config: RunConfig,
    *,
    run_id: str | None = None,
    notebooks: tuple[str, ...] = NOTEBOOKS,
    show_progress: bool = True,
) -> Path:
    """Execute ``notebooks`` in order for one run and render each to HTML.

    Parameters
    ----------
    config : RunConfig
        The run's settings; written to ``config.yaml`` in the run folder.
    run_id : str, optional
        Name of the run folder; :func:`new_run_id` by default.
    notebooks : tuple of str
        Notebook names in ``notebooks/`` (without ``.ipynb``).
    show_progress : bool, default True
        Show a bar over the notebooks.

    Returns
    -------
    Path
        The run folder, ``<reports_dir>/runs/<run_id>``.

    Raises
    ------
    PipelineError
        A notebook failed; its executed copy, with the traceback, is in the run folder.
    """
    import papermill

    config = _resolve_paths(config)
    run_dir = Path(config.reports_dir).resolve() / "runs" / (run_id or new_run_id())
    (run_dir / "notebooks").mkdir(parents=True, exist_ok=True)
    config.to_yaml(run_dir / "config.yaml")
    logger.info("run folder %s", run_dir)

    parameters = {"RUN_DIR": str(run_dir)}
    for name in tqdm(notebooks, desc="notebooks", disable=not show_progress):
        output = run_dir / "notebooks" / f"{name}.ipynb"
        try:
            papermill.execute_notebook(
                str(NOTEBOOK_DIR / f"{name}.ipynb"),
                str(output),
                parameters=parameters,
                kernel_name="python3",
                progress_bar=False,
                cwd=str(run_dir),
                kernel_manager_class="shrek.pipeline.runner.LocalKernelManager",
            )
        except papermill.PapermillExecutionError as err:
            raise PipelineError(
                f"notebook {name} failed: {err.ename}: {err.evalue} (the executed notebook, "
                f"with the traceback, is {output})"
            ) from None
        finally:
            if output.exists():
                render_html(output)
    _point_latest(run_dir)
    return run_dir


def _resolve_paths(config: RunConfig) -> RunConfig:
    """Make the data directory absolute: notebooks run with the run folder as working folder."""
    config = config.model_copy(deep=True)
    data_dir = config.data.data_dir or os.environ.get(DATA_DIR_VARIABLE)
    if data_dir:
        config.data.data_dir = str(Path(data_dir).expanduser().resolve())
    return config


def render_html(notebook: Path) -> Path:
    """Write ``<notebook>.html`` beside an executed notebook."""
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_filename(str(notebook))
    target = notebook.with_suffix(".html")
    target.write_text(body, encoding="utf-8")
    return target


def load_comparison(run_dir: str | Path) -> pd.DataFrame:
    """The comparison table of a finished run (from its ``metrics.json``)."""
    metrics = json.loads((Path(run_dir) / "metrics.json").read_text())
    return comparison_table(metrics)


def _point_latest(run_dir: Path) -> None:
    latest = run_dir.parent.parent / "latest"
    try:
        if latest.is_symlink() or latest.exists():
            latest.unlink()
        os.symlink(run_dir, latest, target_is_directory=True)
    except OSError:
        logger.debug("could not point %s at %s", latest, run_dir)
