"""Shared fixtures: a tiny synthetic MovieLens folder, and the real one for the realdata tier."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pandas as pd
import pytest
from ml100k_files import write_ml100k

from shrek.errors import DataQualityWarning


@pytest.fixture
def tiny_root(tmp_path: Path) -> Path:
    """A data directory (``SHREK_DATA_DIR``-style) holding the tiny ``ml-100k`` folder."""
    write_ml100k(tmp_path)
    return tmp_path


@pytest.fixture
def tiny_dataset(tiny_root: Path):
    from shrek.data import load_movielens_100k

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        return load_movielens_100k(tiny_root)


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """``SHREK_DATA_DIR`` (CI sets it to ../shared/datasets); the realdata tier needs it."""
    value = os.environ.get("SHREK_DATA_DIR")
    if not value:
        pytest.skip("SHREK_DATA_DIR is not set; the realdata tier needs MovieLens 100K")
    return Path(value)


@pytest.fixture(scope="session")
def ml100k(real_data_dir: Path):
    from shrek.data import load_movielens_100k

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        return load_movielens_100k(real_data_dir)


@pytest.fixture
def small_ratings() -> pd.DataFrame:
    """40 ratings of 8 users on 10 movies with a clear taste structure."""
    rows = []
    for user in range(1, 9):
        group = user % 2
        for item in range(10):
            if item % 2 == group and (user + item) % 3 != 0:
                rows.append((user, f"movie+{item}", 4 + (item % 2), 880000000 + user * 100 + item))
    frame = pd.DataFrame(rows, columns=["user_id", "movie_id", "rating", "timestamp"])
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], unit="s").astype("datetime64[ns]")
    return frame
