"""Users held out entirely from training: LightFM answers from metadata, ALS cannot answer."""

from __future__ import annotations

import numpy as np
import pytest

from shrek.evaluate.cold_start import evaluate_new_users, hold_out_users
from shrek.models import Interactions, make_model


@pytest.fixture
def held_out(taste_dataset):
    return hold_out_users(taste_dataset.ratings, fraction=0.25, seed=1)


def test_held_out_users_leave_training_entirely(taste_dataset, held_out):
    train, new_users = held_out

    assert not set(train["user_id"]) & set(new_users["user_id"])
    assert len(train) + len(new_users) == len(taste_dataset.ratings)
    assert new_users["user_id"].nunique() == 12


def test_the_draw_of_users_is_seeded(taste_dataset):
    first = hold_out_users(taste_dataset.ratings, seed=4)[1]
    again = hold_out_users(taste_dataset.ratings, seed=4)[1]

    assert first.equals(again)


def test_bad_fraction_says_the_range():
    with pytest.raises(ValueError, match="^fraction must be strictly between 0 and 1, got 1.5$"):
        hold_out_users(None, fraction=1.5)


def test_lightfm_answers_new_users_from_their_metadata(taste_dataset, held_out):
    train, new_users = held_out
    model = make_model("lightfm", no_components=8, epochs=20)
    model.fit(Interactions(train), users=taste_dataset.users, movies=taste_dataset.movies)
    popularity = make_model("popularity").fit(Interactions(train))

    lightfm_result = evaluate_new_users(model, new_users, taste_dataset.users, k=5)
    popularity_result = evaluate_new_users(popularity, new_users, taste_dataset.users, k=5)

    assert lightfm_result.summary["n_users"] == 12
    assert lightfm_result.summary["ndcg@5"] > popularity_result.summary["ndcg@5"]


def test_popularity_gives_every_new_user_the_same_list(taste_dataset, held_out):
    train, new_users = held_out
    popularity = make_model("popularity").fit(Interactions(train))

    lists = evaluate_new_users(popularity, new_users, taste_dataset.users, k=5).recommendations

    assert lists.groupby("user_id")["movie_id"].apply(tuple).nunique() == 1


def test_als_cannot_answer_new_users(taste_dataset, held_out):
    train, new_users = held_out
    als = make_model("als", factors=4, iterations=2).fit(Interactions(train))

    with pytest.raises(TypeError, match="^model must answer unseen users .* got 'als'"):
        evaluate_new_users(als, new_users, taste_dataset.users)


def test_known_users_are_refused(taste_dataset, held_out):
    train, _ = held_out
    popularity = make_model("popularity").fit(Interactions(train))
    known = train[train["user_id"] == np.sort(train["user_id"].unique())[0]]

    with pytest.raises(ValueError, match="^new_users must be absent from training, got 1 known"):
        evaluate_new_users(popularity, known, taste_dataset.users)
