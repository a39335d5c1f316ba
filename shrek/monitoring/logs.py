"""Reading the event log: the Kafka topic with its records' headers, or a text file.

:func:`read_topic` reads every record of a topic (no consumer group, nothing committed);
:class:`TopicReader` does it incrementally for the exporter; :func:`load_log` reads a log file
or else the topic. Each returns (or feeds) :func:`shrek.monitoring.online.parse_log`.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from shrek.data.schemas import DEFAULT_RATING_SCALE
from shrek.monitoring.online import OnlineLog, parse_log
from shrek.stream.broker import KafkaSettings

logger = logging.getLogger(__name__)


def read_topic(
    settings: KafkaSettings,
    topic: str,
    *,
    timeout: float = 30.0,
    idle_seconds: float = 2.0,
    rating_scale: tuple[int, int] = DEFAULT_RATING_SCALE,
) -> OnlineLog:
    """Read every record of ``topic`` with its headers (no consumer group) and parse it.

    Parameters
    ----------
    settings : KafkaSettings
        Where the broker is.
    topic : str
        The event stream (requests, watch and rate events).
    timeout : float, default 30.0
        Most seconds to spend reading.
    idle_seconds : float, default 2.0
        Stop once every partition reached its high watermark, or after this long without a
        new record.
    rating_scale : tuple of int, default (1, 5)

    Returns
    -------
    OnlineLog
    """
    reader = TopicReader(settings, topic)
    try:
        lines, headers = reader.read_available(timeout=timeout, idle_seconds=idle_seconds)
    finally:
        reader.close()
    logger.debug("read %d records of %s", len(lines), topic)
    return parse_log(lines, headers=headers, rating_scale=rating_scale)


class TopicReader:
    """Reads a topic's records with their headers from the beginning, incrementally.

    Every partition is assigned (no group join, nothing committed), so reading never disturbs
    the collector's consumer group. :meth:`read_available` returns what arrived since the
    last call.
    """

    def __init__(self, settings: KafkaSettings, topic: str) -> None:
        from kafka import KafkaConsumer, TopicPartition

        self.topic = topic
        self.consumer = KafkaConsumer(**settings.consumer_config(None))
        partitions = _partitions(self.consumer, topic)
        self.partitions = [TopicPartition(topic, p) for p in partitions]
        self.consumer.assign(self.partitions)
        self.consumer.seek_to_beginning(*self.partitions)

    def read_available(
        self, *, timeout: float = 10.0, idle_seconds: float = 1.0
    ) -> tuple[list[bytes], list[dict[str, bytes]]]:
        """Lines and headers of the records that arrived since the last call."""
        lines: list[bytes] = []
        headers: list[dict[str, bytes]] = []
        started = last = time.monotonic()
        while time.monotonic() - started < timeout:
            polled = self.consumer.poll(timeout_ms=200, max_records=10_000)
            for records in polled.values():
                for record in records:
                    lines.append(record.value)
                    headers.append(dict(record.headers or ()))
                last = time.monotonic()
            if not polled and self.caught_up():
                break
            if time.monotonic() - last >= idle_seconds:
                break
        return lines, headers

    def caught_up(self) -> bool:
        """Whether every partition's position reached the high watermark of its last fetch."""
        for tp in self.partitions:
            mark = self.consumer.highwater(tp)
            if mark is None or self.consumer.position(tp) < mark:
                return False
        return True

    def high_watermarks(self) -> dict[int, int | None]:
        """Partition -> high watermark from the last fetch response (None before one)."""
        return {tp.partition: self.consumer.highwater(tp) for tp in self.partitions}

    def close(self) -> None:
        self.consumer.close()


def _partitions(consumer: Any, topic: str, wait_seconds: float = 10.0) -> list[int]:
    deadline = time.monotonic() + wait_seconds
    while True:
        partitions = consumer.partitions_for_topic(topic)
        if partitions:
            return sorted(partitions)
        if time.monotonic() >= deadline:
            servers = consumer.config["bootstrap_servers"]
            raise ValueError(f"topic must exist on {servers}, got {topic!r} (no such topic)")
        time.sleep(0.1)


def load_log(
    *,
    log_file: str | Path | None = None,
    bootstrap_servers: str | None = None,
    topic: str = "shrek-events",
    rating_scale: tuple[int, int] = DEFAULT_RATING_SCALE,
) -> OnlineLog:
    """A parsed log from a text file of stream lines, or else from a Kafka topic.

    Parameters
    ----------
    log_file : str or Path, optional
        Stream lines, each optionally ending with `` | variant=... model_version=...``.
        Empty or None: read ``topic``.
    bootstrap_servers : str, optional
        Kafka ``host:port`` list; ``SHREK_KAFKA_BOOTSTRAP_SERVERS`` (and the other
        ``SHREK_KAFKA_*`` settings) when empty.
    topic : str, default "shrek-events"
    rating_scale : tuple of int, default (1, 5)

    Raises
    ------
    ValueError
        If neither a log file nor Kafka servers are given.
    """
    if log_file:
        with open(log_file, "rb") as lines:
            return parse_log(lines, rating_scale=rating_scale)
    settings = KafkaSettings.from_env()
    if bootstrap_servers:
        settings = settings.with_bootstrap(bootstrap_servers, embedded=False)
    if not settings.configured:
        raise ValueError(
            "log_file or bootstrap_servers must be given (or SHREK_KAFKA_BOOTSTRAP_SERVERS set), "
            "got neither"
        )
    return read_topic(settings, topic, rating_scale=rating_scale)
