"""Small synthetic tables in Shrek's schemas, shared by the stream, serve and monitoring tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from shrek.data.schemas import empty_table


def synthetic_tables(
    *,
    n_users: int,
    n_movies: int,
    n_ratings: int,
    first_year: int,
    seed: int = 0,
    n_rated_users: int | None = None,
) -> dict[str, pd.DataFrame]:
    """Users ``1..n_users``, movies ``movie+<i>+<year>``, unique (user, movie) ratings.

    Only users ``1..n_rated_users`` (all by default) rate; ratings fall within 30 days of
    November 2023. Returns the four tables by name, the watch log empty.
    """
    rng = np.random.default_rng(seed)
    users = pd.DataFrame(
        {
            "user_id": np.arange(1, n_users + 1, dtype="int64"),
            "age": rng.integers(18, 70, n_users).astype("int64"),
            "gender": rng.choice(["M", "F"], n_users),
            "occupation": rng.choice(["student", "writer", "doctor"], n_users),
            "zip": [f"{z:05d}" for z in rng.integers(0, 99999, n_users)],
        }
    )
    years = first_year + np.arange(n_movies) % 30
    movies = pd.DataFrame(
        {
            "movie_id": [f"movie+{i}+{y}" for i, y in enumerate(years)],
            "title": [f"Movie {i}" for i in range(n_movies)],
            "year": pd.array(years, dtype="Int64"),
            "release_date": pd.to_datetime([f"{y}-01-01" for y in years]),
            "genres": rng.choice(["Comedy|Drama", "Action", ""], n_movies),
            "imdb_url": [f"http://imdb.example/{i}" for i in range(n_movies)],
        }
    )
    pairs = rng.choice((n_rated_users or n_users) * n_movies, n_ratings, replace=False)
    ratings = pd.DataFrame(
        {
            "user_id": (pairs // n_movies + 1).astype("int64"),
            "movie_id": movies["movie_id"].to_numpy()[pairs % n_movies],
            "rating": rng.integers(1, 6, n_ratings).astype("int64"),
            "timestamp": pd.to_datetime(
                1_700_000_000 + rng.integers(0, 86_400 * 30, n_ratings), unit="s"
            ),
        }
    )
    return {
        "ratings": ratings,
        "users": users,
        "movies": movies,
        "watch_log": empty_table("watch_log"),
    }
