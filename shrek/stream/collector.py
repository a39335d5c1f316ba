"""Consume the event stream into Shrek's four tables, exactly once, crash-safe.

The :class:`Collector` reads a topic as a consumer group in bounded batches. For each batch it

1. drops exact duplicates (same bytes as a line already collected: delivery is at least once),
2. parses and validates every line (:func:`shrek.stream.events.parse_batch`: field count,
   timestamp, user id, movie id form, rating within the scale, minute ≥ 0),
3. asks the metadata API about users and movies it has not seen (when it is down the events
   are stored anyway and the ids fetched later),
4. writes the events as Parquet parts and the rejected lines to quarantine, and records the
   batch with its next offsets in one SQLite transaction (:mod:`shrek.stream.store`),
5. commits the offsets to Kafka, which is informative only: on start the collector seeks to
   the ledger's offsets, so a ``kill -9`` at any moment loses and duplicates nothing.

:meth:`Collector.to_dataset` builds the four tables from the committed parts: the latest rating
per (user, movie) by event time (the full history stays in ``parts/rates``), the watch log
aggregated from watch events, users and movies from the fetched metadata. Events whose user or
movie the API reports as unknown are left out of the tables and listed by
:meth:`Collector.quarantine` with that reason.

Notes
-----
One collector per output folder (a lock file enforces it). Running several collectors in one
group needs one folder each, and merging their datasets is not implemented.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import signal
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shrek.data.dataset import Dataset
from shrek.data.schemas import DEFAULT_RATING_SCALE, empty_table
from shrek.errors import ShrekWarning
from shrek.stream.broker import KafkaSettings
from shrek.stream.events import RateEvent, WatchEvent, check_rating_scale, format_event, parse_batch
from shrek.stream.metadata_api import MetadataClient, MetadataUnavailableError
from shrek.stream.store import BatchWrite, CollectorStore, quarantine_row

logger = logging.getLogger(__name__)

DUPLICATE_REASON = "duplicate: the same bytes were already collected (at-least-once delivery)"


class MetadataPendingWarning(ShrekWarning):
    """Some users or movies still have no metadata; run the collector again later."""


@dataclass(frozen=True)
class CollectorStats:
    """Counters of a collector folder (cumulative over restarts), and the last lag seen."""

    accepted: int
    quarantined: int
    duplicates: int
    lag: int | None
    pending_metadata: int


class MetadataResolver:
    """Which users and movies have metadata, asking the API for new ids.

    Keeps ``(kind, id) -> status`` in memory ("found", "unknown" or "pending"); this grows with
    the catalogue (users and movies), not with the stream. Documents stay in the store.
    After the API fails it is left alone for ``retry_seconds``, so a down API costs one
    timeout per interval, not one per id.
    """

    def __init__(
        self, client: MetadataClient | None, status: dict, *, retry_seconds: float = 2.0
    ) -> None:
        self.client = client
        self.status: dict[tuple[str, str], str] = {key: s for key, (s, _) in status.items()}
        self.retry_seconds = retry_seconds
        self._down_until = 0.0

    @property
    def pending(self) -> list[tuple[str, str]]:
        return [key for key, status in self.status.items() if status == "pending"]

    def resolve(self, wanted: set[tuple[str, str]]) -> list[tuple[str, str, str, str | None]]:
        """Ask about new ids in ``wanted`` (and pending ones when the API may be back);
        return the metadata rows to record."""
        if self.client is None:
            return []
        new = [key for key in sorted(wanted) if key not in self.status]
        if time.monotonic() >= self._down_until:
            new += self.pending
        rows = []
        answers: dict = {}
        if new and time.monotonic() >= self._down_until:
            try:
                answers = self.client.get_many(new)
            except MetadataUnavailableError as err:
                logger.warning("%s; will retry in %.1f s", err, self.retry_seconds)
                self._down_until = time.monotonic() + self.retry_seconds
                answers = {key: self.client.get(*key) for key in new if self.client.cached(key)}
        for key in new:
            status, document = "pending", None
            if key in answers:
                document = answers[key]
                status = "unknown" if document is None else "found"
            if self.status.get(key) != status:
                self.status[key] = status
                rows.append((*key, status, None if document is None else _json(document)))
        return rows


class Collector:
    """Consume ``topic`` into a collector folder (see the module docstring).

    Parameters
    ----------
    folder : str or Path
        Output folder; a restarted collector continues where the last committed batch ended.
    settings : KafkaSettings
        Where the broker is (bootstrap servers must be set).
    topic : str
        Topic to consume.
    group_id : str, default "shrek-collector"
        Consumer group; offsets are committed to it after each durable batch.
    metadata_url : str, optional
        Base URL of the metadata API. Without it users and movies stay empty.
    rating_scale : tuple of int, default (1, 5)
        Accepted ratings: (1, 5) or (1, 10).
    batch_size : int, default 5000
        Most lines per batch; bounds memory.
    flush_seconds : float, default 1.0
        A partial batch is written after this many seconds.
    assign : bool, default False
        Assign all partitions to this consumer instead of joining the group (no rebalance
        wait; offsets are still committed to ``group_id``).
    dead_letter_topic : str, optional
        Also produce quarantined lines there, with the reason in a ``reason`` header
        (at least once: a crash may re-send a batch's lines).
    metadata_timeout : float, default 1.0
        Seconds per metadata request attempt.
    """

    def __init__(
        self,
        folder: str | Path,
        *,
        settings: KafkaSettings,
        topic: str,
        group_id: str = "shrek-collector",
        metadata_url: str | None = None,
        rating_scale: tuple[int, int] = DEFAULT_RATING_SCALE,
        batch_size: int = 5000,
        flush_seconds: float = 1.0,
        assign: bool = False,
        dead_letter_topic: str | None = None,
        metadata_timeout: float = 1.0,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be ≥ 1, got {batch_size}")
        self.settings = settings
        self.topic = topic
        self.group_id = group_id
        self.rating_scale = check_rating_scale(rating_scale)
        self.batch_size = batch_size
        self.flush_seconds = flush_seconds
        self.assign = assign
        self.dead_letter_topic = dead_letter_topic
        self.store = CollectorStore(folder, topic=topic)
        client = None
        if metadata_url:
            client = MetadataClient(metadata_url, timeout=metadata_timeout, attempts=2)
        self.metadata = MetadataResolver(client, self.store.metadata())
        self.lag: int | None = None
        self._consumer: Any = None
        self._producer: Any = None
        self._buffer: list[Any] = []
        self._stop = False
        self._ledger = self.store.next_offsets()  # partition -> next offset, as committed

    # -- consuming --------------------------------------------------------------------------

    def run(
        self,
        *,
        until_idle_seconds: float | None = 5.0,
        stop_at_end: bool = False,
        max_seconds: float | None = None,
        show_progress: bool = False,
    ) -> CollectorStats:
        """Consume until idle, at the end offsets, out of time, or :meth:`request_stop`.

        Parameters
        ----------
        until_idle_seconds : float, optional
            Stop after this long without a new record. ``None`` never stops for idleness.
        stop_at_end : bool, default False
            Stop once every partition reaches the end offset it had when consuming started.
        max_seconds : float, optional
            Stop after this long in any case.
        show_progress : bool, default False
            Show a tqdm bar of events consumed.

        Returns
        -------
        CollectorStats
        """
        from tqdm.auto import tqdm

        consumer = self._connect()
        started = last_record = time.monotonic()
        last_flush = started
        end = None
        if stop_at_end:
            self._forget_high_watermarks()
        marks_fresh_at = time.monotonic() + 0.6  # after any fetch sent before this run
        bar = tqdm(desc="collect", unit="event", disable=not show_progress)
        try:
            while not self._stop:
                polled = consumer.poll(timeout_ms=200, max_records=self.batch_size)
                now = time.monotonic()
                for records in polled.values():
                    records = self._not_yet_stored(records)
                    self._buffer.extend(records)
                    last_record = now
                    bar.update(len(records))
                full = len(self._buffer) >= self.batch_size
                if self._buffer and (full or now - last_flush >= self.flush_seconds or not polled):
                    self._flush()
                    last_flush = now
                if end is None and stop_at_end and now >= marks_fresh_at:
                    end = self._end_offsets()
                if end is not None and self._reached(end):
                    break
                if until_idle_seconds is not None and now - last_record >= until_idle_seconds:
                    break
                if max_seconds is not None and now - started >= max_seconds:
                    break
            self._flush()
        finally:
            bar.close()
        stats = self.stats()
        logger.info(
            "collected %s: %d accepted, %d quarantined, %d duplicates, lag %s",
            self.topic,
            stats.accepted,
            stats.quarantined,
            stats.duplicates,
            stats.lag,
        )
        return stats

    def request_stop(self) -> None:
        """Finish the current batch and return from :meth:`run` (safe in a signal handler)."""
        self._stop = True

    def _connect(self) -> Any:
        from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition

        if self._consumer is not None:
            return self._consumer
        config = self.settings.consumer_config(self.group_id)
        consumer = self._consumer = KafkaConsumer(**config)
        if self.assign:
            partitions = _wait_for_partitions(consumer, self.topic)
            consumer.assign([TopicPartition(self.topic, p) for p in partitions])
            self._seek_to_ledger(consumer.assignment())
        else:
            collector = self

            class Listener(ConsumerRebalanceListener):
                """Runs in kafka-python's IO thread: touches only the in-memory offsets."""

                def on_partitions_revoked(self, revoked: Any) -> None:
                    logger.info("partitions revoked: %s", sorted(tp.partition for tp in revoked))

                def on_partitions_assigned(self, assigned: Any) -> None:
                    collector._seek_to_ledger(assigned)

            consumer.subscribe([self.topic], listener=Listener())
        return consumer

    def _seek_to_ledger(self, partitions: Any) -> None:
        stored = dict(self._ledger)
        for tp in partitions:
            if tp.partition in stored:
                self._consumer.seek(tp, stored[tp.partition])

    def _not_yet_stored(self, records: list[Any]) -> list[Any]:
        """Records past the ledger's offsets: Kafka's committed offsets may lag behind the
        ledger after a crash, and a seek may race the first fetch."""
        if not records:
            return records
        done = self._ledger.get(records[0].partition, 0)
        if records[0].offset >= done:
            return records
        return [r for r in records if r.offset >= done]

    def _end_offsets(self) -> dict | None:
        """High watermarks of the assigned partitions, from the last fetch responses; None
        until every partition has answered one fetch.

        Tansu 0.6.0 answers ListOffsets(latest), which ``consumer.end_offsets`` sends, with
        wrong offsets (1 for partitions of hundreds of records), so the fetch responses' high
        watermarks are used instead.
        """
        assignment = self._consumer.assignment()
        if not assignment:
            return None
        marks = {tp: self._consumer.highwater(tp) for tp in assignment}
        return None if any(m is None for m in marks.values()) else marks

    def _forget_high_watermarks(self) -> None:
        """Drop the high watermarks of earlier fetches so a second :meth:`run` does not stop
        at the end of the first (kafka-python keeps them on its partition states)."""
        assignment = getattr(self._consumer._subscription, "assignment", {})
        for state in assignment.values():
            state.highwater = None

    def _reached(self, end: dict) -> bool:
        """Whether everything up to ``end`` is consumed and stored (positions, not the
        ledger: a new folder on an old group starts from the group's committed offsets)."""
        if self._buffer:
            return False
        return all(self._consumer.position(tp) >= offset for tp, offset in end.items())

    # -- one batch --------------------------------------------------------------------------

    def _flush(self) -> None:
        """Validate, store and commit the buffered records."""
        records, self._buffer = self._buffer, []
        if not records:
            return
        started = time.monotonic()
        batch = self._prepare(records)
        if self.dead_letter_topic and batch.quarantine:
            self._send_dead_letters(records, batch)
        batch_id = self.store.commit(batch)
        self._ledger = {**self._ledger, **batch.next_offsets}
        self._commit_offsets(batch.next_offsets)
        self._update_lag()
        logger.debug(
            "batch %d: %d records, %s in %.3f s",
            batch_id,
            len(records),
            batch.counters,
            time.monotonic() - started,
        )

    def _prepare(self, records: list[Any]) -> BatchWrite:
        values = [r.value for r in records]
        partitions = np.fromiter((r.partition for r in records), "int64", len(records))
        offsets = np.fromiter((r.offset for r in records), "int64", len(records))
        next_offsets: dict[int, int] = {}
        for partition, offset in zip(partitions.tolist(), offsets.tolist(), strict=True):
            next_offsets[partition] = max(next_offsets.get(partition, 0), offset + 1)

        blake = hashlib.blake2b
        hashes = [blake(v, digest_size=16).digest() for v in values]
        already = self.store.seen(set(hashes))
        fresh: set[bytes] = set()
        keep, duplicates = [], []
        for i, h in enumerate(hashes):
            if h in already or h in fresh:
                duplicates.append(i)
            else:
                fresh.add(h)
                keep.append(i)

        kept = np.array(keep, "int64")
        parsed = parse_batch([values[i] for i in keep], rating_scale=self.rating_scale)
        tables = {
            "rates": self._frame(parsed.rates, kept, partitions, offsets),
            "watches": self._frame(parsed.watches, kept, partitions, offsets),
            "requests": self._requests_frame(parsed.requests, kept, partitions, offsets),
        }
        quarantine = [
            quarantine_row(int(partitions[i]), int(offsets[i]), values[i], DUPLICATE_REASON)
            for i in duplicates
        ]
        for j, reason in parsed.errors:
            i = keep[j]
            quarantine.append(
                quarantine_row(int(partitions[i]), int(offsets[i]), values[i], reason)
            )
        quarantine.sort(key=lambda row: (row["partition"], row["offset"]))

        wanted = {("user", str(u)) for t in tables.values() for u in t["user_id"].unique()}
        for name in ("rates", "watches"):
            wanted |= {("movie", m) for m in tables[name]["movie_id"].unique()}
        accepted = sum(len(t) for t in tables.values())
        return BatchWrite(
            tables=tables,
            quarantine=quarantine,
            hashes=[hashes[i] for i in keep],
            next_offsets=next_offsets,
            counters={
                "accepted": accepted,
                "quarantined": len(parsed.errors),
                "duplicates": len(duplicates),
            },
            metadata=self.metadata.resolve(wanted),
        )

    @staticmethod
    def _frame(columns: dict, kept: np.ndarray, partitions: Any, offsets: Any) -> pd.DataFrame:
        frame = pd.DataFrame({k: v for k, v in columns.items() if k != "index"})
        source = kept[columns["index"]] if len(kept) else np.empty(0, "int64")
        frame["partition"] = partitions[source]
        frame["offset"] = offsets[source]
        return frame

    @staticmethod
    def _requests_frame(requests: list, kept: np.ndarray, partitions: Any, offsets: Any) -> Any:
        source = np.array([kept[j] for j, _ in requests], "int64")
        events = [event for _, event in requests]
        return pd.DataFrame(
            {
                "timestamp": pd.Series([e.timestamp for e in events], dtype="datetime64[ns]"),
                "user_id": pd.Series([e.user_id for e in events], dtype="int64"),
                "server": pd.Series([e.server for e in events], dtype=object),
                "status": pd.Series([e.status for e in events], dtype="int64"),
                "movie_ids": pd.Series([",".join(e.movie_ids) for e in events], dtype=object),
                "latency_ms": pd.Series([e.latency_ms for e in events], dtype="int64"),
                "partition": partitions[source],
                "offset": offsets[source],
            }
        )

    def _send_dead_letters(self, records: list[Any], batch: BatchWrite) -> None:
        from kafka import KafkaProducer

        if self._producer is None:
            self._producer = KafkaProducer(**self.settings.producer_config())
        for row in batch.quarantine:
            self._producer.send(
                self.dead_letter_topic,
                value=base64.b64decode(row["raw_b64"]),
                headers=[("reason", row["reason"].encode())],
            )
        self._producer.flush()

    def _commit_offsets(self, next_offsets: dict[int, int]) -> None:
        from kafka import OffsetAndMetadata, TopicPartition
        from kafka.errors import KafkaError

        offsets = {
            TopicPartition(self.topic, p): OffsetAndMetadata(o, "", -1)
            for p, o in next_offsets.items()
        }
        try:
            self._consumer.commit(offsets)
        except KafkaError as err:  # the ledger is authoritative; Kafka's copy is for monitoring
            logger.warning("could not commit offsets to Kafka (data is safe on disk): %s", err)

    def _update_lag(self) -> None:
        end = self._end_offsets() or {}
        done = self._ledger
        self.lag = int(sum(max(0, o - done.get(tp.partition, 0)) for tp, o in end.items()))

    # -- results ----------------------------------------------------------------------------

    def stats(self) -> CollectorStats:
        """Counters so far (see :class:`CollectorStats`)."""
        counters = self.store.counters()
        return CollectorStats(**counters, lag=self.lag, pending_metadata=len(self.metadata.pending))

    def resolve_pending(self, *, wait_seconds: float = 0.0) -> int:
        """Fetch metadata still pending, retrying for up to ``wait_seconds``; return how many
        remain pending."""
        deadline = time.monotonic() + wait_seconds
        while True:
            self.metadata._down_until = 0.0
            rows = self.metadata.resolve(set())
            if rows:
                self.store.put_metadata(rows)
            remaining = len(self.metadata.pending)
            if not remaining or time.monotonic() >= deadline:
                return remaining
            time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))

    def rating_history(self) -> pd.DataFrame:
        """Every rate event collected: user_id, movie_id, rating, timestamp, partition, offset."""
        rates = self.store.read_events("rates")
        return rates if rates is not None else _empty_events("rating")

    def quarantine(self) -> pd.DataFrame:
        """Every rejected line with its reason: partition, offset, reason, text, raw.

        Lines rejected on arrival come from the quarantine files; events whose user or movie
        the metadata API reports unknown are added here (their text re-formatted from the
        stored event) and left out of :meth:`to_dataset`.
        """
        frame = self.store.read_quarantine()
        late = []
        for name, cls, value in (("rates", RateEvent, "rating"), ("watches", WatchEvent, "minute")):
            events = self.store.read_events(name)
            if events is None:
                continue
            for row in events[self._unknown_mask(events)].itertuples(index=False):
                line = format_event(
                    cls(
                        row.timestamp.to_pydatetime(),
                        row.user_id,
                        row.movie_id,
                        getattr(row, value),
                    )
                )
                late.append(
                    {
                        "partition": row.partition,
                        "offset": row.offset,
                        "reason": self._unknown_reason(row.user_id, row.movie_id),
                        "text": line,
                        "raw": line.encode(),
                    }
                )
        if late:
            frame = pd.concat([frame, pd.DataFrame(late)], ignore_index=True)
        return frame.sort_values(["partition", "offset"], ignore_index=True)

    def _unknown_ids(self) -> tuple[set[int], set[str]]:
        unknown = [key for key, s in self.metadata.status.items() if s == "unknown"]
        users = {int(i) for kind, i in unknown if kind == "user"}
        movies = {i for kind, i in unknown if kind == "movie"}
        return users, movies

    def _unknown_mask(self, events: pd.DataFrame) -> pd.Series:
        users, movies = self._unknown_ids()
        return events["user_id"].isin(users) | events["movie_id"].isin(movies)

    def _unknown_reason(self, user_id: int, movie_id: str) -> str:
        users, movies = self._unknown_ids()
        if movie_id in movies:
            return f"unknown movie id {movie_id!r}: the metadata API has no such movie"
        return f"unknown user id {user_id}: the metadata API has no such user"

    def to_dataset(self, *, wait_for_metadata_seconds: float = 10.0) -> Dataset:
        """The four tables from everything committed so far.

        Parameters
        ----------
        wait_for_metadata_seconds : float, default 10.0
            How long to keep retrying metadata still pending (the API was down).

        Returns
        -------
        Dataset
            ``ratings`` holds the latest rating per (user, movie) by event time (ties by
            partition and offset); ``watch_log`` per (user, movie) the number of distinct
            minutes watched, the highest minute and the time of the latest watch event. The
            version's source records the topic and the next offset of every partition.

        Warns
        -----
        MetadataPendingWarning
            If some ids still have no metadata (their users or movies rows are missing).
        """
        if self.metadata.client is not None and self.metadata.pending:
            remaining = self.resolve_pending(wait_seconds=wait_for_metadata_seconds)
            if remaining:
                warnings.warn(
                    f"{remaining} users/movies still have no metadata (the API at "
                    f"{self.metadata.client.base_url} did not answer); their rows are missing "
                    "from users/movies. Run the collector again when the API is up.",
                    MetadataPendingWarning,
                    stacklevel=2,
                )

        history = self.rating_history()
        history = history[~self._unknown_mask(history)]
        ratings = (
            history.sort_values(["timestamp", "partition", "offset"], kind="stable")
            .drop_duplicates(["user_id", "movie_id"], keep="last")
            .sort_values(["timestamp", "user_id", "movie_id"], kind="stable")
        )
        ratings = ratings[["user_id", "movie_id", "rating", "timestamp"]]
        watch_log = self._watch_log()
        users, movies = self._metadata_tables()

        source = {
            "kind": "kafka",
            "topic": self.topic,
            "group_id": self.group_id,
            "bootstrap_servers": self.settings.bootstrap_servers,
            "offsets": {str(p): o for p, o in sorted(self.store.next_offsets().items())},
            "counters": self.store.counters(),
            "folder": str(self.store.folder.resolve()),
        }
        return Dataset.from_tables(
            ratings=ratings,
            users=users,
            movies=movies,
            watch_log=watch_log,
            source=source,
            rating_scale=self.rating_scale,
        )

    def _watch_log(self) -> pd.DataFrame:
        watches = self.store.read_events("watches")
        if watches is None:
            return empty_table("watch_log")
        watches = watches[~self._unknown_mask(watches)]
        log = watches.groupby(["user_id", "movie_id"], as_index=False, sort=True).agg(
            minutes_watched=("minute", "nunique"),
            last_minute=("minute", "max"),
            timestamp=("timestamp", "max"),
        )
        return log.astype({"minutes_watched": "int64", "last_minute": "int64"})

    def _metadata_tables(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        entries = self.store.metadata()
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
            movie_table = frame[list(movie_table.columns)].sort_values(
                "movie_id", ignore_index=True
            )
        return user_table, movie_table

    def close(self) -> None:
        """Leave the group and release the folder."""
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
        if self._producer is not None:
            self._producer.close()
            self._producer = None
        self.store.close()
        if self.metadata.client is not None:
            self.metadata.client.close()

    def __enter__(self) -> Collector:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def collect(
    folder: str | Path,
    *,
    settings: KafkaSettings,
    topic: str,
    until_idle_seconds: float | None = 5.0,
    stop_at_end: bool = False,
    max_seconds: float | None = None,
    show_progress: bool = False,
    wait_for_metadata_seconds: float = 10.0,
    handle_signals: bool = False,
    **options: Any,
) -> Dataset:
    """Run a :class:`Collector` on ``topic`` into ``folder`` and return its dataset.

    ``options`` go to :class:`Collector` (``group_id``, ``metadata_url``, ``rating_scale``,
    ``batch_size``, ``assign``, ``dead_letter_topic`` ...); the stop conditions to
    :meth:`Collector.run`. With ``handle_signals`` SIGINT/SIGTERM finish the current batch
    and stop cleanly. The dataset is also saved to ``folder/dataset``.
    """
    with Collector(folder, settings=settings, topic=topic, **options) as collector:
        previous = {}
        if handle_signals:
            for signum in (signal.SIGINT, signal.SIGTERM):
                previous[signum] = signal.signal(signum, lambda *_: collector.request_stop())
        try:
            collector.run(
                until_idle_seconds=until_idle_seconds,
                stop_at_end=stop_at_end,
                max_seconds=max_seconds,
                show_progress=show_progress,
            )
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        dataset = collector.to_dataset(wait_for_metadata_seconds=wait_for_metadata_seconds)
        dataset.save(Path(folder) / "dataset")
        return dataset


def _wait_for_partitions(consumer: Any, topic: str, timeout: float = 10.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        partitions = consumer.partitions_for_topic(topic)
        if partitions:
            return sorted(partitions)
        time.sleep(0.1)
    raise ValueError(f"topic {topic!r} does not exist on {consumer.config['bootstrap_servers']}")


def _empty_events(value: str) -> pd.DataFrame:
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


def _json(document: dict) -> str:
    return json.dumps(document, sort_keys=True)
