"""Studies: repeatable from their seed, start from the current settings, report every trial."""

from __future__ import annotations

import json

import pytest

from shrek.tuning import Objective, run_studies, run_study, tuning_data
from shrek.tuning.study import results_table, save_studies


@pytest.fixture
def data(taste_dataset, taste_split):
    return tuning_data(taste_split[0], dataset=taste_dataset)


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


def test_start_from_is_the_first_trial(data):
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
    assert result.value >= first["value"]


def test_lightfm_study_runs_and_learns_the_tastes(data):
    result = run_study("lightfm", data, n_trials=3, seed=1)

    assert result.n_trials == 3
    assert result.params["num_threads"] == 1
    assert 0 < result.value <= 1


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
