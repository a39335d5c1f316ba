"""Search spaces draw valid constructor keywords, conditional parameters only when they matter."""

from __future__ import annotations

import optuna
import pytest

from shrek.models import make_model
from shrek.tuning import SPACES, best_params, space_for


def _draws(model: str, n: int = 25, *, features: str = "search") -> list[dict]:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    space = space_for(model, features=features)
    return [space(study.ask()) for _ in range(n)]


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


def test_features_on_keeps_both_feature_sets_and_searches_their_weight():
    draws = _draws("lightfm", 20, features="on")

    assert all(p["use_user_features"] and p["use_item_features"] for p in draws)
    assert len({p["feature_weight"] for p in draws}) == 20
    assert all(make_model("lightfm", **p).get_params() for p in draws)


def test_features_off_keeps_both_feature_sets_off_and_draws_no_weight():
    draws = _draws("lightfm", 10, features="off")

    assert not any(p["use_user_features"] or p["use_item_features"] for p in draws)
    assert not any("feature_weight" in p for p in draws)


def test_bad_feature_choice_names_the_choices():
    with pytest.raises(ValueError, match="^features must be one of search, on, off, got 'some'$"):
        space_for("lightfm", features="some")


def test_best_params_replays_a_features_on_trial():
    trial = {
        "loss": "warp",
        "no_components": 32,
        "learning_rate": 0.05,
        "epochs": 10,
        "max_sampled": 10,
        "item_alpha": 1e-6,
        "user_alpha": 1e-6,
        "feature_weight": 0.05,
    }
    params = best_params("lightfm", trial, features="on")

    assert params == {
        **trial,
        "use_user_features": True,
        "use_item_features": True,
        "random_state": 42,
        "num_threads": 1,
    }


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
