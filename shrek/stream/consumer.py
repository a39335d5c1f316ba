"""kafka-python plumbing of the collector: partitions, high watermarks, offset commits and the
dead-letter producer. Nothing here touches the collector's folder."""

from __future__ import annotations

import base64
import logging
import time
from typing import Any

from shrek.stream.broker import KafkaSettings

logger = logging.getLogger(__name__)


def wait_for_partitions(consumer: Any, topic: str, timeout: float = 10.0) -> list[int]:
    """The partitions of ``topic``, waiting up to ``timeout`` seconds for its metadata.

    Raises
    ------
    ValueError
        If the topic does not appear in time.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        partitions = consumer.partitions_for_topic(topic)
        if partitions:
            return sorted(partitions)
        time.sleep(0.1)
    raise ValueError(f"topic {topic!r} does not exist on {consumer.config['bootstrap_servers']}")


def high_watermarks(consumer: Any) -> dict | None:
    """High watermarks of the assigned partitions, from the last fetch responses; None until
    every partition has answered one fetch.

    Notes
    -----
    Tansu 0.6.0 answers ListOffsets(latest), which ``consumer.end_offsets`` sends, with wrong
    offsets (1 for partitions of hundreds of records), so the fetch responses' high watermarks
    are used instead.
    """
    assignment = consumer.assignment()
    if not assignment:
        return None
    marks = {tp: consumer.highwater(tp) for tp in assignment}
    return None if any(m is None for m in marks.values()) else marks


def forget_high_watermarks(consumer: Any) -> None:
    """Drop the high watermarks of earlier fetches so that a second run does not stop at the
    end of the first (kafka-python keeps them on its partition states)."""
    assignment = getattr(consumer._subscription, "assignment", {})
    for state in assignment.values():
        state.highwater = None


def commit_offsets(consumer: Any, topic: str, next_offsets: dict[int, int]) -> None:
    """Commit ``partition -> next offset`` to the consumer's group; a failure is logged only
    (the collector's ledger is authoritative, Kafka's copy is for monitoring)."""
    from kafka import OffsetAndMetadata, TopicPartition
    from kafka.errors import KafkaError

    offsets = {
        TopicPartition(topic, p): OffsetAndMetadata(o, "", -1) for p, o in next_offsets.items()
    }
    try:
        consumer.commit(offsets)
    except KafkaError as err:
        logger.warning("could not commit offsets to Kafka (data is safe on disk): %s", err)


class DeadLetters:
    """Produce quarantined lines to ``topic`` with their reason in a ``reason`` header.

    At least once: a crash may re-send a batch's lines. The producer connects on first use.
    """

    def __init__(self, settings: KafkaSettings, topic: str) -> None:
        self.settings = settings
        self.topic = topic
        self._producer: Any = None

    def send(self, quarantine: list[dict[str, Any]]) -> None:
        """Produce the quarantine rows (:func:`shrek.stream.store.quarantine_row`) and flush."""
        from kafka import KafkaProducer

        if self._producer is None:
            self._producer = KafkaProducer(**self.settings.producer_config())
        for row in quarantine:
            self._producer.send(
                self.topic,
                value=base64.b64decode(row["raw_b64"]),
                headers=[("reason", row["reason"].encode())],
            )
        self._producer.flush()

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close()
            self._producer = None
