"""Search spaces draw valid constructor keywords, conditional parameters only when they matter."""

from __future__ import annotations

import optuna
import pytest

from shrek.models import make_model
from shrek.tuning import SPACES, best_params, space_for


def _draws(model: str, n: int = 25) -> list[dict]:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    return [SPACES[model](study.ask()) for _ in range(n)]


@pytest.mark.parametrize("model", sorted(SPACES))
def test_every_candidate_builds_a_model(model):
    for params in _draws(model):
        assert make_model(model, **params).get_params()


def test_bm25_parameters_only_with_bm25_weighting():
    for params in _draws("als", 40):
        assert ("bm25_k1" in params) == (params["weighting"] == "bm25")


def test_the_lightfm_space_searches_the_ranking_losses_and_the_features():
    draws = _draws("lightfm", 40)

    assert {p["loss"] for p in draws} == {"warp", "warp-kos"}
    assert {p["use_user_features"] for p in draws} == {True, False}
    assert {p["use_item_features"] for p in draws} == {True, False}


def test_the_als_space_covers_the_issue_settings():
    drawn = set().union(*(_draws("als", 60)))

    assert {"factors", "regularization", "iterations", "weighting", "bm25_k1", "bm25_b"} <= drawn
    assert {p["weighting"] for p in _draws("als", 60)} >= {"bm25", "binary"}


def test_best_params_replays_a_trial_with_the_fixed_settings():
    params = best_params(
        "als",
        {
            "weighting": "binary",
            "factors": 16,
            "regularization": 1.0,
            "alpha": 2.0,
            "iterations": 10,
        },
    )

    assert params == {
        "factors": 16,
        "regularization": 1.0,
        "alpha": 2.0,
        "iterations": 10,
        "weighting": "binary",
        "random_state": 42,
        "num_threads": 0,
    }


def test_unknown_model_names_the_choices():
    with pytest.raises(ValueError, match="^model must be one of als, lightfm, got 'svd'$"):
        space_for("svd")
