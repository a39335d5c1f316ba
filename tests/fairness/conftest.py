"""Tiny synthetic inputs for the fairness audit, and MovieLens 100K for the realdata tier."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shrek.fairness import OUTCOMES

GENRES = ("Action", "Comedy", "Drama", "Romance", "Sci-Fi", "Thriller")
OCCUPATIONS = ("student", "writer", "engineer", "artist")
N_POPULAR = 10


@pytest.fixture
def tiny():
    """Three users, five movies, k=2; every outcome is worked out by hand in test_outcomes."""
    movies = pd.DataFrame(
        {
            "movie_id": ["m1", "m2", "m3", "m4", "m5"],
            "title": ["One", "Two", "Three", "Four", "Five"],
            "genres": ["Action|Comedy", "Action", "Drama", "", "Comedy"],
        }
    )
    recommendations = pd.DataFrame(
        {
            "user_id": [1, 1, 1, 2, 2, 2, 3, 3, 3],
            "movie_id": ["m1", "m3", "m5", "m1", "m2", "m3", "m4", "m5", "m1"],
            "score": [0.9, 0.8, 0.7, 0.9, 0.8, 0.7, 0.9, 0.8, 0.7],
            "rank": [1, 2, 3, 1, 2, 3, 1, 2, 3],
        }
    )
    rating_true = _ratings([(1, "m3"), (1, "m5"), (2, "m4"), (3, "m4")])
    rating_train = _ratings([(1, "m2"), (1, "m3"), (2, "m3"), (2, "m5")])
    return {
        "recommendations": recommendations,
        "rating_true": rating_true,
        "rating_train": rating_train,
        "movies": movies,
    }


@pytest.fixture
def population():
    """1,000 users (500 women, 500 men), 100 movies: a store for the biased recommender.

    Movies ``m000``..``m009`` are the blockbusters every user rated in training; each user's
    five test movies come from the other 90, so a list of blockbusters never hits.
    """
    rng = np.random.default_rng(7)
    n_users, n_movies = 1000, 100
    user_ids = np.arange(1, n_users + 1, dtype="int64")
    users = pd.DataFrame(
        {
            "user_id": user_ids,
            "age": rng.integers(15, 70, n_users).astype("int64"),
            "gender": np.where(user_ids % 2 == 0, "F", "M"),
            "occupation": rng.choice(OCCUPATIONS, n_users),
            "zip": "00000",
        }
    )
    movie_ids = [f"m{i:03d}" for i in range(n_movies)]
    genres = ["|".join(rng.choice(GENRES, rng.integers(1, 3), replace=False)) for _ in movie_ids]
    movies = pd.DataFrame({"movie_id": movie_ids, "title": movie_ids, "genres": genres})

    train, test = [], []
    for user in user_ids:
        personal = rng.choice(np.arange(N_POPULAR, n_movies), 10, replace=False)
        train += [(user, movie_ids[m]) for m in [*range(N_POPULAR), *personal[:5]]]
        test += [(user, movie_ids[m]) for m in personal[5:]]
    return {
        "users": users,
        "movies": movies,
        "rating_train": _ratings(train),
        "rating_true": _ratings(test),
    }


@pytest.fixture
def make_outcomes():
    """Build an outcomes table from per-user columns; unspecified outcomes get defaults."""

    def build(user_ids, **columns) -> pd.DataFrame:
        n = len(user_ids)
        defaults = {
            "hit_at_k": np.ones(n),
            "ndcg_at_k": np.full(n, 0.5),
            "recall_at_k": np.full(n, 0.5),
            "diversity": np.full(n, 0.7),
            "personalization": np.full(n, 0.9),
            "popularity": np.full(n, 0.2),
            "calibration": np.full(n, 0.1),
        }
        defaults.update({name: np.asarray(values, dtype=float) for name, values in columns.items()})
        frame = pd.DataFrame({"user_id": np.asarray(user_ids, dtype="int64")})
        for name in OUTCOMES:
            frame[name] = defaults[name]
        frame.attrs["k"] = 10
        return frame

    return build


@pytest.fixture
def make_users():
    """Build a users table; ``gender`` and ``occupation`` are per-user sequences."""

    def build(gender, occupation=None, age=None) -> pd.DataFrame:
        n = len(gender)
        return pd.DataFrame(
            {
                "user_id": np.arange(1, n + 1, dtype="int64"),
                "age": np.full(n, 30, dtype="int64") if age is None else age,
                "gender": list(gender),
                "occupation": ["student"] * n if occupation is None else list(occupation),
                "zip": "00000",
            }
        )

    return build


@pytest.fixture(scope="session")
def movielens():
    """MovieLens 100K from ``$SHREK_DATA_DIR/ml-100k``, split 80/20 within each user (seeded)."""
    root = os.environ.get("SHREK_DATA_DIR")
    folder = Path(root or "", "ml-100k")
    if not root or not (folder / "u.data").is_file():
        pytest.skip("set SHREK_DATA_DIR to a folder holding ml-100k/ to run the realdata tier")
    users = pd.read_csv(
        folder / "u.user",
        sep="|",
        names=["user_id", "age", "gender", "occupation", "zip"],
        dtype={"zip": str},
    )
    ratings = pd.read_csv(
        folder / "u.data", sep="\t", names=["user_id", "movie_id", "rating", "timestamp"]
    ).astype({"movie_id": str})
    genre_names = pd.read_csv(folder / "u.genre", sep="|", names=["genre", "id"]).dropna()
    genre_names = genre_names["genre"].tolist()
    items = pd.read_csv(
        folder / "u.item",
        sep="|",
        names=["movie_id", "title", "release_date", "video", "imdb_url", *genre_names],
        encoding="latin-1",
    ).astype({"movie_id": str})
    flags = items[genre_names].to_numpy() == 1
    items["genres"] = ["|".join(np.array(genre_names)[row]) for row in flags]

    shuffled = ratings.sample(frac=1.0, random_state=0)
    position = shuffled.groupby("user_id").cumcount()
    size = shuffled.groupby("user_id")["movie_id"].transform("size")
    in_test = (position < np.maximum(1, (0.2 * size).astype(int))).reindex(ratings.index)
    return {
        "users": users,
        "movies": items[["movie_id", "title", "genres"]],
        "rating_train": ratings.loc[~in_test].reset_index(drop=True),
        "rating_true": ratings.loc[in_test].reset_index(drop=True),
    }


def _ratings(pairs) -> pd.DataFrame:
    frame = pd.DataFrame(pairs, columns=["user_id", "movie_id"]).astype({"user_id": "int64"})
    frame["rating"] = 4
    frame["timestamp"] = pd.Timestamp("2024-01-01")
    return frame
