"""The command line: clear one-line errors, and the data command."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from shrek.cli import cli, main


def test_data_command_prints_the_version(tiny_root):
    result = CliRunner().invoke(cli, ["data", "--data-dir", str(tiny_root)])
    assert result.exit_code == 0, result.output
    version = json.loads(result.output[result.output.index("{") :])
    assert version["rows"] == {"ratings": 15, "users": 5, "movies": 6, "watch_log": 0}


def test_missing_data_is_one_clear_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("sys.argv", ["shrek", "data", "--data-dir", str(tmp_path)])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: the data folder {tmp_path} must hold ml-100k/u.data")
    assert "Traceback" not in err


def test_missing_run_config_warns_that_the_tuned_parameters_are_not_used(tmp_path, monkeypatch):
    """Regression (review of issue 8): without configs/run.yaml the defaults were used silently."""
    import shrek.config
    from shrek.config import MissingConfigWarning, load_config

    monkeypatch.setattr(shrek.config, "DEFAULT_CONFIG", tmp_path / "run.yaml")
    with pytest.warns(MissingConfigWarning, match=r"run.yaml does not exist: using the built-in"):
        config = load_config()
    assert config.models == {"popularity": {}, "als": {}, "lightfm": {}}


def test_package_data_of_the_shrek_command_exists():
    """Regression (review of issue 2): pyproject listed package data that was not there."""
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    declared = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    for pattern in declared["package-data"]["shrek"]:
        assert list((root / "shrek").glob(pattern)), f"shrek/{pattern} matches no file"
