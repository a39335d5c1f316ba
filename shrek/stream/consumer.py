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


class FreshEndOffsets:
    """The end offsets of the assigned partitions, read from fetch responses that were
    requested after this object was created.

    Parameters
    ----------
    consumer : kafka.KafkaConsumer
        Polled by the caller, who calls :meth:`get` after each poll.

    Notes
    -----
    The high watermark kafka-python keeps per partition comes from the last fetch response
    it parsed, and that response may have been requested long before: in flight when a run
    starts, or received and buffered at the end of an earlier run (on a loaded machine, for
    seconds). kafka-python has at most one fetch in flight per broker and does not fetch a
    partition again before the last response for it is parsed, so the second response parsed
    for a partition after the watermarks are forgotten was requested after that moment. The
    watermarks are therefore forgotten twice: once now, once when every partition has one.
    No clock is involved. (Tansu answers ListOffsets(latest) wrongly, see
    :func:`high_watermarks`.)
    """

    def __init__(self, consumer: Any) -> None:
        self.consumer = consumer
        self.end: dict | None = None
        self._generation = 0
        forget_high_watermarks(consumer)

    def get(self) -> dict | None:
        """``TopicPartition -> end offset`` once confirmed fresh; None until then."""
        if self.end is None:
            marks = high_watermarks(self.consumer)
            if marks is not None:
                self._generation += 1
                if self._generation >= 2:
                    self.end = marks
                else:
                    forget_high_watermarks(self.consumer)
        return self.end


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
