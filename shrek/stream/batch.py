"""Turn one batch of consumed records into what the store writes (:class:`BatchWrite`).

:func:`prepare_batch` drops exact duplicates (the same bytes as a line already collected or
earlier in the batch: delivery is at least once), parses and validates the other lines
(:func:`shrek.stream.events.parse_batch`), builds the three event tables with each event's
partition and offset, quarantines the rejected lines with their reason and asks the metadata
resolver about the users and movies the batch mentions.

Recommendation requests keep their provenance: the service sends the variant and the model
version that answered as Kafka record headers (:mod:`shrek.serve.request_log`), stored in the
``variant`` and ``model_version`` columns (``"unknown"`` when a line carried none).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from shrek.stream.events import RecommendationRequest, parse_batch
from shrek.stream.resolver import MetadataResolver
from shrek.stream.store import BatchWrite, CollectorStore, quarantine_row

DUPLICATE_REASON = "duplicate: the same bytes were already collected (at-least-once delivery)"
PROVENANCE_HEADERS: tuple[str, ...] = ("variant", "model_version")
UNKNOWN_PROVENANCE = "unknown"


@dataclass
class RawBatch:
    """The consumed records of one batch as plain columns, cheap to pickle to the writer
    process (:mod:`shrek.stream.writer`).

    Attributes
    ----------
    values : list of bytes
        ``[n_records]`` record values, in the order consumed.
    partitions, offsets : numpy.ndarray
        ``[n_records]`` int64.
    headers : dict
        Position -> the record's headers, only for records that carry some.
    """

    values: list[bytes]
    partitions: np.ndarray
    offsets: np.ndarray
    headers: dict[int, list[tuple[str, bytes]]]

    @classmethod
    def from_records(cls, records: list[Any]) -> RawBatch:
        """From kafka-python ``ConsumerRecord`` s."""
        n = len(records)
        return cls(
            values=[r.value for r in records],
            partitions=np.fromiter((r.partition for r in records), "int64", n),
            offsets=np.fromiter((r.offset for r in records), "int64", n),
            headers={i: list(r.headers) for i, r in enumerate(records) if r.headers},
        )

    def __len__(self) -> int:
        return len(self.values)


def prepare_batch(
    raw: RawBatch,
    *,
    store: CollectorStore,
    resolver: MetadataResolver,
    rating_scale: tuple[int, int],
) -> BatchWrite:
    """Deduplicate, parse, validate and tabulate one batch of consumed records.

    Parameters
    ----------
    raw : RawBatch
        ``[n_records]``, in the order consumed.
    store : CollectorStore
        Knows the hashes of the lines already committed.
    resolver : MetadataResolver
        Asked about the users and movies of the accepted events.
    rating_scale : tuple of int
        Accepted ratings ``(low, high)``.

    Returns
    -------
    BatchWrite
        Every record is counted once: accepted, quarantined or duplicate.
    """
    values, partitions, offsets = raw.values, raw.partitions, raw.offsets
    hashes, keep, duplicates = _deduplicate(values, store)

    kept = np.array(keep, "int64")
    parsed = parse_batch([values[i] for i in keep], rating_scale=rating_scale)
    tables = {
        "rates": _frame(parsed.rates, kept, partitions, offsets),
        "watches": _frame(parsed.watches, kept, partitions, offsets),
        "requests": _requests_frame(parsed.requests, kept, raw),
    }

    quarantine = [
        quarantine_row(int(partitions[i]), int(offsets[i]), values[i], DUPLICATE_REASON)
        for i in duplicates
    ]
    for j, reason in parsed.errors:
        i = keep[j]
        quarantine.append(quarantine_row(int(partitions[i]), int(offsets[i]), values[i], reason))
    quarantine.sort(key=lambda row: (row["partition"], row["offset"]))

    wanted = {("user", str(u)) for t in tables.values() for u in t["user_id"].unique()}
    for name in ("rates", "watches"):
        wanted |= {("movie", m) for m in tables[name]["movie_id"].unique()}
    return BatchWrite(
        tables=tables,
        quarantine=quarantine,
        hashes=[hashes[i] for i in keep],
        next_offsets=next_offsets(partitions, offsets),
        counters={
            "accepted": sum(len(t) for t in tables.values()),
            "quarantined": len(parsed.errors),
            "duplicates": len(duplicates),
        },
        metadata=resolver.resolve(wanted),
    )


def next_offsets(partitions: np.ndarray, offsets: np.ndarray) -> dict[int, int]:
    """Per partition, the offset after the highest one in ``offsets`` (both ``[n_records]``)."""
    return {int(p): int(offsets[partitions == p].max()) + 1 for p in np.unique(partitions).tolist()}


def _deduplicate(
    values: list[bytes], store: CollectorStore
) -> tuple[list[bytes], list[int], list[int]]:
    """The 16-byte hash of every value, the positions to keep and those of duplicates."""
    blake = hashlib.blake2b
    hashes = [blake(v, digest_size=16).digest() for v in values]
    distinct = set(hashes)
    if len(distinct) == len(hashes):
        already = store.seen(distinct)
        if not already:
            return hashes, list(range(len(hashes))), []
    else:
        already = store.seen(distinct)
    fresh: set[bytes] = set()
    keep, duplicates = [], []
    for i, h in enumerate(hashes):
        if h in already or h in fresh:
            duplicates.append(i)
        else:
            fresh.add(h)
            keep.append(i)
    return hashes, keep, duplicates


def _frame(columns: dict, kept: np.ndarray, partitions: Any, offsets: Any) -> pd.DataFrame:
    frame = pd.DataFrame({k: v for k, v in columns.items() if k != "index"})
    source = kept[columns["index"]] if len(kept) else np.empty(0, "int64")
    frame["partition"] = partitions[source]
    frame["offset"] = offsets[source]
    return frame


def _requests_frame(
    requests: list[tuple[int, RecommendationRequest]], kept: np.ndarray, raw: RawBatch
) -> pd.DataFrame:
    source = np.array([int(kept[j]) for j, _ in requests], "int64")
    events = [event for _, event in requests]
    provenance = [_provenance(raw.headers.get(i)) for i in source.tolist()]
    return pd.DataFrame(
        {
            "timestamp": pd.Series([e.timestamp for e in events], dtype="datetime64[ns]"),
            "user_id": pd.Series([e.user_id for e in events], dtype="int64"),
            "server": pd.Series([e.server for e in events], dtype=object),
            "status": pd.Series([e.status for e in events], dtype="int64"),
            "movie_ids": pd.Series([",".join(e.movie_ids) for e in events], dtype=object),
            "latency_ms": pd.Series([e.latency_ms for e in events], dtype="int64"),
            "variant": pd.Series([p[0] for p in provenance], dtype=object),
            "model_version": pd.Series([p[1] for p in provenance], dtype=object),
            "partition": pd.Series(raw.partitions[source], dtype="int64"),
            "offset": pd.Series(raw.offsets[source], dtype="int64"),
        }
    )


def _provenance(headers: Any) -> tuple[str, ...]:
    """The values of :data:`PROVENANCE_HEADERS` in a record's headers, ``"unknown"`` if absent
    or empty (values that are not UTF-8 keep their bytes as backslash escapes)."""
    found = {}
    for key, value in headers or ():
        if key in PROVENANCE_HEADERS and value:
            found[key] = bytes(value).decode("utf-8", errors="backslashreplace")
    return tuple(found.get(key, UNKNOWN_PROVENANCE) for key in PROVENANCE_HEADERS)
