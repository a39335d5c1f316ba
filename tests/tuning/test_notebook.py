"""notebooks/tune.ipynb runs with papermill parameters and leaves a record to read back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "tune.ipynb"


@pytest.mark.realdata
def test_tune_notebook_runs_with_parameters(tmp_path, real_data_dir, monkeypatch):
    import papermill

    monkeypatch.setenv("SHREK_DATA_DIR", str(real_data_dir))
    config = tmp_path / "run.yaml"
    config.write_text((NOTEBOOK.parents[1] / "configs" / "run.yaml").read_text())
    before = config.read_text()

    papermill.execute_notebook(
        str(NOTEBOOK),
        str(tmp_path / "tune.ipynb"),
        parameters={
            "MODEL": "als",
            "TRIALS": 2,
            "CONFIG": str(config),
            "WRITE": False,
            "OUTPUT_DIR": str(tmp_path / "records"),
        },
        cwd=str(tmp_path),
        progress_bar=False,
    )

    (record,) = (tmp_path / "records").glob("als-*.json")
    result = json.loads(record.read_text())
    assert result["n_trials"] == 2
    assert 0 < result["validation"]["ndcg@10"] <= 1
    assert config.read_text() == before
