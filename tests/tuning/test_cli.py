"""``shrek tune``: runs the studies, prints the best, writes the config only when asked."""

from __future__ import annotations

import json

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


def _comment(text: str) -> str:
    """The comment lines of a config, joined into one line (write_best_params wraps them)."""
    lines = [line.strip()[1:].strip() for line in text.splitlines() if line.strip()[:1] == "#"]
    return " ".join(lines)


def test_tune_writes_the_best_parameters_with_write(config_file):
    result = _tune(config_file, "--model", "als", "--trials", "2", "--write")

    assert result.exit_code == 0, result.output
    assert "test part not read" in result.output
    assert "als: 2 trials" in result.output
    text = config_file.read_text()
    command = "shrek tune --model als --trials 2 --seed 0 --validation-seed 7 --write"
    assert f"als: written by `{command}` on" in _comment(text)
    assert "validation ndcg@10" in text
    assert set(load_config(config_file).models) == {"popularity", "als"}
    assert len(list((config_file.parent / "records").glob("als-*.json"))) == 1


def test_features_on_writes_a_hybrid_that_the_config_comment_reproduces(config_file):
    """Regression (review of issue 8): the LightFM entry of configs/run.yaml had features on at
    a hand-picked feature_weight; `--features on` searches feature_weight with both feature sets
    on, writes exactly what it found, and the comment records the command."""
    result = _tune(
        config_file, "--model", "lightfm", "--features", "on", "--trials", "2", "--write"
    )

    assert result.exit_code == 0, result.output
    (record,) = (config_file.parent / "records").glob("lightfm-*.json")
    study = json.loads(record.read_text())
    written = load_config(config_file).models["lightfm"]
    assert written == study["settings"]
    assert written["use_user_features"] is True and written["use_item_features"] is True
    assert written["feature_weight"] == study["searched"]["feature_weight"]
    assert "use_user_features" not in study["searched"]
    comment = _comment(config_file.read_text())
    command = (
        "shrek tune --model lightfm --features on --trials 2 --seed 0 --validation-seed 7 --write"
    )
    assert f"lightfm: written by `{command}` on {study['finished']}" in comment
    assert "2 trials, features on," in comment
    assert f"validation ndcg@10 {study['value']:.4f}." in comment


def test_tune_leaves_the_config_alone_by_default(config_file):
    result = _tune(config_file, "--model", "als", "--trials", "1")

    assert result.exit_code == 0, result.output
    assert config_file.read_text() == CONFIG


def test_bad_model_choice_is_a_usage_error(config_file):
    result = _tune(config_file, "--model", "svd")

    assert result.exit_code == 2
    assert "'svd' is not one of 'als', 'lightfm', 'all'" in result.output


def test_feature_choices_match_the_spaces():
    from shrek.tuning.cli import FEATURE_CHOICES
    from shrek.tuning.spaces import FEATURE_CHOICES as SPACE_CHOICES

    assert FEATURE_CHOICES == SPACE_CHOICES
