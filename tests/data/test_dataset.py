"""Data versions and Parquet storage."""

from __future__ import annotations

import pandas as pd
import pytest

from shrek.data import Dataset
from shrek.data.dataset import DataVersionMismatchError
from shrek.errors import ShrekError


def rebuild(dataset: Dataset, **changes) -> Dataset:
    tables = dataset.tables() | changes
    return Dataset.from_tables(**tables, source={"kind": "test"})


def test_version_depends_on_content_only(tiny_dataset):
    same = rebuild(tiny_dataset)
    assert same.version.hash == tiny_dataset.version.hash
    assert same.version.source != tiny_dataset.version.source

    ratings = tiny_dataset.ratings.copy()
    ratings.loc[0, "rating"] = 1
    changed = rebuild(tiny_dataset, ratings=ratings)
    assert changed.version.hash != tiny_dataset.version.hash
    assert changed.version.rows == tiny_dataset.version.rows


def test_save_and_load_round_trip(tiny_dataset, tmp_path):
    folder = tiny_dataset.save(tmp_path / "data")
    assert sorted(p.name for p in folder.iterdir()) == [
        "data_version.json",
        "movies.parquet",
        "ratings.parquet",
        "users.parquet",
        "watch_log.parquet",
    ]
    loaded = Dataset.load(folder)
    assert loaded.version == tiny_dataset.version
    for name, table in tiny_dataset.tables().items():
        pd.testing.assert_frame_equal(loaded.tables()[name], table)


def test_load_detects_tables_changed_after_writing(tiny_dataset, tmp_path):
    folder = tiny_dataset.save(tmp_path / "data")
    ratings = pd.read_parquet(folder / "ratings.parquet")
    ratings.loc[0, "rating"] = 1
    ratings.to_parquet(folder / "ratings.parquet", index=False)
    with pytest.raises(DataVersionMismatchError) as info:
        Dataset.load(folder)
    stored = tiny_dataset.version.hash
    assert (info.value.folder, info.value.expected) == (str(folder), stored)
    assert info.value.actual != stored
    assert str(info.value) == (
        f"{folder}: the tables hash to {info.value.actual}, but data_version.json records "
        f"{stored}; the tables were changed after they were written. Write them again with "
        "Dataset.save (or rerun the data step) so the version matches"
    )
    assert isinstance(info.value, ShrekError)


def test_from_tables_validates(tiny_dataset):
    users = tiny_dataset.users.copy()
    users.loc[1, "age"] = 0
    with pytest.raises(ValueError, match=r"^users row 1: field 'age' must be 1–120, got 0$"):
        rebuild(tiny_dataset, users=users)
