"""A loaded dataset: the four validated tables and their data version."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from shrek.data.schemas import (
    DEFAULT_RATING_SCALE,
    MOVIES_SCHEMA,
    TABLES,
    USERS_SCHEMA,
    WATCH_LOG_SCHEMA,
    ratings_schema,
    validate_table,
)
from shrek.errors import ShrekError

logger = logging.getLogger(__name__)

VERSION_FILE = "data_version.json"


class DataVersionMismatchError(ShrekError, ValueError):
    """A stored dataset's tables no longer hash to the data version stored beside them.

    Parameters
    ----------
    message : str
        What differs and what to do.
    folder : str
        The dataset folder.
    expected, actual : str
        The hash in the version file and the hash of the tables read.
    """

    def __init__(self, message: str, *, folder: str, expected: str, actual: str) -> None:
        super().__init__(message)
        self.folder = folder
        self.expected = expected
        self.actual = actual


@dataclass(frozen=True)
class DataVersion:
    """What identifies a dataset: a hash of its content, its row counts and its source.

    Attributes
    ----------
    hash : str
        SHA-256 (first 16 hex digits) over every table's columns and values: two datasets
        with the same rows in the same order have the same hash, whatever their source.
    rows : dict of str to int
        Row count per table.
    source : dict
        Where the data came from: ``kind`` ("movielens-100k", "kafka", ...), a path and file
        checksums, or a topic and the offsets consumed.
    created_at : str
        When the version was computed, ISO 8601 UTC.
    """

    hash: str
    rows: dict[str, int]
    source: dict[str, Any]
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Dataset:
    """The four tables of :mod:`shrek.data.schemas` and their :class:`DataVersion`.

    Build one with :meth:`from_tables` (validates and computes the version) or :meth:`load`.
    """

    ratings: pd.DataFrame
    users: pd.DataFrame
    movies: pd.DataFrame
    watch_log: pd.DataFrame
    version: DataVersion

    @classmethod
    def from_tables(
        cls,
        *,
        ratings: pd.DataFrame,
        users: pd.DataFrame,
        movies: pd.DataFrame,
        watch_log: pd.DataFrame,
        source: dict[str, Any],
        rating_scale: tuple[int, int] = DEFAULT_RATING_SCALE,
    ) -> Dataset:
        """Validate the tables against their schemas and compute the data version.

        Raises
        ------
        DataValidationError
            Naming the table, the row and the field of the first value outside its schema.
        """
        ratings, users, movies, watch_log = (
            _normalize(t) for t in (ratings, users, movies, watch_log)
        )
        tables = {
            "ratings": validate_table(ratings, ratings_schema(rating_scale), source="ratings"),
            "users": validate_table(users, USERS_SCHEMA, source="users"),
            "movies": validate_table(movies, MOVIES_SCHEMA, source="movies"),
            "watch_log": validate_table(watch_log, WATCH_LOG_SCHEMA, source="watch_log"),
        }
        version = DataVersion(
            hash=content_hash(tables),
            rows={name: len(table) for name, table in tables.items()},
            source=source,
        )
        logger.info("data version %s: %s", version.hash, version.rows)
        return cls(**tables, version=version)

    def tables(self) -> dict[str, pd.DataFrame]:
        """The four tables by name."""
        return {name: getattr(self, name) for name in TABLES}

    def save(self, folder: str | Path) -> Path:
        """Write each table as ``<folder>/<table>.parquet`` and the version as JSON."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for name, table in self.tables().items():
            table.to_parquet(folder / f"{name}.parquet", index=False)
        (folder / VERSION_FILE).write_text(json.dumps(self.version.to_dict(), indent=2))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> Dataset:
        """Read a dataset written by :meth:`save`, checking its content against its hash.

        Raises
        ------
        DataVersionMismatchError
            The tables were changed after they were written (their hash differs from the one
            in ``data_version.json``).
        """
        folder = Path(folder)
        stored = json.loads((folder / VERSION_FILE).read_text())
        tables = {name: pd.read_parquet(folder / f"{name}.parquet") for name in TABLES}
        tables = {name: _restore_dtypes(table) for name, table in tables.items()}
        version = DataVersion(**stored)
        actual = content_hash(tables)
        if actual != version.hash:
            raise DataVersionMismatchError(
                f"{folder}: the tables hash to {actual}, but {VERSION_FILE} records "
                f"{version.hash}; the tables were changed after they were written. Write them "
                "again with Dataset.save (or rerun the data step) so the version matches",
                folder=str(folder),
                expected=version.hash,
                actual=actual,
            )
        return cls(**tables, version=version)


def content_hash(tables: dict[str, pd.DataFrame]) -> str:
    """SHA-256 (16 hex digits) of the tables' names, columns and values, in table order."""
    digest = hashlib.sha256()
    for name in TABLES:
        table = tables[name]
        digest.update(f"{name}:{','.join(table.columns)}:{len(table)}".encode())
        if len(table):
            values = pd.util.hash_pandas_object(table, index=False).to_numpy()
            digest.update(values.tobytes())
    return digest.hexdigest()[:16]


def _normalize(table: pd.DataFrame) -> pd.DataFrame:
    """One dtype per kind of column, whatever the source: ``str`` text, ``datetime64[ns]``."""
    table = table.reset_index(drop=True).copy()
    for column in table.columns:
        values = table[column]
        if pd.api.types.is_datetime64_any_dtype(values):
            table[column] = values.astype("datetime64[ns]")
        elif values.dtype == object or pd.api.types.is_string_dtype(values):
            table[column] = values.astype("str")
    return table


def _restore_dtypes(table: pd.DataFrame) -> pd.DataFrame:
    """Parquet round trips may change string and datetime resolutions; restore the schema's."""
    return _normalize(table)
