"""Tiny synthetic data for the tuning tests: two taste groups, with user and movie metadata."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

N_USERS, N_MOVIES = 48, 30


@pytest.fixture
def taste_dataset() -> SimpleNamespace:
    """48 users × 30 movies; even users like even movies, odd users odd ones (~600 ratings).

    Has the ``ratings``, ``users`` and ``movies`` attributes the tuning reads from a
    :class:`shrek.data.Dataset`.
    """
    rng = np.random.default_rng(0)
    rows = []
    for user in range(1, N_USERS + 1):
        for movie in range(N_MOVIES):
            liked = movie % 2 == user % 2
            if rng.random() < (0.7 if liked else 0.1):
                rows.append((user, f"movie+{movie}", 5 if liked else 2, 880_000_000 + len(rows)))
    ratings = pd.DataFrame(rows, columns=["user_id", "movie_id", "rating", "timestamp"])
    users = pd.DataFrame(
        {
            "user_id": np.arange(1, N_USERS + 1),
            "age": np.where(np.arange(1, N_USERS + 1) % 2 == 0, 22, 58),
            "gender": np.where(np.arange(1, N_USERS + 1) % 2 == 0, "F", "M"),
            "occupation": np.where(np.arange(1, N_USERS + 1) % 2 == 0, "student", "retired"),
        }
    )
    movies = pd.DataFrame(
        {
            "movie_id": [f"movie+{m}" for m in range(N_MOVIES)],
            "genres": ["Comedy" if m % 2 == 0 else "Drama" for m in range(N_MOVIES)],
            "year": [1990 + m for m in range(N_MOVIES)],
        }
    )
    return SimpleNamespace(ratings=ratings, users=users, movies=movies)


@pytest.fixture
def taste_split(taste_dataset):
    """The stratified (Recommenders protocol) split of :func:`taste_dataset`."""
    from shrek.data import stratified_split

    return stratified_split(taste_dataset.ratings, ratio=0.75, filter_by="item", seed=42)
