"""Stream layer: events on Kafka, the embedded broker, the metadata API, replay and collector.

The line format is in :mod:`shrek.stream.events`; broker settings in
:mod:`shrek.stream.broker`; :func:`shrek.stream.job.collect_via_stream` runs the whole path.
The collector (:mod:`shrek.stream.collector`) consumes; :mod:`shrek.stream.batch` validates a
batch, :mod:`shrek.stream.resolver` fetches metadata, :mod:`shrek.stream.store` makes batches
durable, :mod:`shrek.stream.tables` builds the dataset and :mod:`shrek.stream.consumer` holds
the kafka-python plumbing.
"""

from shrek.stream.broker import EmbeddedBroker, KafkaSettings
from shrek.stream.collector import Collector, collect
from shrek.stream.events import (
    RateEvent,
    RecommendationRequest,
    WatchEvent,
    format_event,
    parse_line,
)
from shrek.stream.job import collect_via_stream
from shrek.stream.metadata_api import MetadataClient, MetadataServer
from shrek.stream.replay import WatchModel, replay

__all__ = [
    "Collector",
    "EmbeddedBroker",
    "KafkaSettings",
    "MetadataClient",
    "MetadataServer",
    "RateEvent",
    "RecommendationRequest",
    "WatchEvent",
    "WatchModel",
    "collect",
    "collect_via_stream",
    "format_event",
    "parse_line",
    "replay",
]
