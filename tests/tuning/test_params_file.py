"""Best parameters go into the models: section only, with a comment on where they came from."""

from __future__ import annotations

import pytest

from shrek.config import load_config
from shrek.tuning import write_best_params

CONFIG = """\
# Settings of `make run`.
evaluation:
  k: 10
models:
  popularity: {}
  # Chosen by hand.
  als:
    factors: 16
    weighting: binary
  # LightFM as it was.
  lightfm:
    no_components: 64
    loss: warp
reports_dir: reports   # keep this comment
"""


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(CONFIG)
    return path


def test_only_the_tuned_entry_changes(config_file):
    write_best_params(
        config_file,
        {"als": {"factors": 32, "regularization": 0.5, "weighting": "bm25", "bm25_k1": 120.0}},
        comments={"als": "als: written by shrek tune; validation ndcg@10 0.3000."},
    )
    text = config_file.read_text()

    assert text.startswith("# Settings of `make run`.\nevaluation:\n  k: 10\nmodels:\n")
    assert "reports_dir: reports   # keep this comment\n" in text
    assert "  # LightFM as it was.\n  lightfm:\n    no_components: 64\n" in text
    assert "# Chosen by hand." not in text
    assert "  # als: written by shrek tune; validation ndcg@10 0.3000.\n  als:\n" in text
    config = load_config(config_file)
    assert config.models["als"] == {
        "factors": 32,
        "regularization": 0.5,
        "weighting": "bm25",
        "bm25_k1": 120.0,
    }
    assert config.models["lightfm"] == {"no_components": 64, "loss": "warp"}
    assert config.models["popularity"] == {}


def test_a_new_model_entry_is_added(config_file):
    write_best_params(config_file, {"bpr": {"factors": 8}})

    assert load_config(config_file).models["bpr"] == {"factors": 8}


def test_long_comments_wrap_at_100_characters(config_file):
    write_best_params(config_file, {"als": {"factors": 8}}, comments={"als": "word " * 60})

    assert max(len(line) for line in config_file.read_text().splitlines()) <= 100


def test_numpy_numbers_are_stored_as_plain_numbers(config_file):
    import numpy as np

    write_best_params(config_file, {"als": {"factors": np.int64(8), "alpha": np.float64(2.5)}})

    assert "factors: 8\n" in config_file.read_text()
    assert load_config(config_file).models["als"] == {"factors": 8, "alpha": 2.5}


def test_a_config_without_models_section_is_refused(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("evaluation:\n  k: 10\n")

    with pytest.raises(ValueError, match="has no top-level 'models:' section"):
        write_best_params(path, {"als": {"factors": 8}})
    assert path.read_text() == "evaluation:\n  k: 10\n"
