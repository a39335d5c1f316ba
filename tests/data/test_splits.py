"""The Recommenders stratified split and the temporal split."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shrek.data import stratified_split, temporal_split


@pytest.fixture
def ratings() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 2000
    frame = pd.DataFrame(
        {
            "user_id": rng.integers(1, 60, n),
            "movie_id": [f"m+{i}" for i in rng.integers(0, 80, n)],
            "rating": rng.integers(1, 6, n),
            "timestamp": pd.to_datetime(rng.integers(8.7e8, 8.9e8, n), unit="s"),
        }
    )
    return frame.drop_duplicates(["user_id", "movie_id"]).reset_index(drop=True)


def reference_stratified(data: pd.DataFrame, ratio: float, seed: int) -> pd.Index:
    """Train rows of the published algorithm, written out step by step."""
    data = data.copy()
    np.random.seed(seed)  # noqa: NPY002 (the published algorithm uses the legacy global RNG)
    data["random"] = np.random.rand(data.shape[0])  # noqa: NPY002
    data = data.sort_values(["movie_id", "random"])
    groups = data.groupby("movie_id")
    data["rank"] = (groups.cumcount() + 1) / groups["movie_id"].transform("count")
    return data.index[data["rank"] <= ratio]


def test_stratified_matches_the_recommenders_algorithm(ratings):
    train, test = stratified_split(ratings, ratio=0.75, filter_by="item", seed=42)
    assert sorted(train.index) == sorted(reference_stratified(ratings, 0.75, 42))
    assert len(train) + len(test) == len(ratings)
    assert not train.index.intersection(test.index).size


def test_stratified_splits_every_movie_three_to_one(ratings):
    train, _ = stratified_split(ratings)
    share = train.groupby("movie_id").size() / ratings.groupby("movie_id").size()
    counts = ratings.groupby("movie_id").size()
    # Each movie keeps floor(0.75 n) ratings in train, so its share is within 1/n of 0.75.
    assert ((share - 0.75).abs() <= 1 / counts + 1e-9).all()


def test_stratified_is_seeded(ratings):
    a, _ = stratified_split(ratings, seed=1)
    b, _ = stratified_split(ratings, seed=1)
    c, _ = stratified_split(ratings, seed=2)
    assert a.index.equals(b.index)
    assert not a.index.equals(c.index)


def test_temporal_holds_out_each_users_latest(ratings):
    train, test = temporal_split(ratings, test_fraction=0.2)
    last_train = train.groupby("user_id")["timestamp"].max()
    first_test = test.groupby("user_id")["timestamp"].min()
    both = last_train.index.intersection(first_test.index)
    assert (last_train[both] <= first_test[both]).all()
    sizes = ratings.groupby("user_id").size()
    held = test.groupby("user_id").size().reindex(sizes.index, fill_value=0)
    assert ((held - 0.2 * sizes).abs() < 1).all()


def test_temporal_holds_out_at_least_the_latest_rating_of_every_user():
    """Regression (review of issue 2): the docstring said a user whose share rounds to nothing
    keeps every rating in train; the latest rating always goes to test."""
    ratings = pd.DataFrame(
        {
            "user_id": [1, 2, 2, 3, 3, 3, 3, 3],
            "movie_id": [f"m+{i}" for i in range(8)],
            "rating": 4,
            "timestamp": pd.to_datetime(np.arange(8), unit="D"),
        }
    )
    train, test = temporal_split(ratings, test_fraction=0.2)

    assert test.groupby("user_id").size().to_dict() == {1: 1, 2: 1, 3: 1}
    assert train.groupby("user_id").size().to_dict() == {2: 1, 3: 4}
    assert test["movie_id"].tolist() == ["m+0", "m+2", "m+7"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ratio": 1.5}, "ratio must be strictly between 0 and 1, got 1.5"),
        ({"filter_by": "movie"}, "filter_by must be one of 'user', 'item', got 'movie'"),
    ],
)
def test_bad_arguments(ratings, kwargs, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        stratified_split(ratings, **kwargs)
