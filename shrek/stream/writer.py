"""The collector's batch writer, in a child process of its own.

Consuming (kafka-python decoding every record) and writing (deduplicating, parsing, Parquet,
SQLite) are both CPU-bound Python; in one process they share the interpreter lock and run at
half speed. :class:`WriterProcess` moves the writing to a child process, which owns the
collector's metadata resolver and a second connection to its store: the collector sends each
batch as a :class:`shrek.stream.batch.RawBatch` through a pipe and gets back the batch's next
offsets once the batch is committed.

The child is started by multiprocessing's *forkserver* (which has this module preloaded), not
forked from the collector: the collector has threads, an open SQLite connection and maybe
listening sockets (a :class:`shrek.stream.metadata_api.MetadataServer` in the same process),
and a forked child would inherit all of them, holding the port of a stopped server bound.
The child gets only the pipe and, through it, a duplicate of the descriptor that holds the
folder's lock, so the lock is held until both the collector and its writer have exited.

Crash safety is unchanged: a batch is durable when its SQLite transaction commits, in the
child. The child ignores SIGINT and SIGTERM (a Ctrl-C or a signal to the process group is the
collector's to handle: it finishes the batch in flight and sends ``None``); it stops on
``None``, on end of file from the pipe, and as soon as the collector's process is gone (a
thread waits for it), so after a ``kill -9`` of the collector nothing writes the folder.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
import traceback
from dataclasses import dataclass
from multiprocessing import reduction, util
from pathlib import Path
from typing import IO, Any

from shrek.errors import ShrekError
from shrek.stream.batch import RawBatch, prepare_batch
from shrek.stream.broker import KafkaSettings

logger = logging.getLogger(__name__)

_POLL_SECONDS = 0.5  # how often a waiting collector checks that its writer still runs


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
    """A child process that validates and stores the batches it is sent, one at a time.

    Methods are called from one thread at a time (the collector's writer thread, then its main
    thread to close).

    Parameters
    ----------
    config : WriterConfig
    lock : file object
        The open file whose ``flock`` guards the folder (:class:`CollectorStore`'s); the child
        holds a duplicate of it.

    Notes
    -----
    The first writer of a process starts the forkserver, a fresh interpreter that imports
    this module (about as long as ``import shrek.stream.writer``); later writers are forked
    from it in milliseconds.
    """

    def __init__(self, config: WriterConfig, *, lock: IO) -> None:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
        self._conn, child_conn = context.Pipe()
        self._process = context.Process(
            target=_serve, args=(child_conn, config), name="shrek-collector-writer", daemon=True
        )
        self._process.start()
        child_conn.close()
        # At interpreter exit multiprocessing joins its children before the collector is
        # closed; end of file on the pipe then tells the writer to stop.
        util.Finalize(self, self._conn.close, exitpriority=10)
        try:
            reduction.send_handle(self._conn, lock.fileno(), self._process.pid)
            self._receive()  # ("ok", None) once the child has opened the folder
        except CollectorWriteError as err:
            self.close()
            raise CollectorWriteError(
                f"the collector's writer process did not start: {err} (its error is on "
                "stderr). If a script creates the Collector when it is imported, do it under "
                "`if __name__ == '__main__':` (the writer process imports the main module, as "
                "multiprocessing's forkserver and spawn start methods do)"
            ) from err.__cause__

    def write(self, raw: RawBatch) -> dict[int, int]:
        """Store one batch; return its next offsets per partition.

        Raises
        ------
        CollectorWriteError
            If the child failed on this batch or is gone (noticed within half a second).
        """
        with contextlib.suppress(OSError):  # the child is gone: _receive says so
            self._conn.send(raw)
        try:
            return self._receive()
        except CollectorWriteError as err:
            if err.__cause__ is None:  # the child reported an error: nothing was committed
                raise
            raise CollectorWriteError(
                f"{err}; the batch was not committed and is consumed again on the next start"
            ) from err.__cause__

    def _receive(self) -> Any:
        """The child's next answer, noticing within half a second that it is gone."""
        try:
            while not self._conn.poll(_POLL_SECONDS):
                if not self._alive():
                    raise EOFError("the writer process is gone")
            status, payload = self._conn.recv()
        except (EOFError, OSError) as err:
            self._process.join(timeout=1.0)
            raise CollectorWriteError(
                f"the collector's writer process exited (code {self._exitcode()})"
            ) from err
        if status == "error":
            raise CollectorWriteError(payload)
        return payload

    def close(self, timeout: float = 30.0) -> None:
        """Ask the child to finish and wait for it (killed after ``timeout`` seconds)."""
        if self._alive():
            with contextlib.suppress(OSError):
                self._conn.send(None)
            # End of file once the child has exited and its descriptors are closed.
            with contextlib.suppress(OSError):
                if not self._conn.poll(timeout):
                    logger.warning("writer process did not stop in %.0f s; killing it", timeout)
                    self._process.kill()
            self._process.join(timeout=5.0)
        self._conn.close()

    def _alive(self) -> bool:
        """Whether the child runs. Asked of the kernel: the forkserver, which reports the
        child's exit, may have been stopped by the same signal (it then reports code 255)."""
        if self._process.exitcode not in (None, 255):
            return False
        try:
            os.kill(self._process.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # pragma: no cover - the pid was reused by another user
            return False
        return True

    def _exitcode(self) -> int | None:
        code = self._process.exitcode
        return None if code == 255 and self._alive() else code


def _serve(conn: multiprocessing.connection.Connection, config: WriterConfig) -> None:
    """The child's loop: receive a RawBatch, store it, answer ("ok", next offsets) or
    ("error", message); stop on None, at end of file, or when the collector is gone."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    lock_fd = reduction.recv_handle(conn)  # shares the collector's flock on the folder
    _exit_with_parent()
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
        conn.send(("ok", None))
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
            try:
                conn.send(answer)
            except OSError:  # the collector closed the pipe; the batch is committed anyway
                return
    finally:
        if dead_letters is not None:
            dead_letters.close()
        if client is not None:
            client.close()
        store.close()
        os.close(lock_fd)


def _exit_with_parent() -> None:
    """Exit the moment the collector's process ends, even in the middle of a batch (as a
    ``kill -9`` of both would: the batch was not committed, or was)."""
    parent = multiprocessing.parent_process()
    if parent is None:  # pragma: no cover - always started by WriterProcess
        return

    def wait_for_parent() -> None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(1)

    threading.Thread(target=wait_for_parent, name="exit-with-collector", daemon=True).start()
