"""Studies: repeatable from their seed, start from the current settings, report every trial."""

from __future__ import annotations

import json

import pytest

from shrek.evaluate import evaluate_model
from shrek.models import make_model
from shrek.tuning import Objective, run_studies, run_study, tuning_data
from shrek.tuning.study import results_table, save_studies


@pytest.fixture
def data(taste_dataset, taste_split):
    return tuning_data(taste_split[0], dataset=taste_dataset)


@pytest.fixture
def popularity_ndcg(data) -> float:
    """The popularity baseline's validation nDCG@10: what a study that learnt nothing reaches."""
    baseline = make_model("popularity").fit(data.interactions)
    return evaluate_model(baseline, data.valid, k=10).summary["ndcg@10"]


def test_a_study_is_repeatable_from_its_seed(data):
    first = run_study("als", data, n_trials=4, seed=3)
    again = run_study("als", data, n_trials=4, seed=3)

    assert first.trials["value"].tolist() == again.trials["value"].tolist()
    assert first.searched == again.searched


def test_the_best_trial_is_the_best_validation_score(data):
    result = run_study("als", data, n_trials=5)

    assert result.value == pytest.approx(result.trials["value"].max())
    assert result.validation["ndcg@10"] == pytest.approx(result.value)
    assert set(result.validation) == {"ndcg@10", "map@10", "precision@10", "recall@10"}


def test_start_from_is_the_first_trial(data, popularity_ndcg):
    current = {
        "factors": 8,
        "regularization": 1.0,
        "alpha": 2.0,
        "iterations": 5,
        "weighting": "binary",
        "num_threads": 1,
    }
    result = run_study("als", data, n_trials=2, start_from=current)

    first = result.trials.iloc[0]
    assert first["params_factors"] == 8
    assert first["params_weighting"] == "binary"
    # the first trial was fitted with the given settings (the extra num_threads is ignored)
    refit = Objective("als", data).score({**current, "random_state": 42, "num_threads": 0})
    assert first["value"] == pytest.approx(refit["ndcg@10"])
    assert first["value"] > popularity_ndcg


def test_lightfm_study_runs_and_learns_the_tastes(data, popularity_ndcg):
    result = run_study("lightfm", data, n_trials=3, seed=1)

    assert result.n_trials == 3
    assert result.params["num_threads"] == 1
    assert result.value > popularity_ndcg


def test_a_features_on_study_keeps_the_features_and_stores_them(data, popularity_ndcg):
    result = run_study("lightfm", data, n_trials=2, seed=1, features="on")

    assert all(result.trials["params_feature_weight"].notna())
    assert "params_use_user_features" not in result.trials
    assert result.params["use_user_features"] and result.params["use_item_features"]
    assert result.settings == {
        **result.searched,
        "use_user_features": True,
        "use_item_features": True,
    }
    assert result.value > popularity_ndcg


def test_the_objective_scores_on_the_validation_part(data):
    objective = Objective("als", data, k=5)
    scores = objective.score({"factors": 8, "iterations": 5, "weighting": "binary"})

    assert set(scores) == {"ndcg@5", "map@5", "precision@5", "recall@5", "fit_seconds"}


def test_bad_metric_names_the_choices(data):
    with pytest.raises(
        ValueError, match="^metric must be one of ndcg, map, precision, recall, got 'auc'$"
    ):
        Objective("als", data, metric="auc")


def test_bad_trial_count_says_so(data):
    with pytest.raises(ValueError, match="^n_trials must be a positive integer, got 0$"):
        run_study("als", data, n_trials=0)


def test_bad_model_choice_names_the_choices(data):
    with pytest.raises(ValueError, match="^models must be one of all, als, lightfm, got 'svd'$"):
        run_studies(data, models="svd")


def test_results_are_tabled_and_saved(data, tmp_path):
    results = run_studies(data, models="als", n_trials=2)
    table = results_table(results)
    paths = save_studies(results, output=tmp_path / "records")

    assert list(table.index) == ["als"]
    assert table.loc["als", "trials"] == 2
    record = json.loads(paths[0].read_text())
    assert record["model"] == "als"
    assert len(record["trials"]) == 2
    assert record["validation_seed"] == data.seed
