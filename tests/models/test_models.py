"""Every recommender honours the same interface (a shared behaviour mixin)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shrek.models import (
    ALSRecommender,
    IdMap,
    Interactions,
    LightFMRecommender,
    PopularityRecommender,
    Recommender,
    make_model,
)
from shrek.models.features import user_tokens


@pytest.fixture
def interactions(small_ratings) -> Interactions:
    return Interactions(small_ratings)


@pytest.fixture
def metadata(small_ratings):
    users = pd.DataFrame(
        {
            "user_id": np.arange(1, 10),
            "age": [17, 23, 30, 40, 47, 52, 60, 33, 25],
            "gender": ["M", "F"] * 4 + ["F"],
            "occupation": ["student", "writer", "artist"] * 3,
            "zip": ["00000"] * 9,
        }
    )
    movies = pd.DataFrame(
        {
            "movie_id": [f"movie+{i}" for i in range(10)],
            "title": [f"Movie {i}" for i in range(10)],
            "year": pd.array([1990 + i for i in range(10)], dtype="Int64"),
            "release_date": pd.NaT,
            "genres": ["Comedy" if i % 2 else "Drama|Thriller" for i in range(10)],
            "imdb_url": None,
        }
    )
    return users, movies


class RecommenderBehaviour:
    """What every model must do; subclasses say how to build one."""

    def make(self) -> Recommender:
        raise NotImplementedError

    @pytest.fixture
    def fitted(self, interactions, metadata) -> Recommender:
        users, movies = metadata
        return self.make().fit(interactions, users=users, movies=movies)

    def test_recommends_n_unseen_movies_per_user(self, fitted, small_ratings):
        recs = fitted.recommend([1, 2, 3], N=3)
        assert list(recs.columns) == ["user_id", "movie_id", "score", "rank"]
        assert recs.groupby("user_id").size().to_dict() == {1: 3, 2: 3, 3: 3}
        seen = set(map(tuple, small_ratings[["user_id", "movie_id"]].to_numpy()))
        assert not any((u, m) in seen for u, m in recs[["user_id", "movie_id"]].to_numpy())

    def test_lists_are_ranked_best_first(self, fitted):
        recs = fitted.recommend([1, 2], N=4)
        for _, items in recs.groupby("user_id"):
            assert items["rank"].tolist() == [1, 2, 3, 4]
            assert items["score"].is_monotonic_decreasing

    def test_seen_filter_can_be_switched_off(self, fitted):
        recs = fitted.recommend([1], N=10, filter_already_seen=False)
        assert len(recs) == 10

    def test_short_catalogue_gives_short_lists(self, fitted):
        recs = fitted.recommend([1], N=50)
        assert len(recs) == 10 - fitted.interactions.user_items[0].nnz

    def test_unknown_user_is_a_key_error(self, fitted):
        with pytest.raises(KeyError, match="unknown id 999"):
            fitted.recommend([999])

    def test_save_load_gives_the_same_lists(self, fitted, tmp_path):
        folder = fitted.save(tmp_path / "model")
        loaded = type(fitted).load(folder)
        pd.testing.assert_frame_equal(loaded.recommend([1, 4], N=3), fitted.recommend([1, 4], N=3))
        assert (folder / "model.json").exists()

    def test_unfitted_model_says_so(self):
        with pytest.raises(ValueError, match="is not fitted; call fit\\(\\) first"):
            self.make().recommend([1])


class PersonalBehaviour(RecommenderBehaviour):
    """What every personalised model must do besides."""

    def test_learns_the_taste_structure(self, fitted):
        # Users with odd ids rated odd movies only; their best unseen movie should be odd.
        recs = fitted.recommend([3, 5, 7], N=1)
        assert all(int(m.split("+")[1]) % 2 == 1 for m in recs["movie_id"])


class TestPopularity(RecommenderBehaviour):
    def make(self):
        return PopularityRecommender()

    def test_everyone_gets_the_most_rated_unseen(self, fitted, small_ratings):
        counts = small_ratings.groupby("movie_id").size()
        top = fitted.recommend_new_users(N=2)
        assert (
            top["movie_id"].tolist()
            == counts.sort_values(ascending=False, kind="stable").index[:2].tolist()
        )


class TestALS(PersonalBehaviour):
    def make(self):
        return ALSRecommender(factors=2, regularization=0.01, iterations=20, num_threads=1)

    @pytest.mark.parametrize("weighting", ["none", "binary", "bm25", "tfidf"])
    def test_every_weighting_fits(self, interactions, weighting):
        model = ALSRecommender(factors=4, weighting=weighting, num_threads=1).fit(interactions)
        assert len(model.recommend([1], N=2)) == 2

    def test_bad_weighting(self):
        with pytest.raises(
            ValueError, match="^weighting must be one of none, binary, bm25, tfidf, got 'idf'$"
        ):
            ALSRecommender(weighting="idf")


class TestLightFM(PersonalBehaviour):
    def make(self):
        return LightFMRecommender(no_components=8, epochs=20, random_state=1)

    def test_new_user_from_features_alone(self, fitted, metadata):
        users, _ = metadata
        newcomer = users[users["user_id"] == 9]
        recs = fitted.recommend_new_users(newcomer, N=3)
        assert recs["user_id"].tolist() == [9, 9, 9]
        assert recs["movie_id"].is_unique

    def test_features_change_cold_start_answers(self, fitted):
        a = pd.DataFrame({"user_id": [100], "age": [20], "gender": ["F"], "occupation": ["writer"]})
        b = pd.DataFrame({"user_id": [100], "age": [60], "gender": ["M"], "occupation": ["artist"]})
        scores_a = fitted.recommend_new_users(a, N=10).set_index("movie_id")["score"]
        scores_b = fitted.recommend_new_users(b, N=10).set_index("movie_id")["score"]
        assert not np.allclose(scores_a.sort_index(), scores_b.sort_index())

    def test_new_users_weigh_metadata_as_training_did(self, interactions, metadata):
        """Regression (review of issue 8): recommend_new_users normalised a new user's tokens to
        sum to 1 whatever feature_weight the model was fitted with; now a new user's row is a
        known user's training row with the identity feature left out."""
        users, movies = metadata
        model = LightFMRecommender(no_components=8, epochs=5, feature_weight=0.1, random_state=1)
        model.fit(interactions, users=users, movies=movies)
        known = users[users["user_id"] == 1]

        row = model.user_space.matrix(
            list(user_tokens(known)), index=np.array([0]), token_weight=0.1
        ).tolil()
        row[0, 0] = 0  # the identity feature of user 1
        _, embedding = model.model.get_user_representations(row.tocsr())
        expected = (embedding @ model._item_embeddings.T + model._item_biases).ravel()
        answer = model.recommend_new_users(known, N=10)

        order = model.interactions.items.to_index(answer["movie_id"])
        np.testing.assert_allclose(answer["score"], expected[order], rtol=1e-5)

    def test_needs_metadata_for_features(self, interactions):
        with pytest.raises(ValueError, match="use_user_features=True needs the users table"):
            LightFMRecommender().fit(interactions)


def test_make_model_names_choices_and_bad_parameters():
    with pytest.raises(
        ValueError, match="^model must be one of popularity, als, lightfm, got 'svd'$"
    ):
        make_model("svd")
    with pytest.raises(TypeError, match="bad parameters for model 'als'"):
        make_model("als", factor=3)


def test_id_map_round_trip():
    ids = IdMap(["b", "a", "c"])  # the order given is kept, not sorted
    assert ids.to_index(["c", "b"]).tolist() == [2, 0]
    assert ids.to_ids(np.array([[1, 2]])).tolist() == [["a", "c"]]
    assert ids.to_index(["zz"], missing=-1).tolist() == [-1]
    with pytest.raises(ValueError, match="ids must be unique"):
        IdMap([1, 1])


def test_repeated_pairs_are_refused_not_summed(small_ratings):
    """Regression (review of issue 2): a repeated (user, movie) pair was summed (4 + 5 = 9)."""
    repeated = pd.concat([small_ratings, small_ratings.iloc[[3]]], ignore_index=True)
    user, movie = small_ratings.iloc[3][["user_id", "movie_id"]]

    with pytest.raises(ValueError) as info:
        Interactions(repeated)
    assert str(info.value) == (
        "ratings must hold one row per (user_id, movie_id) pair, got 1 repeated pairs, first "
        f"({user!r}, {movie!r}) at row {len(small_ratings)}; keep one rating per pair (e.g. the "
        "latest) before building the matrix"
    )


def test_given_id_maps_are_kept_even_when_empty(small_ratings):
    """Regression: ``users or IdMap(...)`` replaced an empty given IdMap (falsy) silently."""
    items = IdMap(sorted(small_ratings["movie_id"].unique()))
    built = Interactions(small_ratings.iloc[:0], users=IdMap([]), items=items)

    assert built.shape == (0, len(items))
    assert built.items is items


def test_feature_weight_scales_metadata_against_identity():
    from shrek.models.features import FeatureSpace

    space = FeatureSpace(2, ["genre:Drama", "decade:1990"])
    rows = space.matrix(
        [["genre:Drama", "decade:1990"], []], index=np.array([0, -1]), token_weight=0.5
    )
    # identity 1 and two tokens at 0.5, normalised to sum 1
    assert rows[0].toarray().round(3).tolist() == [[0.5, 0.0, 0.25, 0.25]]
    assert rows[1].nnz == 0
    # a new user or movie: the same row without the identity, not renormalised
    new = space.matrix([["genre:Drama", "decade:1990"]], token_weight=0.5)
    assert new.toarray().round(3).tolist() == [[0.0, 0.0, 0.25, 0.25]]
    with pytest.raises(ValueError, match="^feature_weight must be positive, got 0$"):
        LightFMRecommender(feature_weight=0)
