"""Fixtures of the stream tests: one real Tansu broker for the session, tiny datasets."""

from __future__ import annotations

import itertools
import logging
import os
import sqlite3
import subprocess
import sys

import pytest
from synthetic import synthetic_tables

from shrek.data.dataset import Dataset
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
    tables = synthetic_tables(
        n_users=n_users, n_movies=n_movies, n_ratings=n_ratings, first_year=1990, seed=seed
    )
    return Dataset.from_tables(**tables, source={"kind": "synthetic", "seed": seed})


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


@pytest.fixture(scope="session")
def collect_command(kafka_settings):
    """Start ``shrek collect`` on a topic as a real process (in its own process group) and
    return the :class:`subprocess.Popen`."""

    def start(topic: str, folder, *options: str) -> subprocess.Popen:
        env = {
            **os.environ,
            "SHREK_KAFKA_SESSION_TIMEOUT_MS": "2000",
            "PYTHONPATH": os.pathsep.join(sys.path),
        }
        command = [
            sys.executable, "-c", "from shrek.stream.cli import stream_commands; stream_commands()",
            "collect", "--bootstrap-servers", kafka_settings.bootstrap_servers,
            "--topic", topic, "--out", str(folder), "--no-progress", *options,
        ]  # fmt: skip
        return subprocess.Popen(
            command,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )

    return start


def committed_batches(folder) -> int:
    """Batches a collector folder has committed, read without disturbing its collector."""
    path = folder / "state.sqlite"
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            return db.execute("SELECT COUNT(*) FROM batches").fetchone()[0]
    except sqlite3.OperationalError:  # created but no table yet
        return 0


@pytest.fixture(scope="session")
def batches_of():
    """:func:`committed_batches`."""
    return committed_batches
