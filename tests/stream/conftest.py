"""Fixtures of the stream tests: one real Tansu broker for the session, tiny datasets."""

from __future__ import annotations

import itertools
import logging

import numpy as np
import pandas as pd
import pytest

from shrek.data.dataset import Dataset
from shrek.data.schemas import empty_table
from shrek.stream.broker import EmbeddedBroker, KafkaSettings, ensure_topic
from shrek.stream.metadata_api import MetadataServer

logging.getLogger("kafka").setLevel(logging.WARNING)
_topics = itertools.count()


@pytest.fixture(scope="session")
def broker():
    """The embedded Tansu broker, a real process, for the whole session."""
    with EmbeddedBroker() as running:
        yield running


@pytest.fixture(scope="session")
def kafka_settings(broker) -> KafkaSettings:
    return broker.settings()


@pytest.fixture
def topic(kafka_settings, request) -> str:
    """A fresh 3-partition topic per test."""
    name = f"t{next(_topics)}-{request.node.name[:40]}".replace("[", "-").replace("]", "")
    name = "".join(c if c.isalnum() or c in "-_." else "-" for c in name)
    ensure_topic(kafka_settings, name, partitions=3)
    return name


def make_dataset(n_users: int = 30, n_movies: int = 20, n_ratings: int = 300, seed: int = 0):
    """A synthetic dataset: users 1..n_users, movies ``movie+<i>+<year>``, unique pairs."""
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
    years = 1990 + np.arange(n_movies) % 30
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
    pairs = rng.choice(n_users * n_movies, n_ratings, replace=False)
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
    return Dataset.from_tables(
        ratings=ratings,
        users=users,
        movies=movies,
        watch_log=empty_table("watch_log"),
        source={"kind": "synthetic", "seed": seed},
    )


@pytest.fixture(scope="session")
def small_dataset() -> Dataset:
    return make_dataset()


@pytest.fixture
def metadata_server(small_dataset):
    with MetadataServer(small_dataset) as server:
        yield server


@pytest.fixture(scope="session")
def dataset_factory():
    """:func:`make_dataset`, for tests that need their own synthetic dataset."""
    return make_dataset
