"""``shrek tune``: runs the studies, prints the best, writes the config only when asked."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from shrek.config import load_config
from shrek.tuning.cli import tune

CONFIG = """\
models:
  popularity: {}
  als:
    factors: 8
    weighting: binary
reports_dir: reports
"""


@pytest.fixture
def config_file(tmp_path, monkeypatch, taste_dataset):
    import shrek.tuning.study as study

    monkeypatch.setattr(study, "load_movielens_100k", lambda *a, **k: taste_dataset)
    path = tmp_path / "run.yaml"
    path.write_text(CONFIG)
    return path


def _tune(config_file, *args):
    output = config_file.parent / "records"
    options = ["--config", str(config_file), "--output", str(output), "--no-progress", *args]
    return CliRunner().invoke(tune, options, catch_exceptions=False)


def test_tune_writes_the_best_parameters_with_write(config_file):
    result = _tune(config_file, "--model", "als", "--trials", "2", "--write")

    assert result.exit_code == 0, result.output
    assert "test part not read" in result.output
    assert "als: 2 trials" in result.output
    text = config_file.read_text()
    assert "# als: written by `shrek tune` on" in text
    assert "validation ndcg@10" in text
    assert set(load_config(config_file).models) == {"popularity", "als"}
    assert len(list((config_file.parent / "records").glob("als-*.json"))) == 1


def test_tune_leaves_the_config_alone_by_default(config_file):
    result = _tune(config_file, "--model", "als", "--trials", "1")

    assert result.exit_code == 0, result.output
    assert config_file.read_text() == CONFIG


def test_bad_model_choice_is_a_usage_error(config_file):
    result = _tune(config_file, "--model", "svd")

    assert result.exit_code == 2
    assert "'svd' is not one of 'als', 'lightfm', 'all'" in result.output
