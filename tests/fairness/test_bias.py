"""Issue 4, must show: a biased recommender fails SPD or DIR, an even-handed one passes."""

import numpy as np
import pandas as pd
import pytest

from shrek.fairness import Status, audit_model, gate

K = 10


def synthetic_lists(population, *, biased: bool) -> pd.DataFrame:
    """Personal lists (3 test movies and 7 others when the model 'finds' the user's taste,
    which it does for 85 % of users, drawn regardless of gender); when ``biased``, women get
    the ten blockbusters instead, which they rated already and never hit."""
    rng = np.random.default_rng(11)
    test = population["rating_true"].groupby("user_id")["movie_id"].apply(list)
    catalogue = population["movies"]["movie_id"].to_numpy()
    blockbusters, others = list(catalogue[:10]), catalogue[10:]
    rows = []
    for user, gender in population["users"][["user_id", "gender"]].itertuples(index=False):
        found = rng.random() < 0.85
        pool = [m for m in others if m not in test[user]]
        fill = list(rng.choice(pool, K, replace=False))
        personal = (list(test[user][:3]) + fill)[:K] if found else fill
        movies = blockbusters if biased and gender == "F" else personal
        rows += [(user, movie, float(K - r), r + 1) for r, movie in enumerate(movies)]
    return pd.DataFrame(rows, columns=["user_id", "movie_id", "score", "rank"])


def gender_audit(data, recommendations, model):
    return audit_model(
        recommendations,
        data["rating_true"],
        data["rating_train"],
        data["users"],
        data["movies"],
        k=K,
        model=model,
        features=["gender"],
        n_boot=500,
    )


def test_biased_recommender_fails_and_even_handed_one_passes(population):
    biased = gender_audit(population, synthetic_lists(population, biased=True), "biased")
    fair = gender_audit(population, synthetic_lists(population, biased=False), "fair")

    biased_status = {r.spec.name: r.status for r in biased.checks}
    assert biased_status["statistical_parity"] == Status.FAIL
    assert biased_status["disparate_impact"] == Status.FAIL
    assert biased.verdict == Status.FAIL
    assert {r.spec.name: r.status for r in fair.checks} == {
        "statistical_parity": Status.PASS,
        "disparate_impact": Status.PASS,
        "diversity_parity": Status.PASS,
        "personalization_parity": Status.PASS,
        "quality_parity": Status.PASS,
    }
    assert gate({"biased": biased, "fair": fair}, mode="block") == {
        "biased": False,
        "fair": True,
    }


def movielens_lists(data, *, biased: bool) -> pd.DataFrame:
    """Women get the ten most popular training movies when ``biased``; everyone else gets
    their best personal matches: their own test movies, topped up with popular ones."""
    popular = data["rating_train"]["movie_id"].value_counts().index[: 2 * K].tolist()
    test = data["rating_true"].groupby("user_id")["movie_id"].apply(list)
    rows = []
    for user, gender in data["users"][["user_id", "gender"]].itertuples(index=False):
        own = test.get(user, [])
        personal = list(dict.fromkeys([*own[:K], *popular]))[:K]
        movies = popular[:K] if biased and gender == "F" else personal
        rows += [(user, movie, float(K - r), r + 1) for r, movie in enumerate(movies)]
    return pd.DataFrame(rows, columns=["user_id", "movie_id", "score", "rank"])


@pytest.mark.realdata
def test_biased_recommender_fails_on_movielens(movielens):
    biased = gender_audit(movielens, movielens_lists(movielens, biased=True), "biased")
    fair = gender_audit(movielens, movielens_lists(movielens, biased=False), "fair")

    biased_status = {r.spec.name: r.status for r in biased.checks}
    assert Status.FAIL in {biased_status["statistical_parity"], biased_status["disparate_impact"]}
    assert biased.verdict == Status.FAIL
    fair_status = {r.spec.name: r.status for r in fair.checks}
    assert fair_status["statistical_parity"] == Status.PASS
    assert fair_status["disparate_impact"] == Status.PASS
    assert fair.verdict == Status.PASS
    assert fair.features["gender"].by_group["n_users"].unique().tolist() == [273, 670]
