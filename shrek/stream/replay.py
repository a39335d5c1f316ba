"""Replay a dataset's history to a topic as stream events, in timestamp order.

Each rating becomes a rate event. MovieLens records no viewing, so **watch events are
simulated** by :class:`WatchModel`: they are made up from the ratings by a seeded model, not
observed, and say nothing about how people really watch.

The watch model
---------------
For a rating ``r`` on the scale ``low–high``, with probability ``watch_fraction`` the user is
given one viewing session before the rating. The share of the movie watched is::

    completion = clip(0.1 + 0.85 * (r - low) / (high - low) + uniform(-0.1, 0.1), 0.01, 1.0)

so a 1-star movie is abandoned after ~10 % and a 5-star one watched to the end. The session
covers minutes ``0 .. n - 1`` with ``n = max(1, round(runtime_minutes * completion))``, one
event per minute, minute ``k`` at ``rating time - (n - k) minutes``. The same seed gives the
same events.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from shrek.data.dataset import Dataset
from shrek.data.schemas import DEFAULT_RATING_SCALE
from shrek.stream.broker import KafkaSettings, ensure_topic
from shrek.stream.events import check_rating_scale

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WatchModel:
    """Seeded simulation of watch events from ratings (see the module docstring).

    Parameters
    ----------
    watch_fraction : float, default 0.1
        Share of ratings preceded by a viewing session, 0–1.
    runtime_minutes : int, default 100
        Assumed length of every movie (MovieLens has no runtimes).
    seed : int, default 0
    """

    watch_fraction: float = 0.1
    runtime_minutes: int = 100
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.watch_fraction <= 1.0:
            raise ValueError(f"watch_fraction must be 0–1, got {self.watch_fraction}")
        if self.runtime_minutes < 1:
            raise ValueError(f"runtime_minutes must be ≥ 1, got {self.runtime_minutes}")

    def simulate(
        self, ratings: pd.DataFrame, *, rating_scale: tuple[int, int] = DEFAULT_RATING_SCALE
    ) -> pd.DataFrame:
        """Simulated watch events for ``ratings``.

        Returns
        -------
        pandas.DataFrame
            ``[n_events, 4]``: timestamp, user_id, movie_id, minute.
        """
        low, high = check_rating_scale(rating_scale)
        rng = np.random.default_rng(self.seed)
        watched = rng.random(len(ratings)) < self.watch_fraction
        noise = rng.uniform(-0.1, 0.1, len(ratings))
        share = 0.1 + 0.85 * (ratings["rating"].to_numpy() - low) / (high - low) + noise
        minutes = np.maximum(1, np.rint(self.runtime_minutes * np.clip(share, 0.01, 1.0)))
        minutes = np.where(watched, minutes, 0).astype("int64")

        session = np.repeat(np.arange(len(ratings)), minutes)
        starts = np.repeat(np.cumsum(minutes) - minutes, minutes)
        minute = np.arange(len(session)) - starts
        end = ratings["timestamp"].to_numpy()[session]
        before = (minutes[session] - minute).astype("timedelta64[m]")
        return pd.DataFrame(
            {
                "timestamp": (end - before).astype("datetime64[ns]"),
                "user_id": ratings["user_id"].to_numpy()[session],
                "movie_id": ratings["movie_id"].to_numpy()[session],
                "minute": minute.astype("int64"),
            }
        )


@dataclass(frozen=True)
class ReplayStats:
    """What a replay produced."""

    rates: int
    watches: int
    seconds: float

    @property
    def events(self) -> int:
        return self.rates + self.watches


def event_requests(watches: pd.DataFrame, ratings: pd.DataFrame) -> pd.DataFrame:
    """Watch and rate events as request paths of the stream format.

    Parameters
    ----------
    watches : pandas.DataFrame
        ``[n_watches, 4]``: timestamp, user_id, movie_id, minute (:meth:`WatchModel.simulate`).
    ratings : pandas.DataFrame
        The ratings table, ``[n_rates, 4]``.

    Returns
    -------
    pandas.DataFrame
        ``[n_watches + n_rates, 4]``: timestamp, user_id, request, kind (0 watch, 1 rate),
        watches first.
    """
    watch_paths = "GET /data/m/" + watches["movie_id"] + "/" + watches["minute"].astype(str)
    rate_paths = "GET /rate/" + ratings["movie_id"] + "=" + ratings["rating"].astype(str)
    columns = ["timestamp", "user_id", "request", "kind"]
    return pd.concat(
        [
            watches.assign(request=watch_paths + ".mpg", kind=0)[columns],
            ratings.assign(request=rate_paths, kind=1)[columns],
        ],
        ignore_index=True,
    )


def history_lines(
    dataset: Dataset,
    *,
    watch_model: WatchModel | None = None,
    rating_scale: tuple[int, int] = DEFAULT_RATING_SCALE,
) -> tuple[list[bytes], list[bytes], int, int]:
    """The dataset's events as stream lines in timestamp order, and their Kafka keys.

    Returns
    -------
    lines, keys : list of bytes
        ``[n_events]`` each; keys are user ids, so each user's events keep their order.
    n_rates, n_watches : int
    """
    ratings = dataset.ratings
    watches = (watch_model or WatchModel()).simulate(ratings, rating_scale=rating_scale)
    events = event_requests(watches, ratings)
    events = events.sort_values(["timestamp", "kind", "user_id"], kind="stable")
    stamps = events["timestamp"].to_numpy()
    whole = (stamps.astype("datetime64[s]") == stamps).all()
    if whole:
        text = np.datetime_as_string(stamps, unit="s")
    else:
        text = np.datetime_as_string(stamps, unit="us")
    users = events["user_id"].astype(str).to_numpy()
    lines = [
        f"{t},{u},{r}".encode() for t, u, r in zip(text, users, events["request"], strict=True)
    ]
    keys = [u.encode() for u in users]
    return lines, keys, len(ratings), len(watches)


def produce_lines(
    settings: KafkaSettings,
    topic: str,
    lines: Iterable[bytes | str],
    *,
    keys: Iterable[bytes | None] | None = None,
    rate: float | None = None,
    show_progress: bool = False,
    total: int | None = None,
) -> int:
    """Send ``lines`` to ``topic`` in order, at most ``rate`` per second; return how many.

    The producer waits for every acknowledgement before returning.
    """
    from kafka import KafkaProducer
    from tqdm.auto import tqdm

    if rate is not None and rate <= 0:
        raise ValueError(f"rate must be > 0 events per second or None, got {rate}")
    producer = KafkaProducer(**settings.producer_config())
    keys = iter(keys) if keys is not None else None
    started = time.monotonic()
    sent = 0
    try:
        for line in tqdm(
            lines, total=total, desc="replay", unit="event", disable=not show_progress
        ):
            value = line.encode() if isinstance(line, str) else line
            producer.send(topic, value=value, key=next(keys) if keys is not None else None)
            sent += 1
            if rate is not None:
                ahead = started + sent / rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
        producer.flush()
    finally:
        producer.close()
    return sent


def replay(
    dataset: Dataset,
    topic: str,
    *,
    settings: KafkaSettings,
    watch_model: WatchModel | None = None,
    rate: float | None = None,
    partitions: int = 3,
    rating_scale: tuple[int, int] = DEFAULT_RATING_SCALE,
    show_progress: bool = True,
) -> ReplayStats:
    """Produce ``dataset``'s ratings (and simulated watch events) to ``topic`` by time.

    Parameters
    ----------
    dataset : Dataset
        Supplies the ratings.
    topic : str
        Created with ``partitions`` partitions if it does not exist.
    settings : KafkaSettings
        Where the broker is.
    watch_model : WatchModel, optional
        The simulation of watch events; ``WatchModel()`` (10 % of ratings) by default,
        ``WatchModel(watch_fraction=0)`` for none.
    rate : float, optional
        Events per second; as fast as possible when omitted.
    partitions : int, default 3
    rating_scale : tuple of int, default (1, 5)
    show_progress : bool, default True

    Returns
    -------
    ReplayStats

    Notes
    -----
    The events are built in memory before sending (~100 bytes each), so memory grows with
    the dataset. kafka-python sends ~25k events/s; MovieLens 100K with the default model
    (~0.5 M events) takes about half a minute.
    """
    started = time.monotonic()
    ensure_topic(settings, topic, partitions=partitions)
    lines, keys, n_rates, n_watches = history_lines(
        dataset, watch_model=watch_model, rating_scale=rating_scale
    )
    produce_lines(
        settings,
        topic,
        lines,
        keys=keys,
        rate=rate,
        show_progress=show_progress,
        total=len(lines),
    )
    stats = ReplayStats(rates=n_rates, watches=n_watches, seconds=time.monotonic() - started)
    logger.info(
        "replayed %d rate and %d simulated watch events to %s in %.1f s",
        stats.rates,
        stats.watches,
        topic,
        stats.seconds,
    )
    return stats
