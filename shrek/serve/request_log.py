"""The request log: every answer as a recommendation-request line on the Kafka topic.

Lines use the stream format of :mod:`shrek.stream.events` (``<ts>,<user>,recommendation
request <host:port>, status 200, result: m1, ..., m20, 43 ms``) so the collector reads them
like any other event. The format has no field for provenance, so each Kafka record carries it
in headers: ``variant``, ``model_version``, ``data_version``, ``run_id``, ``cold_start``.

Logging is best effort: requests only put the line on a bounded in-memory queue; one
background thread owns the producer, (re)connects with backoff, and drops what it cannot send.
A broker that is down never slows down or fails a request.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from shrek.stream.broker import KafkaSettings
from shrek.stream.events import RecommendationRequest, format_event

logger = logging.getLogger(__name__)
request_logger = logging.getLogger("shrek.serve.requests")

DEFAULT_TOPIC = "shrek-events"
HEADER_KEYS: tuple[str, ...] = ("variant", "model_version", "data_version", "run_id", "cold_start")


def request_line(
    user_id: int, movie_ids: tuple[str, ...], *, server: str, status: int, latency_ms: float
) -> str:
    """The stream line of one answered request, stamped now (naive UTC, milliseconds)."""
    now = datetime.now(UTC).replace(tzinfo=None)
    now = now.replace(microsecond=now.microsecond // 1000 * 1000)
    event = RecommendationRequest(
        timestamp=now,
        user_id=user_id,
        server=server,
        status=status,
        movie_ids=tuple(movie_ids),
        latency_ms=max(0, round(latency_ms)),
    )
    return format_event(event)


class RequestLog:
    """Sends request lines to Kafka from a background thread; never blocks the caller.

    Parameters
    ----------
    settings : KafkaSettings, optional
        Where Kafka is; ``None`` or unconfigured settings keep only the service's own log.
    topic : str, default "shrek-events"
        The stream topic.
    max_queue : int, default 10_000
        Lines waiting to be sent; further lines are dropped (and counted) while it is full.
    on_drop : callable, optional
        Called with the number of lines dropped (for a metric).
    retry_seconds : float, default 1.0
        First wait before reconnecting after a failure; doubles up to 30 s.
    """

    def __init__(
        self,
        settings: KafkaSettings | None,
        *,
        topic: str = DEFAULT_TOPIC,
        max_queue: int = 10_000,
        on_drop: Callable[[int], None] | None = None,
        retry_seconds: float = 1.0,
    ) -> None:
        self.settings = settings if settings is not None and settings.configured else None
        self.topic = topic
        self.on_drop = on_drop or (lambda n: None)
        self.retry_seconds = retry_seconds
        self.sent = 0
        self.dropped = 0
        self._queue: queue.Queue[tuple[bytes, bytes, list] | None] = queue.Queue(max_queue)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        if self.settings is not None:
            self._thread = threading.Thread(target=self._run, name="shrek-request-log", daemon=True)
            self._thread.start()

    def log(self, line: str, *, user_id: int, provenance: dict[str, str]) -> None:
        """Write ``line`` to the service log and queue it for Kafka (dropped if the queue is
        full)."""
        request_logger.info(
            "%s | %s", line, " ".join(f"{k}={provenance.get(k, '')}" for k in HEADER_KEYS)
        )
        if self.settings is None:
            return
        headers = [(key, str(provenance.get(key, "")).encode()) for key in HEADER_KEYS]
        try:
            self._queue.put_nowait((str(user_id).encode(), line.encode(), headers))
        except queue.Full:
            self._drop(1)

    def close(self, timeout: float = 5.0) -> None:
        """Flush what can be sent within ``timeout`` seconds and stop the thread."""
        if self._thread is None:
            return
        self._stop.set()
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=timeout)
        self._thread.join(timeout)
        self._thread = None

    def _drop(self, n: int) -> None:
        self.dropped += n
        self.on_drop(n)

    def _run(self) -> None:
        producer = None
        wait = self.retry_seconds
        while True:
            item = self._queue.get()
            if item is None:
                break
            if producer is None:
                producer = self._connect()
                if producer is None:
                    self._drop(1 + self._drain())
                    if self._stop.wait(wait):
                        break
                    wait = min(30.0, wait * 2)
                    continue
                wait = self.retry_seconds
            key, value, headers = item
            try:
                future = producer.send(self.topic, value=value, key=key, headers=headers)
                future.add_callback(self._on_sent).add_errback(self._on_error)
            except Exception as err:  # noqa: BLE001 - any producer failure: drop and reconnect
                logger.warning("request log: send failed (%s); reconnecting", err)
                self._drop(1)
                producer = self._close(producer)
        if producer is not None:
            producer.flush(timeout=5)
            self._close(producer)

    def _connect(self) -> Any:
        from kafka import KafkaProducer

        config = {
            **self.settings.client_config(),
            "acks": 1,
            "linger_ms": 5,
            "max_block_ms": 2000,
            "request_timeout_ms": 5000,
            "delivery_timeout_ms": 10_000,
            "reconnect_backoff_max_ms": 5000,
        }
        try:
            return KafkaProducer(**config)
        except Exception as err:  # noqa: BLE001 - broker down or misconfigured: log and retry
            logger.warning(
                "request log: Kafka at %s unavailable (%s)", config["bootstrap_servers"], err
            )
            return None

    def _drain(self) -> int:
        drained = 0
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return drained
            if item is None:
                self._queue.put_nowait(None)
                return drained
            drained += 1

    def _on_sent(self, _: Any) -> None:
        self.sent += 1

    def _on_error(self, err: Exception) -> None:
        logger.debug("request log: record not delivered: %s", err)
        self._drop(1)

    @staticmethod
    def _close(producer: Any) -> None:
        try:
            producer.close(timeout=1)
        except Exception:  # noqa: BLE001
            logger.debug("request log: closing the producer failed", exc_info=True)
        return None
