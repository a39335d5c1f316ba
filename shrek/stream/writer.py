"""The collector's batch writer, in a child process of its own.

Consuming (kafka-python decoding every record) and writing (deduplicating, parsing, Parquet,
SQLite) are both CPU-bound Python; in one process they share the interpreter lock and run at
half speed. :class:`WriterProcess` moves the writing to a forked child, which owns the
collector's metadata resolver and a second connection to its store: the collector sends each
batch as a :class:`shrek.stream.batch.RawBatch` through a pipe and gets back the batch's next
offsets once the batch is committed.

Crash safety is unchanged: a batch is durable when its SQLite transaction commits, in the
child. The child inherits the folder's lock, dies with the collector (``PR_SET_PDEATHSIG`` on
Linux, and on end of file from the pipe everywhere), and never touches the collector's own
SQLite connection (it exits through ``os._exit``, as every multiprocessing child does).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import traceback
from dataclasses import dataclass
from pathlib import Path

from shrek.errors import ShrekError
from shrek.stream.batch import RawBatch, prepare_batch
from shrek.stream.broker import KafkaSettings

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


class CollectorWriteError(ShrekError):
    """The writer process failed to store a batch (nothing of it was committed)."""


@dataclass(frozen=True)
class WriterConfig:
    """What the writer process needs to open the folder and reach the metadata API."""

    folder: Path
    topic: str
    rating_scale: tuple[int, int]
    metadata_url: str | None
    metadata_timeout: float
    dead_letter_settings: KafkaSettings | None
    dead_letter_topic: str | None


class WriterProcess:
    """A forked child that validates and stores the batches it is sent, one at a time.

    Fork it before the Kafka consumer starts its threads. Methods are called from one thread
    at a time (the collector's writer thread, then its main thread to close).

    Parameters
    ----------
    config : WriterConfig
    """

    def __init__(self, config: WriterConfig) -> None:
        context = multiprocessing.get_context("fork")
        self._conn, child_conn = context.Pipe()
        self._process = context.Process(
            target=_serve, args=(child_conn, config), name="shrek-collector-writer", daemon=True
        )
        self._process.start()
        child_conn.close()

    def write(self, raw: RawBatch) -> dict[int, int]:
        """Store one batch; return its next offsets per partition.

        Raises
        ------
        CollectorWriteError
            If the child failed on this batch or is gone.
        """
        try:
            self._conn.send(raw)
            status, payload = self._conn.recv()
        except (EOFError, OSError) as err:
            self._process.join(timeout=1.0)
            raise CollectorWriteError(
                f"the collector's writer process exited (code {self._process.exitcode}); "
                "the batch was not committed and is consumed again on the next start"
            ) from err
        if status == "error":
            raise CollectorWriteError(payload)
        return payload

    def close(self, timeout: float = 30.0) -> None:
        """Ask the child to finish and wait for it (killed after ``timeout`` seconds)."""
        if self._process.is_alive():
            with contextlib.suppress(OSError):
                self._conn.send(None)
            self._process.join(timeout)
            if self._process.is_alive():
                logger.warning("writer process did not stop in %.0f s; killing it", timeout)
                self._process.kill()
                self._process.join()
        self._conn.close()


def _serve(conn: multiprocessing.connection.Connection, config: WriterConfig) -> None:
    """The child's loop: receive a RawBatch, store it, answer ("ok", next offsets) or
    ("error", message); stop on None or when the collector is gone."""
    _die_with_parent()
    # Imported here: the child must not reuse objects of the parent's store or client.
    from shrek.stream.consumer import DeadLetters
    from shrek.stream.metadata_api import MetadataClient
    from shrek.stream.resolver import MetadataResolver
    from shrek.stream.store import CollectorStore

    store = CollectorStore(config.folder, topic=config.topic, owner=False)
    client = None
    if config.metadata_url:
        client = MetadataClient(config.metadata_url, timeout=config.metadata_timeout, attempts=2)
    resolver = MetadataResolver(client, store.metadata())
    dead_letters = None
    if config.dead_letter_topic and config.dead_letter_settings is not None:
        dead_letters = DeadLetters(config.dead_letter_settings, config.dead_letter_topic)
    try:
        while True:
            try:
                raw = conn.recv()
            except EOFError:
                return
            if raw is None:
                return
            try:
                batch = prepare_batch(
                    raw, store=store, resolver=resolver, rating_scale=config.rating_scale
                )
                if dead_letters is not None and batch.quarantine:
                    dead_letters.send(batch.quarantine)
                batch_id = store.commit(batch)
                logger.debug("batch %d: %d records, %s", batch_id, len(raw), batch.counters)
                answer = ("ok", batch.next_offsets)
            except Exception as err:  # noqa: BLE001 - reported to the collector, which raises
                answer = ("error", f"{type(err).__name__}: {err}\n{traceback.format_exc()}")
            conn.send(answer)
    finally:
        if dead_letters is not None:
            dead_letters.close()
        if client is not None:
            client.close()
        store.close()


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when the thread that forked it ends (no-op
    elsewhere): create and close a collector in the same thread."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    parent = multiprocessing.parent_process()
    if parent is not None and os.getppid() != parent.pid:  # died before prctl took effect
        os._exit(1)
