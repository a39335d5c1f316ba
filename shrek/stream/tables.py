"""Build Shrek's four tables from a collector folder's committed parts.

The ratings table keeps the latest rating per (user, movie) by event time (ties by partition
and offset; the full history stays in ``parts/rates``), the watch log aggregates the watch
events per (user, movie), and users and movies come from the metadata documents the collector
fetched. Events whose user or movie the metadata API reports as unknown are left out of the
tables; :func:`unknown_quarantine` lists them with that reason, :func:`quarantine` lists them
with the lines rejected on arrival and :func:`report_counters` counts them as quarantined.

Everything here only reads the folder: it works on a store opened ``read_only``.
"""

from __future__ import annotations

import pandas as pd

from shrek.data.schemas import empty_table
from shrek.stream.events import RateEvent, WatchEvent, format_event
from shrek.stream.store import CollectorStore

UnknownIds = tuple[set[int], set[str]]


def unknown_ids(store: CollectorStore) -> UnknownIds:
    """User ids and movie ids the metadata API reported as unknown, as recorded in ``store``."""
    unknown = [key for key, (status, _) in store.metadata().items() if status == "unknown"]
    users = {int(i) for kind, i in unknown if kind == "user"}
    movies = {i for kind, i in unknown if kind == "movie"}
    return users, movies


def report_counters(store: CollectorStore, unknown: UnknownIds) -> dict[str, int]:
    """The counters as reported: every line consumed counted once, in agreement with
    :func:`quarantine` (``quarantined + duplicates`` is its length).

    Returns
    -------
    dict
        ``accepted``: events stored on arrival less those whose user or movie is now known to
        be unknown; ``quarantined``: lines rejected on arrival plus those events;
        ``duplicates``: exact duplicates dropped.

    Notes
    -----
    The store counts lines on arrival, when the metadata API may not have answered yet; an
    event moves from accepted to quarantined once the API reports its user or movie unknown.
    Recommendation requests are never set apart (they are not part of the dataset).
    """
    counters = store.counters()
    late = count_unknown(store, unknown)
    return {
        "accepted": counters["accepted"] - late,
        "quarantined": counters["quarantined"] + late,
        "duplicates": counters["duplicates"],
    }


def count_unknown(store: CollectorStore, unknown: UnknownIds) -> int:
    """How many stored rate and watch events have an unknown user or movie.

    Notes
    -----
    Counting reads the ids of every committed event, so the count is kept per folder, batch
    and set of unknown ids: a monitor that reports the counters every few seconds reads the
    parts again only when a batch or an unknown id was added.
    """
    if not unknown[0] and not unknown[1]:
        return 0
    # From the database, not store.next_batch: the collector's writer process commits the
    # batches through a store of its own.
    last_batch = store.db.execute("SELECT MAX(batch_id) FROM batches").fetchone()[0]
    key = (str(store.folder.resolve()), last_batch, *map(frozenset, unknown))
    if key not in _UNKNOWN_COUNTS:
        total = 0
        for name in ("rates", "watches"):
            events = store.read_events(name, columns=["user_id", "movie_id"])
            if events is not None:
                total += int(unknown_mask(events, unknown).sum())
        if len(_UNKNOWN_COUNTS) >= _MAX_CACHED:
            _UNKNOWN_COUNTS.pop(next(iter(_UNKNOWN_COUNTS)))
        _UNKNOWN_COUNTS[key] = total
    return _UNKNOWN_COUNTS[key]


_UNKNOWN_COUNTS: dict[tuple, int] = {}  # see count_unknown; oldest entry dropped first
_MAX_CACHED = 16


def quarantine(store: CollectorStore, unknown: UnknownIds) -> pd.DataFrame:
    """Every line set apart, by partition and offset: partition, offset, reason, text, raw.

    The lines rejected on arrival (duplicates included) and the events whose user or movie is
    unknown (:func:`unknown_quarantine`).
    """
    frame = store.read_quarantine()
    late = unknown_quarantine(store, unknown)
    if not late.empty:
        frame = pd.concat([frame, late], ignore_index=True)
    return frame.sort_values(["partition", "offset"], ignore_index=True)


def rating_history(store: CollectorStore) -> pd.DataFrame:
    """Every rate event collected: user_id, movie_id, rating, timestamp, partition, offset."""
    rates = store.read_events("rates")
    return rates if rates is not None else empty_events("rating")


def latest_ratings(history: pd.DataFrame, unknown: UnknownIds) -> pd.DataFrame:
    """The latest rating per (user, movie) of ``history``, without unknown users and movies.

    Returns
    -------
    pandas.DataFrame
        ``[n_ratings, 4]``: user_id, movie_id, rating, timestamp, sorted by timestamp.
    """
    history = history[~unknown_mask(history, unknown)]
    ratings = (
        history.sort_values(["timestamp", "partition", "offset"], kind="stable")
        .drop_duplicates(["user_id", "movie_id"], keep="last")
        .sort_values(["timestamp", "user_id", "movie_id"], kind="stable")
    )
    return ratings[["user_id", "movie_id", "rating", "timestamp"]]


def watch_log(store: CollectorStore, unknown: UnknownIds) -> pd.DataFrame:
    """Per (user, movie): distinct minutes watched, the highest minute, the latest watch time."""
    watches = store.read_events("watches")
    if watches is None:
        return empty_table("watch_log")
    watches = watches[~unknown_mask(watches, unknown)]
    log = watches.groupby(["user_id", "movie_id"], as_index=False, sort=True).agg(
        minutes_watched=("minute", "nunique"),
        last_minute=("minute", "max"),
        timestamp=("timestamp", "max"),
    )
    return log.astype({"minutes_watched": "int64", "last_minute": "int64"})


def metadata_tables(store: CollectorStore) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The users and movies tables from the metadata documents found so far."""
    entries = store.metadata()
    users = [d for (k, _), (s, d) in entries.items() if k == "user" and s == "found"]
    movies = [d for (k, _), (s, d) in entries.items() if k == "movie" and s == "found"]
    user_table = empty_table("users")
    if users:
        user_table = pd.DataFrame(users)[list(user_table.columns)]
        user_table = user_table.astype({"user_id": "int64", "age": "int64"})
        user_table = user_table.sort_values("user_id", ignore_index=True)
    movie_table = empty_table("movies")
    if movies:
        frame = pd.DataFrame(movies)
        frame["genres"] = frame["genres"].map("|".join)
        frame["year"] = frame["year"].astype("Int64")
        frame["release_date"] = pd.to_datetime(frame["release_date"]).astype("datetime64[ns]")
        movie_table = frame[list(movie_table.columns)].sort_values("movie_id", ignore_index=True)
    return user_table, movie_table


def unknown_quarantine(store: CollectorStore, unknown: UnknownIds) -> pd.DataFrame:
    """Rate and watch events whose user or movie is unknown, as quarantine rows (partition,
    offset, reason, text, raw) with the line re-formatted from the stored event."""
    late = []
    for name, cls, value in (("rates", RateEvent, "rating"), ("watches", WatchEvent, "minute")):
        events = store.read_events(name)
        if events is None:
            continue
        for row in events[unknown_mask(events, unknown)].itertuples(index=False):
            event = cls(
                row.timestamp.to_pydatetime(), row.user_id, row.movie_id, getattr(row, value)
            )
            line = format_event(event)
            late.append(
                {
                    "partition": row.partition,
                    "offset": row.offset,
                    "reason": _unknown_reason(row.user_id, row.movie_id, unknown),
                    "text": line,
                    "raw": line.encode(),
                }
            )
    return pd.DataFrame(late, columns=["partition", "offset", "reason", "text", "raw"])


def unknown_mask(events: pd.DataFrame, unknown: UnknownIds) -> pd.Series:
    """Which rows of ``events`` have an unknown user or movie."""
    users, movies = unknown
    return events["user_id"].isin(users) | events["movie_id"].isin(movies)


def _unknown_reason(user_id: int, movie_id: str, unknown: UnknownIds) -> str:
    if movie_id in unknown[1]:
        return f"unknown movie id {movie_id!r}: the metadata API has no such movie"
    return f"unknown user id {user_id}: the metadata API has no such user"


def empty_events(value: str) -> pd.DataFrame:
    """An empty event table whose value column is ``value`` ("rating" or "minute")."""
    return pd.DataFrame(
        {
            "user_id": pd.Series(dtype="int64"),
            "movie_id": pd.Series(dtype=object),
            value: pd.Series(dtype="int64"),
            "timestamp": pd.Series(dtype="datetime64[ns]"),
            "partition": pd.Series(dtype="int64"),
            "offset": pd.Series(dtype="int64"),
        }
    )
