"""The stream path end to end: broker, metadata API, replay, collector, tables.

:func:`collect_via_stream` is what the main job calls: it starts what is missing (the embedded
broker when no bootstrap servers are configured, the metadata API over the source dataset),
replays the dataset's history, collects it into a folder and stops what it started.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from shrek.data.dataset import Dataset
from shrek.data.schemas import DEFAULT_RATING_SCALE
from shrek.stream.broker import EmbeddedBroker, KafkaSettings
from shrek.stream.collector import collect
from shrek.stream.metadata_api import MetadataServer
from shrek.stream.replay import WatchModel, replay

logger = logging.getLogger(__name__)


def collect_via_stream(
    source: Dataset,
    folder: str | Path,
    *,
    settings: KafkaSettings | None = None,
    topic: str = "shrek-events",
    metadata_url: str | None = None,
    watch_model: WatchModel | None = None,
    rate: float | None = None,
    rating_scale: tuple[int, int] = DEFAULT_RATING_SCALE,
    show_progress: bool = True,
) -> Dataset:
    """Replay ``source`` through Kafka and collect it back into ``folder``.

    Parameters
    ----------
    source : Dataset
        Its ratings are replayed; its users and movies are served by the metadata API.
    folder : str or Path
        The collector folder; the dataset is saved in ``folder/dataset``.
    settings : KafkaSettings, optional
        Defaults to :meth:`KafkaSettings.from_env`; without bootstrap servers an embedded
        broker runs for the duration of the call.
    topic : str, default "shrek-events"
    metadata_url : str, optional
        An already running metadata API; otherwise one is started over ``source``.
    watch_model : WatchModel, optional
        Simulation of watch events (:class:`WatchModel` defaults).
    rate : float, optional
        Replay events per second; as fast as possible by default.
    rating_scale : tuple of int, default (1, 5)
    show_progress : bool, default True

    Returns
    -------
    Dataset
        The collected tables; the version's source names the topic and offsets.
    """
    settings = settings or KafkaSettings.from_env()
    with contextlib.ExitStack() as stack:
        if not settings.configured:
            broker = stack.enter_context(EmbeddedBroker())
            settings = broker.settings(settings)
        if metadata_url is None:
            metadata_url = stack.enter_context(MetadataServer(source)).url
        replay(
            source,
            topic,
            settings=settings,
            watch_model=watch_model,
            rate=rate,
            rating_scale=rating_scale,
            show_progress=show_progress,
        )
        return collect(
            folder,
            settings=settings,
            topic=topic,
            metadata_url=metadata_url,
            rating_scale=rating_scale,
            stop_at_end=True,
            until_idle_seconds=None,
            show_progress=show_progress,
        )
