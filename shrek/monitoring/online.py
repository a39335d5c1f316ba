"""Online evaluation: what users did after the service recommended something to them.

A recommendation request (``<ts>,<user>,recommendation request <host:port>, status 200,
result: m1, ..., m20, 43 ms``) is joined with the *later* watch (and optionally rate) events
of the same user within a window. Per request this gives

- ``hit``: the user started one of the recommended movies within the window (a watch event of
  it, at any minute: one watched minute means the movie was started);
- ``hit_position``: the 1-based rank, in the list, of the recommended movie started first;

and per group (variant, model version, optionally time period) the **watch-through rate**
(share of requests with a hit), the mean hit position and **personalization**: the share of
distinct lists among the users' lists (``n distinct lists / n distinct (user, list) pairs``;
1.0 when no two users got the same list, ``1 / n_users`` when all got one list).

The stream line has no field for the variant or the model version; the service puts them in
the Kafka record's headers (:mod:`shrek.serve.request_log`) and in its own log as
``<line> | variant=stable model_version=shrek-als:abc ...``. :func:`parse_log` reads both
forms; :mod:`shrek.monitoring.logs` reads a topic with its headers, or a log file.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from shrek.data.schemas import DEFAULT_RATING_SCALE
from shrek.stream.events import RateEvent, RecommendationRequest, WatchEvent, parse_line

logger = logging.getLogger(__name__)

UNKNOWN = "unknown"
OUTCOME_KINDS: tuple[str, ...] = ("watch", "rate")
GROUP_KEYS: tuple[str, ...] = ("variant", "model_version")
METRIC_COLUMNS: tuple[str, ...] = (
    "requests",
    "users",
    "hits",
    "watch_through",
    "mean_hit_position",
    "personalization",
)


@dataclass
class OnlineLog:
    """The parsed lines of a log or topic.

    Attributes
    ----------
    requests : pandas.DataFrame
        ``[n_requests, 7]``: timestamp, user_id, movie_ids (tuple of str, best first), status,
        latency_ms, variant, model_version (``"unknown"`` when the line carried none).
    events : pandas.DataFrame
        ``[n_events, 5]``: timestamp, user_id, movie_id, kind (``"watch"``/``"rate"``), value
        (the minute or the rating).
    rejected : pandas.DataFrame
        ``[n_rejected, 3]``: position (0-based, in the input), reason, text.
    """

    requests: pd.DataFrame
    events: pd.DataFrame
    rejected: pd.DataFrame

    @property
    def n_lines(self) -> int:
        return len(self.requests) + len(self.events) + len(self.rejected)

    @property
    def quarantine_rate(self) -> float:
        """Share of lines the collector's validation would reject (NaN for an empty log)."""
        return len(self.rejected) / self.n_lines if self.n_lines else float("nan")


def parse_log(
    lines: Iterable[str | bytes],
    *,
    headers: Iterable[Mapping[str, Any] | None] | None = None,
    rating_scale: tuple[int, int] = DEFAULT_RATING_SCALE,
) -> OnlineLog:
    """Parse stream lines (and their provenance) into requests, events and rejected lines.

    Parameters
    ----------
    lines : iterable of str or bytes
        Stream lines, ``[n_lines]``. A line may end with `` | key=value ...`` as in the
        service's own request log; ``variant`` and ``model_version`` are read from there.
    headers : iterable of mapping, optional
        Kafka record headers per line (``[n_lines]``; values str or bytes), which win over
        the suffix.
    rating_scale : tuple of int, default (1, 5)
        Accepted ratings ``(low, high)``.

    Returns
    -------
    OnlineLog
    """
    requests: list[tuple] = []
    events: list[tuple] = []
    rejected: list[tuple[int, str, str]] = []
    header_iter = iter(headers) if headers is not None else None
    for position, raw in enumerate(lines):
        extra = dict(next(header_iter) or {}) if header_iter is not None else {}
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes | bytearray) else raw
        line, _, suffix = text.rstrip("\r\n").partition(" | ")
        tags = dict(item.split("=", 1) for item in suffix.split() if "=" in item)
        tags.update({k: v.decode() if isinstance(v, bytes) else str(v) for k, v in extra.items()})
        try:
            event = parse_line(raw if not suffix else line, rating_scale=rating_scale)
        except ValueError as err:
            rejected.append((position, str(err), text.rstrip("\r\n")))
            continue
        if isinstance(event, RecommendationRequest):
            requests.append(
                (
                    event.timestamp,
                    event.user_id,
                    event.movie_ids,
                    event.status,
                    event.latency_ms,
                    tags.get("variant") or UNKNOWN,
                    tags.get("model_version") or UNKNOWN,
                )
            )
        elif isinstance(event, WatchEvent):
            events.append((event.timestamp, event.user_id, event.movie_id, "watch", event.minute))
        elif isinstance(event, RateEvent):
            events.append((event.timestamp, event.user_id, event.movie_id, "rate", event.rating))
    return OnlineLog(
        requests=requests_frame(requests),
        events=events_frame(events),
        rejected=pd.DataFrame(rejected, columns=["position", "reason", "text"]),
    )


def requests_frame(rows: Sequence[tuple] = ()) -> pd.DataFrame:
    """A requests table (see :class:`OnlineLog`) from row tuples in column order."""
    columns = ["timestamp", "user_id", "movie_ids", "status", "latency_ms"]
    frame = pd.DataFrame(list(rows), columns=[*columns, *GROUP_KEYS])
    return frame.astype(
        {
            "timestamp": "datetime64[ns]",
            "user_id": "int64",
            "movie_ids": object,
            "status": "int64",
            "latency_ms": "int64",
            "variant": object,
            "model_version": object,
        }
    )


def events_frame(rows: Sequence[tuple] = ()) -> pd.DataFrame:
    """An events table (see :class:`OnlineLog`) from row tuples in column order."""
    frame = pd.DataFrame(list(rows), columns=["timestamp", "user_id", "movie_id", "kind", "value"])
    return frame.astype(
        {
            "timestamp": "datetime64[ns]",
            "user_id": "int64",
            "movie_id": object,
            "kind": object,
            "value": "int64",
        }
    )


def join_outcomes(
    requests: pd.DataFrame,
    events: pd.DataFrame,
    *,
    window: str | pd.Timedelta = "1h",
    kinds: Sequence[str] = ("watch",),
    observed_until: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Join each answered request with the same user's later events within ``window``.

    Parameters
    ----------
    requests : pandas.DataFrame
        ``[n_requests, ≥ 5]`` as in :class:`OnlineLog`; only status 200 answers with a
        non-empty list are evaluated.
    events : pandas.DataFrame
        ``[n_events, ≥ 4]``: timestamp, user_id, movie_id, kind.
    window : str or pandas.Timedelta, default "1h"
        How long after a request an event still counts (events at the request's own time
        count too).
    kinds : sequence of {"watch", "rate"}, default ("watch",)
        Which events count as starting a movie.
    observed_until : pandas.Timestamp, optional
        End of the observed events; requests whose window ends after it are dropped (their
        outcome is not known yet). All requests are kept when omitted.

    Returns
    -------
    pandas.DataFrame
        One row per evaluated request, in time order: request_id (the request's row label),
        timestamp, user_id, variant, model_version, n_recommended, hit (bool), hit_position
        (float, NaN without a hit), hit_movie_id, seconds_to_hit.

    Raises
    ------
    ValueError
        For a window that is not positive or an unknown event kind.
    """
    window = check_window(window)
    kinds = _check_kinds(kinds)
    answered = requests[(requests["status"] == 200) & (requests["movie_ids"].map(len) > 0)]
    if observed_until is not None:
        answered = answered[answered["timestamp"] + window <= pd.Timestamp(observed_until)]
    answered = answered.assign(
        timestamp=answered["timestamp"].astype("datetime64[ns]"),
        request_id=answered.index,
        variant=answered.get("variant", UNKNOWN),
        model_version=answered.get("model_version", UNKNOWN),
    )

    lists = answered[["request_id", "timestamp", "user_id", "movie_ids"]].explode("movie_ids")
    lists = lists.rename(columns={"movie_ids": "movie_id"})
    lists["rank"] = lists.groupby("request_id").cumcount() + 1
    lists = lists.astype({"movie_id": object}).sort_values("timestamp", kind="stable")
    outcomes = events.loc[events["kind"].isin(kinds), ["timestamp", "user_id", "movie_id"]]
    outcomes = outcomes.astype({"movie_id": object, "timestamp": "datetime64[ns]"})
    outcomes = outcomes.sort_values("timestamp", kind="stable")
    outcomes = outcomes.rename(columns={"timestamp": "event_time"})
    lists["pair"], outcomes["pair"] = _pair_codes(lists, outcomes)
    matched = pd.merge_asof(
        lists,
        outcomes[["event_time", "pair"]],
        left_on="timestamp",
        right_on="event_time",
        by="pair",
        direction="forward",
        tolerance=window,
    )
    matched = matched.dropna(subset=["event_time"])
    first = matched.sort_values(["request_id", "event_time", "rank"]).drop_duplicates("request_id")
    first = first.set_index("request_id")[["rank", "movie_id", "event_time"]]
    first = first.rename(columns={"rank": "hit_position", "movie_id": "hit_movie_id"})

    joined = answered[["request_id", "timestamp", "user_id", *GROUP_KEYS]].copy()
    joined["n_recommended"] = answered["movie_ids"].map(len).astype("int64")
    joined = joined.join(first, on="request_id")
    joined["hit"] = joined["event_time"].notna()
    joined["hit_position"] = joined["hit_position"].astype("float64")
    joined["hit_movie_id"] = joined["hit_movie_id"].astype(object)
    delay = joined.pop("event_time").astype("datetime64[ns]") - joined["timestamp"]
    joined["seconds_to_hit"] = delay.dt.total_seconds()
    joined["list_key"] = answered["movie_ids"].map(",".join).astype(object)
    columns = [
        "request_id", "timestamp", "user_id", *GROUP_KEYS, "n_recommended", "hit",
        "hit_position", "hit_movie_id", "seconds_to_hit", "list_key",
    ]  # fmt: skip
    joined = joined[columns]
    return joined.sort_values(["timestamp", "request_id"], kind="stable", ignore_index=True)


def _pair_codes(left: pd.DataFrame, right: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """One int64 code per (user_id, movie_id) shared by both frames: merge_asof matches on
    one integer key several times faster than on an (int, object) pair."""
    users, _ = pd.factorize(np.concatenate([left["user_id"], right["user_id"]]))
    movies, uniques = pd.factorize(np.concatenate([left["movie_id"], right["movie_id"]]))
    codes = users.astype("int64") * (len(uniques) + 1) + movies
    return codes[: len(left)], codes[len(left) :]


def online_metrics(
    joined: pd.DataFrame,
    *,
    by: Sequence[str] = GROUP_KEYS,
    freq: str | None = None,
) -> pd.DataFrame:
    """Watch-through rate, mean hit position and personalization per group (and period).

    Parameters
    ----------
    joined : pandas.DataFrame
        The output of :func:`join_outcomes`.
    by : sequence of str, default ("variant", "model_version")
        Grouping columns; ``()`` for one overall row.
    freq : str, optional
        A pandas frequency (``"1h"``, ``"1D"``): adds a ``period`` column (start of each time
        window, by request time) to the groups.

    Returns
    -------
    pandas.DataFrame
        One row per group: the ``by`` columns (and ``period``), requests, users, hits,
        watch_through (hits / requests), mean_hit_position (over hits; NaN without one),
        personalization (see the module docstring).
    """
    keys = list(by)
    unknown = [key for key in keys if key not in joined.columns]
    if unknown:
        raise ValueError(
            f"by must name columns of the joined table ({', '.join(joined.columns)}), got {unknown}"
        )
    frame = joined
    if freq is not None:
        frame = joined.assign(period=joined["timestamp"].dt.floor(freq))
        keys.append("period")
    if not keys:
        frame = frame.assign(_all="all")
        keys = ["_all"]

    rows = []
    for key, group in frame.groupby(keys, sort=True, dropna=False):
        pairs = group.drop_duplicates(["user_id", "list_key"])
        hits = int(group["hit"].sum())
        rows.append(
            {
                **dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True)),
                "requests": len(group),
                "users": group["user_id"].nunique(),
                "hits": hits,
                "watch_through": hits / len(group),
                "mean_hit_position": group["hit_position"].mean() if hits else np.nan,
                "personalization": pairs["list_key"].nunique() / len(pairs),
            }
        )
    columns = [k for k in keys if k != "_all"] + list(METRIC_COLUMNS)
    result = pd.DataFrame(rows, columns=[*keys, *METRIC_COLUMNS])
    return result[columns].astype({"requests": "int64", "users": "int64", "hits": "int64"})


def evaluate_online(
    log: OnlineLog,
    *,
    window: str | pd.Timedelta = "1h",
    kinds: Sequence[str] = ("watch",),
    by: Sequence[str] = GROUP_KEYS,
    freq: str | None = None,
    observed_until: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """:func:`join_outcomes` then :func:`online_metrics` on a parsed log."""
    joined = join_outcomes(
        log.requests, log.events, window=window, kinds=kinds, observed_until=observed_until
    )
    metrics = online_metrics(joined, by=by, freq=freq)
    logger.info(
        "online evaluation: %d requests, %d events, window %s -> %d groups",
        len(log.requests),
        len(log.events),
        window,
        len(metrics),
    )
    return metrics


def check_window(window: str | pd.Timedelta, *, name: str = "window") -> pd.Timedelta:
    """``window`` as a Timedelta; ValueError naming ``name`` unless it is a positive duration."""
    try:
        value = pd.Timedelta(window)
    except (TypeError, ValueError):
        value = None
    if value is None or pd.isna(value) or value <= pd.Timedelta(0):
        raise ValueError(f"{name} must be a positive duration like '1h' or '2D', got {window!r}")
    return value


def _check_kinds(kinds: Sequence[str]) -> list[str]:
    if isinstance(kinds, str) or not kinds or set(kinds) - set(OUTCOME_KINDS):
        raise ValueError(
            f"kinds must be a non-empty sequence of {', '.join(OUTCOME_KINDS)}, got {kinds!r}"
        )
    return list(kinds)
