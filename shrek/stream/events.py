"""The stream's line format: parse and format watch, rate and recommendation-request events.

Every Kafka message is one line of text, ``<timestamp>,<user id>,<request>``:

==========  ================================================================================
kind        example
==========  ================================================================================
watch       ``2026-03-01T18:22:09,4711,GET /data/m/toy+story+1995/37.mpg`` (one per minute)
rate        ``2026-03-01T18:59:40,4711,GET /rate/toy+story+1995=4``
request     ``2026-03-01T18:00:02.113,4711,recommendation request api:8082, status 200,
            result: m1, m2, m3, 43 ms`` (on one line)
==========  ================================================================================

Timestamps are naive UTC, ISO 8601 with a ``T``, whole seconds or 1–6 decimals, between
1678-01-01 and 2261-12-31 (what the tables' ``datetime64[ns]`` columns hold). User ids are
positive integers. Movie ids are slugs: lower-case ``[a-z0-9]`` words joined by ``+``, derived
from the full title with its year (``"Toy Story (1995)"`` -> ``toy+story+1995``, see
:func:`shrek.data.slugify`; MovieLens titles with accents lose them, ``"Misérables, Les (1995)"``
-> ``miserables+les+1995``).

:func:`parse_line` and :func:`format_event` are exact inverses: ``parse_line(format_event(e)) ==
e`` for every event. :func:`parse_batch` is the collector's fast path over many raw lines; it
accepts exactly the lines :func:`parse_line` accepts and reports the same reasons.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shrek.data.schemas import DEFAULT_RATING_SCALE, SLUG_RE

__all__ = [
    "Event",
    "ParsedBatch",
    "RateEvent",
    "RecommendationRequest",
    "WatchEvent",
    "check_rating_scale",
    "format_event",
    "parse_batch",
    "parse_line",
]

_TS = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?"
_USER = r"[1-9]\d{0,17}"
_SLUG = r"[a-z0-9]+(?:\+[a-z0-9]+)*"
_TS_RE = re.compile(_TS)
# The years datetime64[ns] holds whole (it spans 1677-09-21 to 2262-04-11); numpy casts dates
# outside silently to wrong ones (2300-01-01 becomes 1715-06-13).
TIMESTAMP_MIN = datetime(1678, 1, 1)
TIMESTAMP_MAX = datetime(2261, 12, 31, 23, 59, 59, 999_999)
_TS_MIN_US = np.datetime64(TIMESTAMP_MIN, "us")
_TS_MAX_US = np.datetime64(TIMESTAMP_MAX, "us")
_USER_RE = re.compile(_USER)
_WATCH_RE = re.compile(r"GET /data/m/(?P<movie>[^/]*)/(?P<minute>[^/]*)\.mpg")
_RATE_RE = re.compile(r"GET /rate/(?P<movie>[^=]*)=(?P<rating>.*)")
_REQUEST_RE = re.compile(
    r"recommendation request (?P<server>\S+), status (?P<status>\d{3}), "
    r"result: (?P<result>.*), (?P<latency>\d+) ms"
)
# Fast path of parse_batch: one RE2 pattern (pyarrow) over the whole batch, watch and rate lines
# as named groups; what parse_line strips (trailing CR and LF) is allowed at the end.
_FAST_PATTERN = (
    rf"^(?:(?P<w_ts>{_TS}),(?P<w_user>{_USER}),GET /data/m/(?P<w_movie>{_SLUG})/"
    rf"(?P<w_value>\d{{1,9}})\.mpg"
    rf"|(?P<r_ts>{_TS}),(?P<r_user>{_USER}),GET /rate/(?P<r_movie>{_SLUG})=(?P<r_value>\d{{1,3}}))"
    r"[\r\n]*$"
)


@dataclass(frozen=True)
class WatchEvent:
    """A user streamed one minute of a movie (``minute`` counts from 0)."""

    timestamp: datetime
    user_id: int
    movie_id: str
    minute: int


@dataclass(frozen=True)
class RateEvent:
    """A user rated a movie."""

    timestamp: datetime
    user_id: int
    movie_id: str
    rating: int


@dataclass(frozen=True)
class RecommendationRequest:
    """A user asked the recommendation service ``server`` (``host:port``) for movies."""

    timestamp: datetime
    user_id: int
    server: str
    status: int
    movie_ids: tuple[str, ...] = field(default_factory=tuple)
    latency_ms: int = 0


Event = WatchEvent | RateEvent | RecommendationRequest


def check_rating_scale(rating_scale: tuple[int, int]) -> tuple[int, int]:
    """Return ``rating_scale`` as ``(low, high)`` after checking it is one of 1–5 or 1–10."""
    if tuple(rating_scale) not in ((1, 5), (1, 10)):
        raise ValueError(f"rating_scale must be (1, 5) or (1, 10), got {rating_scale!r}")
    return int(rating_scale[0]), int(rating_scale[1])


def format_timestamp(timestamp: datetime) -> str:
    """ISO 8601 without zone: whole seconds, milliseconds or microseconds as needed."""
    if timestamp.tzinfo is not None:
        raise ValueError(f"timestamp must be naive UTC, got {timestamp.isoformat()}")
    if timestamp.microsecond == 0:
        return timestamp.isoformat(timespec="seconds")
    if timestamp.microsecond % 1000 == 0:
        return timestamp.isoformat(timespec="milliseconds")
    return timestamp.isoformat(timespec="microseconds")


def format_event(event: Event) -> str:
    """The stream line of ``event`` (no trailing newline).

    Raises
    ------
    ValueError
        If a field could not be parsed back (see :func:`parse_line`), e.g. a movie id that is
        not a slug; the line would otherwise be quarantined by the collector.
    TypeError
        If ``event`` is not one of the three event classes.
    """
    if not isinstance(event, WatchEvent | RateEvent | RecommendationRequest):
        raise TypeError(
            f"event must be a WatchEvent, RateEvent or RecommendationRequest, got "
            f"{type(event).__name__}"
        )
    head = f"{format_timestamp(event.timestamp)},{event.user_id}"
    if isinstance(event, WatchEvent):
        line = f"{head},GET /data/m/{event.movie_id}/{event.minute}.mpg"
    elif isinstance(event, RateEvent):
        line = f"{head},GET /rate/{event.movie_id}={event.rating}"
    else:
        result = ", ".join(event.movie_ids)
        line = (
            f"{head},recommendation request {event.server}, status {event.status}, "
            f"result: {result}, {event.latency_ms} ms"
        )
    parse_line(line, rating_scale=(1, 10))
    return line


def parse_line(line: str | bytes, *, rating_scale: tuple[int, int] = DEFAULT_RATING_SCALE) -> Event:
    """Parse one stream line into its event.

    Parameters
    ----------
    line : str or bytes
        One line, with or without a trailing newline. Bytes must be UTF-8.
    rating_scale : tuple of int, default (1, 5)
        Accepted ratings ``(low, high)``: (1, 5) or (1, 10).

    Returns
    -------
    WatchEvent, RateEvent or RecommendationRequest

    Raises
    ------
    ValueError
        Naming the field, what it accepts and what it got, e.g.
        ``"rating must be an integer 1–5, got '7'"``.
    """
    low, high = check_rating_scale(rating_scale)
    if isinstance(line, bytes | bytearray | memoryview):
        try:
            line = bytes(line).decode("utf-8")
        except UnicodeDecodeError as err:
            raise ValueError(
                f"line must be UTF-8 text, got byte {bytes(line)[err.start]:#04x} at position "
                f"{err.start}"
            ) from None
    line = line.rstrip("\r\n")
    if not line.strip():
        raise ValueError("line is empty")
    fields = line.split(",", 2)
    if len(fields) != 3:
        raise ValueError(
            f"line must have at least 3 comma-separated fields (timestamp, user id, request), "
            f"got {len(fields)}: {_clip(line)!r}"
        )

    stamp, user, request = fields
    timestamp = _parse_timestamp(stamp)
    if not _USER_RE.fullmatch(user):
        raise ValueError(f"user id must be a positive integer, got {_clip(user)!r}")
    user_id = int(user)

    if match := _WATCH_RE.fullmatch(request):
        minute = match["minute"]
        if not re.fullmatch(r"\d{1,9}", minute):
            raise ValueError(f"minute must be an integer ≥ 0, got {_clip(minute)!r}")
        return WatchEvent(timestamp, user_id, _movie_id(match["movie"]), int(minute))
    if match := _RATE_RE.fullmatch(request):
        movie_id = _movie_id(match["movie"])
        rating = match["rating"]
        if not re.fullmatch(r"\d{1,3}", rating) or not low <= int(rating) <= high:
            raise ValueError(f"rating must be an integer {low}–{high}, got {_clip(rating)!r}")
        return RateEvent(timestamp, user_id, movie_id, int(rating))
    if match := _REQUEST_RE.fullmatch(request):
        result = match["result"]
        movie_ids = tuple(_movie_id(m) for m in result.split(", ")) if result else ()
        return RecommendationRequest(
            timestamp,
            user_id,
            match["server"],
            int(match["status"]),
            movie_ids,
            int(match["latency"]),
        )
    raise ValueError(
        "request must be 'GET /data/m/<movie id>/<minute>.mpg', 'GET /rate/<movie id>=<rating>' "
        f"or 'recommendation request <host:port>, status <code>, result: <movie ids>, <n> ms', "
        f"got {_clip(request)!r}"
    )


def _parse_timestamp(text: str) -> datetime:
    if not _TS_RE.fullmatch(text):
        raise ValueError(
            f"timestamp must be ISO 8601 like 2026-03-01T18:22:09[.113], got {_clip(text)!r}"
        )
    try:
        timestamp = datetime.fromisoformat(text)
    except ValueError as err:
        raise ValueError(f"timestamp must be a valid date and time, got {text!r} ({err})") from None
    if not TIMESTAMP_MIN <= timestamp <= TIMESTAMP_MAX:
        raise ValueError(
            f"timestamp must be between {TIMESTAMP_MIN.isoformat()} and "
            f"{TIMESTAMP_MAX.isoformat()} (the range of datetime64[ns]), got {text!r}"
        )
    return timestamp


def _movie_id(text: str) -> str:
    if not SLUG_RE.fullmatch(text):
        raise ValueError(
            "movie id must be lower-case [a-z0-9] words joined by '+' (like 'toy+story+1995'), "
            f"got {_clip(text)!r}"
        )
    return text


def _clip(text: str, width: int = 80) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


@dataclass
class ParsedBatch:
    """Columns of the well-formed events of a batch of lines, and the reasons for the others.

    Attributes
    ----------
    rates, watches : dict of str to numpy.ndarray
        ``index`` (position in the input), ``user_id``, ``movie_id`` (object), ``rating`` or
        ``minute``, ``timestamp`` (datetime64[ns]); one entry per event.
    requests : list of (int, RecommendationRequest)
        Recommendation requests with their position in the input.
    errors : list of (int, str)
        Position in the input and the reason, for every line :func:`parse_line` rejects.
    """

    rates: dict[str, np.ndarray]
    watches: dict[str, np.ndarray]
    requests: list[tuple[int, RecommendationRequest]]
    errors: list[tuple[int, str]]


def parse_batch(
    lines: list[bytes], *, rating_scale: tuple[int, int] = DEFAULT_RATING_SCALE
) -> ParsedBatch:
    """Parse many raw lines at once into columns (the collector's fast path).

    Parameters
    ----------
    lines : list of bytes
        Raw message values, ``[n_lines]``.
    rating_scale : tuple of int, default (1, 5)
        Accepted ratings ``(low, high)``.

    Returns
    -------
    ParsedBatch
        Every line is in exactly one of ``rates``, ``watches``, ``requests`` or ``errors``.

    Notes
    -----
    Watch and rate lines are matched by one vectorised regex call over the whole batch
    (pyarrow's ``extract_regex``, RE2) and converted column-wise; only lines the pattern does
    not match (junk, requests) or whose values are out of range go through
    :func:`parse_line`, which gives their reason.
    """
    low, high = check_rating_scale(rating_scale)
    matched = pc.extract_regex(pa.array(lines, pa.binary()), pattern=_FAST_PATTERN)
    slow = np.flatnonzero(matched.is_null().to_numpy(zero_copy_only=False)).tolist()

    rates, bad_rates = _columns(matched, "r_", "rating")
    in_scale = (rates["rating"] >= low) & (rates["rating"] <= high)
    if not in_scale.all():
        bad_rates.extend(rates["index"][~in_scale].tolist())
        rates = {name: column[in_scale] for name, column in rates.items()}
    watches, bad_watches = _columns(matched, "w_", "minute")

    requests: list[tuple[int, RecommendationRequest]] = []
    errors: list[tuple[int, str]] = []
    for index in sorted(slow + bad_rates + bad_watches):
        try:
            event = parse_line(lines[index], rating_scale=(low, high))
        except ValueError as err:
            errors.append((index, str(err)))
            continue
        if not isinstance(event, RecommendationRequest):  # pragma: no cover - regex drift
            raise RuntimeError(f"parse_batch and parse_line disagree on {lines[index]!r}")
        requests.append((index, event))
    return ParsedBatch(rates=rates, watches=watches, requests=requests, errors=errors)


def _columns(
    matched: pa.StructArray, prefix: str, value_name: str
) -> tuple[dict[str, np.ndarray], list[int]]:
    """Typed columns of the lines whose ``prefix`` groups matched; lines whose timestamp is not
    a real date or is out of range are returned apart (``2026-02-30`` and ``2300-01-01``
    match the pattern)."""
    stamps = pc.struct_field(matched, prefix + "ts")
    index = np.flatnonzero(pc.binary_length(stamps).fill_null(0).to_numpy() > 0)
    take = pa.array(index, pa.int64())

    def field(name: str, to: pa.DataType) -> pa.Array:
        return pc.cast(pc.struct_field(matched, prefix + name).take(take), to)

    try:
        micros = field("ts", pa.string()).cast(pa.timestamp("us")).to_numpy()
        valid = np.ones(len(index), bool)
    except pa.ArrowInvalid:  # one is no date: find which
        micros, valid = _timestamps_one_by_one(field("ts", pa.string()).to_pylist())
    micros = micros.astype("datetime64[us]")
    valid &= (micros >= _TS_MIN_US) & (micros <= _TS_MAX_US)
    if not valid.all():
        micros = np.where(valid, micros, _TS_MIN_US)
    columns = {
        "index": index.astype("int64"),
        "timestamp": micros.astype("datetime64[ns]"),
        "user_id": field("user", pa.string()).cast(pa.int64()).to_numpy(),
        "movie_id": np.asarray(field("movie", pa.string()).to_numpy(zero_copy_only=False), object),
        value_name: field("value", pa.string()).cast(pa.int64()).to_numpy(),
    }
    if valid.all():
        return columns, []
    bad = columns["index"][~valid].tolist()
    return {name: column[valid] for name, column in columns.items()}, bad


def _timestamps_one_by_one(stamps: list[str]) -> tuple[np.ndarray, np.ndarray]:
    out = np.empty(len(stamps), "datetime64[us]")
    valid = np.ones(len(stamps), bool)
    for i, stamp in enumerate(stamps):
        try:
            out[i] = np.datetime64(datetime.fromisoformat(stamp), "us")
        except ValueError:
            valid[i] = False
    return out, valid
