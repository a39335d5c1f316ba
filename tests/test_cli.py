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
    assert err.startswith(f"error: SHREK_DATA_DIR={tmp_path} must hold ml-100k/u.data")
    assert "Traceback" not in err
