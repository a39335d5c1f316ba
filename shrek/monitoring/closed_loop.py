"""Closed-loop replay: ask the running service at each user's turn, then replay what they did.

**This is a simulation.** MovieLens holds no recommendation traffic, so Shrek makes some: the
users of a dataset take turns in the order of their first rating after ``start``; at each turn
the loop asks the running service ``GET /recommend/<user_id>`` (the service writes the
request line, with its variant and model version, to the topic) and then produces that user's
*actual* later events to the same topic: their ratings within ``horizon`` of the turn as rate
events, each preceded by **simulated** watch events (:class:`shrek.stream.replay.WatchModel`,
every rating watched by default). The users do not see the recommendations: their behaviour
is the recorded one whatever the service answers, so the online watch-through measures how
well each model anticipates what users go on to do, not how recommendations change it.

Timestamps
----------
The service stamps its request line with the wall clock. The events of a turn are stamped
``t_answer + (t - t_turn) / speedup``, where ``t_answer`` is the wall-clock time the answer
arrived, ``t`` the event's dataset time and ``t_turn`` the user's first event of the turn
(its first simulated watch minute). With ``speedup = 1`` the dataset's gaps are kept (events
are stamped up to ``horizon`` into the future); ``speedup = 1440`` turns a day into a minute,
so the evaluation window must be divided by the same factor.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import requests

from shrek.data.schemas import DEFAULT_RATING_SCALE
from shrek.stream.broker import KafkaSettings, ensure_topic
from shrek.stream.replay import WatchModel, event_requests

logger = logging.getLogger(__name__)

DEFAULT_WATCH_MODEL = WatchModel(watch_fraction=1.0)


@dataclass(frozen=True)
class Turn:
    """One user's turn: when it starts in dataset time, and the events that follow.

    Attributes
    ----------
    user_id : int
    time : pandas.Timestamp
        Dataset time of the user's first event of the turn.
    events : pandas.DataFrame
        ``[n_events, 3]``: offset (Timedelta from ``time``), request (the line's third
        field, ``GET /data/m/...`` or ``GET /rate/...``), kind (0 watch, 1 rate), in time order.
    """

    user_id: int
    time: pd.Timestamp
    events: pd.DataFrame


@dataclass(frozen=True)
class ClosedLoopStats:
    """What a closed-loop run did."""

    turns: int
    answered: int
    failed: int
    events: int
    seconds: float


def plan_turns(
    ratings: pd.DataFrame,
    *,
    start: str | pd.Timestamp,
    horizon: str | pd.Timedelta = "7D",
    max_users: int | None = None,
    watch_model: WatchModel = DEFAULT_WATCH_MODEL,
    rating_scale: tuple[int, int] = DEFAULT_RATING_SCALE,
    seed: int = 0,
) -> list[Turn]:
    """One turn per user with a rating at or after ``start``, in the order of the turns.

    Parameters
    ----------
    ratings : pandas.DataFrame
        ``[n_ratings, 4]``: user_id, movie_id, rating, timestamp.
    start : str or pandas.Timestamp
        Beginning of the simulated period (the end of the training window).
    horizon : str or pandas.Timedelta, default "7D"
        A user's ratings from their first one after ``start`` until this much later are
        replayed after their turn.
    max_users : int, optional
        Draw this many of the eligible users at random (seeded); all when omitted.
    watch_model : WatchModel, default every rating watched
        The simulation of watch events before each rating.
    rating_scale : tuple of int, default (1, 5)
    seed : int, default 0
        Seed of the user sample.

    Returns
    -------
    list of Turn
        Ordered by dataset time.
    """
    horizon = pd.Timedelta(horizon)
    if pd.isna(horizon) or horizon <= pd.Timedelta(0):
        raise ValueError(f"horizon must be a positive duration like '7D', got {horizon!r}")
    if max_users is not None and max_users < 1:
        raise ValueError(f"max_users must be ≥ 1 or None, got {max_users!r}")
    later = ratings[ratings["timestamp"] >= pd.Timestamp(start)]
    first = later.groupby("user_id")["timestamp"].min()
    users = first.index.to_numpy()
    if max_users is not None and max_users < len(users):
        users = np.sort(np.random.default_rng(seed).choice(users, max_users, replace=False))
    later = later[later["user_id"].isin(users)]
    later = later[later["timestamp"] < later["user_id"].map(first) + horizon]
    later = later.sort_values(["timestamp", "user_id", "movie_id"], kind="stable")
    later = later.reset_index(drop=True)

    watches = watch_model.simulate(later, rating_scale=rating_scale)
    events = event_requests(watches, later)
    events = events.sort_values(["user_id", "timestamp", "kind"], kind="stable")
    turns = []
    for user_id, group in events.groupby("user_id", sort=False):
        turn_time = group["timestamp"].min()
        frame = pd.DataFrame(
            {
                "offset": group["timestamp"] - turn_time,
                "request": group["request"].to_numpy(),
                "kind": group["kind"].to_numpy(),
            }
        ).reset_index(drop=True)
        turns.append(Turn(int(user_id), turn_time, frame))
    turns.sort(key=lambda turn: (turn.time, turn.user_id))
    logger.info("planned %d turns with %d events", len(turns), len(events))
    return turns


def run_closed_loop(
    turns: list[Turn],
    *,
    service_url: str,
    settings: KafkaSettings,
    topic: str,
    speedup: float = 1.0,
    timeout: float = 5.0,
    show_progress: bool = False,
) -> ClosedLoopStats:
    """Ask the service at each turn, then produce the user's events to ``topic``.

    Parameters
    ----------
    turns : list of Turn
        From :func:`plan_turns`.
    service_url : str
        Base URL of the running service (``http://127.0.0.1:3000``); it must log its
        requests to ``topic`` on the same broker (``SHREK_REQUEST_LOG_TOPIC``).
    settings : KafkaSettings
        Where the broker is.
    topic : str
        The event topic (created with 3 partitions if missing).
    speedup : float, default 1.0
        Dataset seconds per wall-clock second for the events' stamps (see the module
        docstring).
    timeout : float, default 5.0
        Seconds per HTTP request.
    show_progress : bool, default False

    Returns
    -------
    ClosedLoopStats

    Notes
    -----
    A failed request (connection error, non-200 answer) is counted and the user's events are
    produced anyway: the users' behaviour is recorded, not a reaction to the service.
    """
    from kafka import KafkaProducer
    from tqdm.auto import tqdm

    if not speedup > 0:
        raise ValueError(f"speedup must be > 0, got {speedup!r}")
    ensure_topic(settings, topic)
    producer = KafkaProducer(**settings.producer_config())
    http = requests.Session()
    started = time.monotonic()
    answered = failed = produced = 0
    try:
        for turn in tqdm(turns, desc="closed loop", unit="turn", disable=not show_progress):
            try:
                response = http.get(f"{service_url}/recommend/{turn.user_id}", timeout=timeout)
                ok = response.status_code == 200
            except requests.RequestException as err:
                logger.warning("request for user %d failed: %s", turn.user_id, err)
                ok = False
            answered += ok
            failed += not ok
            base = _now_ms() + timedelta(milliseconds=1)
            for line in _turn_lines(turn, base, speedup):
                producer.send(topic, value=line, key=str(turn.user_id).encode())
            produced += len(turn.events)
        producer.flush()
    finally:
        producer.close()
        http.close()
    stats = ClosedLoopStats(
        turns=len(turns),
        answered=answered,
        failed=failed,
        events=produced,
        seconds=time.monotonic() - started,
    )
    logger.info(
        "closed loop: %d turns (%d answered, %d failed), %d events in %.1f s",
        stats.turns,
        stats.answered,
        stats.failed,
        stats.events,
        stats.seconds,
    )
    return stats


def _now_ms() -> datetime:
    now = datetime.now(UTC).replace(tzinfo=None)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _turn_lines(turn: Turn, base: datetime, speedup: float) -> list[bytes]:
    offsets = turn.events["offset"].to_numpy().astype("timedelta64[us]") / speedup
    stamps = np.datetime64(base, "us") + offsets.astype("timedelta64[us]")
    text = np.datetime_as_string(stamps, unit="ms")
    return [
        f"{t},{turn.user_id},{r}".encode()
        for t, r in zip(text, turn.events["request"], strict=True)
    ]
