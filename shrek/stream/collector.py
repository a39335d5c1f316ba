"""Consume the event stream into Shrek's four tables, exactly once, crash-safe.

The :class:`Collector` reads a topic as a consumer group in bounded batches. For each batch it

1. drops exact duplicates (same bytes as a line already collected: delivery is at least once),
   parses and validates every line, and asks the metadata API about users and movies it has
   not seen (:func:`shrek.stream.batch.prepare_batch`; when the API is down the events are
   stored anyway and the ids fetched later, :mod:`shrek.stream.resolver`),
2. writes the events as Parquet parts and the rejected lines to quarantine, and records the
   batch with its next offsets in one SQLite transaction (:mod:`shrek.stream.store`),
3. commits the offsets to Kafka, which is informative only: on start the collector seeks to
   the ledger's offsets, so a ``kill -9`` at any moment loses and duplicates nothing.

Steps 1 and 2 run in a writer process started when the collector is created
(:mod:`shrek.stream.writer`), so that decoding records and writing them do not share one
interpreter lock; a writer thread hands it each batch while the main thread polls the next.
Batches are written one at a time in order, and step 3 happens on the main thread once step 2
has returned, so at most two batches are in memory and the commit order is unchanged.

:meth:`Collector.to_dataset` builds the four tables from the committed parts
(:mod:`shrek.stream.tables`). Events whose user or movie the API reports as unknown are left
out of the tables and listed by :meth:`Collector.quarantine` with that reason; from then on
the counters count them as quarantined, not accepted (:class:`CollectorStats`).

Notes
-----
One collector per output folder (a lock file enforces it), driven by one thread at a time:
:meth:`Collector.request_stop` is the only method safe from another thread or a signal
handler (the writer thread is internal and idle whenever ``run`` has returned). Running several
collectors in one group needs one folder each, and merging their datasets is not implemented.
"""

from __future__ import annotations

import logging
import signal
import time
import warnings
from concurrent import futures
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from shrek.data.dataset import Dataset
from shrek.data.schemas import DEFAULT_RATING_SCALE
from shrek.errors import ShrekWarning
from shrek.stream import tables
from shrek.stream.batch import DUPLICATE_REASON, RawBatch
from shrek.stream.broker import KafkaSettings
from shrek.stream.consumer import (
    FreshEndOffsets,
    commit_offsets,
    high_watermarks,
    wait_for_partitions,
)
from shrek.stream.events import check_rating_scale
from shrek.stream.metadata_api import MetadataClient
from shrek.stream.resolver import MetadataResolver
from shrek.stream.store import CollectorStore
from shrek.stream.writer import WriterConfig, WriterProcess

__all__ = [
    "DUPLICATE_REASON",
    "Collector",
    "CollectorStats",
    "GroupAheadWarning",
    "MetadataPendingWarning",
    "MetadataResolver",
    "collect",
]

logger = logging.getLogger(__name__)


class MetadataPendingWarning(ShrekWarning):
    """Some users or movies still have no metadata; run the collector again later."""


class GroupAheadWarning(ShrekWarning):
    """The folder is new but the consumer group has committed offsets on the topic: the
    collector starts from them, not from the beginning of the topic."""


@dataclass(frozen=True)
class CollectorStats:
    """Counters of a collector folder (cumulative over restarts), and the last lag seen.

    Every line consumed is counted once, and ``quarantined + duplicates`` is the length of
    :meth:`Collector.quarantine`.

    Attributes
    ----------
    accepted : int
        Events kept: stored on arrival, less those whose user or movie the metadata API has
        since reported unknown (see :func:`shrek.stream.tables.report_counters`).
    quarantined : int
        Lines rejected on arrival with a reason, plus the events set apart for an unknown
        user or movie.
    duplicates : int
        Exact duplicates dropped (also listed in the quarantine, with that reason).
    lag : int or None
        Records behind the end offsets after the last batch committed (kept in the folder
        from run to run; None before any).
    pending_metadata : int
        Users and movies still waiting for an answer of the metadata API.
    """

    accepted: int
    quarantined: int
    duplicates: int
    lag: int | None
    pending_metadata: int


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
    batch_size : int, default 20000
        Most lines per batch; bounds memory (two batches at most: one being written while
        the next is polled).
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
        batch_size: int = 20_000,
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
        self.lag: int | None = self.store.lag()
        self._consumer: Any = None
        config = WriterConfig(
            folder=self.store.folder,
            topic=topic,
            rating_scale=self.rating_scale,
            metadata_url=metadata_url,
            metadata_timeout=metadata_timeout,
            dead_letter_settings=settings if dead_letter_topic else None,
            dead_letter_topic=dead_letter_topic,
        )
        try:
            self._process = WriterProcess(config, lock=self.store.lock)
        except BaseException:
            self.store.close()  # release the folder
            raise
        self._buffer: list[Any] = []
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="collector-writer")
        self._writing: Future | None = None
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
            Stop after this long without a new record (time without partitions assigned, while
            joining the group, does not count). ``None`` never stops for idleness.
        stop_at_end : bool, default False
            Stop once every partition reaches its end offset, read from fetch responses
            requested after the call (:class:`shrek.stream.consumer.FreshEndOffsets`).
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
        end = FreshEndOffsets(consumer) if stop_at_end else None
        bar = tqdm(desc="collect", unit="event", disable=not show_progress)
        try:
            while not self._stop:
                polled = consumer.poll(timeout_ms=200, max_records=self.batch_size)
                now = time.monotonic()
                if not consumer.assignment():  # joining the group (or rebalancing): not idle
                    last_record = now
                if self._writing is not None and self._writing.done():
                    self._finish_write()
                for records in polled.values():
                    records = self._not_yet_stored(records)
                    self._buffer.extend(records)
                    last_record = now
                    bar.update(len(records))
                full = len(self._buffer) >= self.batch_size
                if self._buffer and (full or now - last_flush >= self.flush_seconds or not polled):
                    self._flush()
                    last_flush = now
                if end is not None and self._reached(end.get()):
                    break
                if until_idle_seconds is not None and now - last_record >= until_idle_seconds:
                    break
                if max_seconds is not None and now - started >= max_seconds:
                    break
            self._flush()
            self._finish_write()
            self._update_lag()
        finally:
            bar.close()
            # The writer process resolved metadata meanwhile; its answers are in the store.
            self.metadata = MetadataResolver(self.metadata.client, self.store.metadata())
            self.store.put_lag(self.lag)
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
        if not self._ledger and self.group_id is not None:
            self._warn_if_group_is_ahead(consumer)
        if self.assign:
            partitions = wait_for_partitions(consumer, self.topic)
            consumer.assign([TopicPartition(self.topic, p) for p in partitions])
            self._seek_to_ledger(consumer.assignment())
        else:
            collector = self

            class Listener(ConsumerRebalanceListener):
                """Runs in kafka-python's IO thread: touches only the in-memory offsets (after
                the batch being written, if any, has updated them)."""

                def on_partitions_revoked(self, revoked: Any) -> None:
                    logger.info("partitions revoked: %s", sorted(tp.partition for tp in revoked))
                    if collector._writing is not None:  # the ledger must be current to seek
                        futures.wait([collector._writing])

                def on_partitions_assigned(self, assigned: Any) -> None:
                    collector._seek_to_ledger(assigned)

            consumer.subscribe([self.topic], listener=Listener())
        return consumer

    def _warn_if_group_is_ahead(self, consumer: Any) -> None:
        """A new folder on a group that has consumed the topic before collects only what came
        after: say so, with the fix (issue 3 newcomer trial: a re-created ``--out`` folder
        silently collected nothing)."""
        from kafka import TopicPartition

        partitions = wait_for_partitions(consumer, self.topic)
        committed = {p: consumer.committed(TopicPartition(self.topic, p)) for p in partitions}
        ahead = {p: offset for p, offset in committed.items() if offset}
        if ahead:
            warnings.warn(
                f"{self.store.folder} is a new collector folder, but consumer group "
                f"{self.group_id!r} has already committed offsets on {self.topic!r} "
                f"({', '.join(f'partition {p}: {o}' for p, o in sorted(ahead.items()))}): "
                "collecting from there, not from the beginning of the topic. Use a new group "
                "id to collect the whole topic into this folder.",
                GroupAheadWarning,
                stacklevel=4,
            )

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

    def _reached(self, end: dict | None) -> bool:
        """Whether everything up to ``end`` is consumed and stored (positions, not the
        ledger: a new folder on an old group starts from the group's committed offsets)."""
        if end is None or self._buffer or self._writing is not None:
            return False
        return all(self._consumer.position(tp) >= offset for tp, offset in end.items())

    # -- one batch --------------------------------------------------------------------------

    def _flush(self) -> None:
        """Hand the buffered records to the writer thread, after the previous batch is stored
        and its offsets committed (so batches are written one at a time, in order)."""
        self._finish_write()
        records, self._buffer = self._buffer, []
        if records:
            self._writing = self._writer.submit(self._write, records)

    def _finish_write(self) -> None:
        """Wait for the batch being written; commit its offsets to Kafka and update the lag.

        Raises what the writer raised (the batch is then not committed: its lines are consumed
        again from the ledger's offsets on the next start)."""
        if self._writing is None:
            return
        writing, self._writing = self._writing, None
        next_offsets = writing.result()
        commit_offsets(self._consumer, self.topic, next_offsets)
        self._update_lag()

    def _write(self, records: list[Any]) -> dict[int, int]:
        """Have the writer process validate and store one batch (on the writer thread);
        return its next offsets."""
        next_offsets = self._process.write(RawBatch.from_records(records))
        self._ledger = {**self._ledger, **next_offsets}
        return next_offsets

    def _update_lag(self) -> None:
        end = high_watermarks(self._consumer)
        if end is None:  # forgotten for a fresh read (FreshEndOffsets): keep the last lag
            return
        done = self._ledger
        self.lag = int(sum(max(0, o - done.get(tp.partition, 0)) for tp, o in end.items()))

    # -- results ----------------------------------------------------------------------------

    def stats(self) -> CollectorStats:
        """Counters so far (see :class:`CollectorStats`)."""
        counters = tables.report_counters(self.store, self.metadata.unknown_ids())
        return CollectorStats(**counters, lag=self.lag, pending_metadata=len(self.metadata.pending))

    def resolve_pending(self, *, wait_seconds: float = 0.0) -> int:
        """Fetch metadata still pending, retrying for up to ``wait_seconds``; return how many
        remain pending."""
        deadline = time.monotonic() + wait_seconds
        while True:
            self.metadata.retry_now()
            rows = self.metadata.resolve(set())
            if rows:
                self.store.put_metadata(rows)
            remaining = len(self.metadata.pending)
            if not remaining or time.monotonic() >= deadline:
                return remaining
            time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))

    def rating_history(self) -> pd.DataFrame:
        """Every rate event collected: user_id, movie_id, rating, timestamp, partition, offset."""
        return tables.rating_history(self.store)

    def quarantine(self) -> pd.DataFrame:
        """Every rejected line with its reason: partition, offset, reason, text, raw.

        Lines rejected on arrival (duplicates included) come from the quarantine files; events
        whose user or movie the metadata API reports unknown are added here (their text
        re-formatted from the stored event) and left out of :meth:`to_dataset`.
        """
        return tables.quarantine(self.store, self.metadata.unknown_ids())

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

        unknown = self.metadata.unknown_ids()
        ratings = tables.latest_ratings(self.rating_history(), unknown)
        watch_log = tables.watch_log(self.store, unknown)
        users, movies = tables.metadata_tables(self.store)
        counters = tables.report_counters(self.store, unknown)
        late = counters["quarantined"] - self.store.counters()["quarantined"]

        source = {
            "kind": "kafka",
            "topic": self.topic,
            "group_id": self.group_id,
            "bootstrap_servers": self.settings.bootstrap_servers,
            "offsets": {str(p): o for p, o in sorted(self.store.next_offsets().items())},
            "counters": {**counters, "unknown_id_events": late, "lag": self.lag},
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

    def close(self) -> None:
        """Wait for the batch being written, leave the group and release the folder."""
        self._writer.shutdown(wait=True)
        self._process.close()
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
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
