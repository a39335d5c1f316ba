"""Parse and format of stream lines (issue 3: one module, parse(format(x)) == x)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import numpy as np
import pytest

from shrek.stream.events import (
    RateEvent,
    RecommendationRequest,
    WatchEvent,
    format_event,
    parse_batch,
    parse_line,
)

T = datetime(2026, 3, 1, 18, 22, 9)

CASES = [
    (
        "2026-03-01T18:22:09,4711,GET /data/m/toy+story+1995/37.mpg",
        WatchEvent(T, 4711, "toy+story+1995", 37),
    ),
    (
        "2026-03-01T18:22:09,4711,GET /rate/toy+story+1995=4",
        RateEvent(T, 4711, "toy+story+1995", 4),
    ),
    (
        "2026-03-01T18:22:09.113,4711,recommendation request api-3:8082, status 200, "
        "result: toy+story+1995, heat+1995, 43 ms",
        RecommendationRequest(
            T.replace(microsecond=113_000),
            4711,
            "api-3:8082",
            200,
            ("toy+story+1995", "heat+1995"),
            43,
        ),
    ),
    (
        "2026-03-01T18:22:09.000001,1,recommendation request h:1, status 500, result: , 0 ms",
        RecommendationRequest(T.replace(microsecond=1), 1, "h:1", 500, (), 0),
    ),
    ("2026-03-01T18:22:09,7,GET /data/m/movie+267/0.mpg", WatchEvent(T, 7, "movie+267", 0)),
]


@pytest.mark.parametrize(("line", "event"), CASES)
def test_parse_and_format_are_inverse_on_examples(line, event):
    assert parse_line(line) == event
    assert format_event(event) == line
    assert parse_line(format_event(event)) == event


def _random_event(rng: random.Random):
    words = ["toy", "story", "1995", "a", "b2", "x"]
    movie = "+".join(rng.choice(words) for _ in range(rng.randint(1, 4)))
    ts = datetime(1997, 9, 1) + timedelta(
        seconds=rng.randint(0, 10**8), microseconds=rng.choice([0, 0, 5000, 123456])
    )
    user = rng.randint(1, 10**12)
    kind = rng.randrange(3)
    if kind == 0:
        return WatchEvent(ts, user, movie, rng.randint(0, 500))
    if kind == 1:
        return RateEvent(ts, user, movie, rng.randint(1, 5))
    result = tuple(movie + f"+{i}" for i in range(rng.randint(0, 20)))
    return RecommendationRequest(ts, user, f"host{rng.randint(0, 9)}:8082", 200, result, 43)


def test_parse_and_format_are_inverse_on_random_events():
    rng = random.Random(3)
    for _ in range(2000):
        event = _random_event(rng)
        assert parse_line(format_event(event)) == event
        assert parse_line(format_event(event).encode() + b"\n") == event


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"", "line is empty"),
        (
            b"2026-03-01T18:22:09,4711",
            "line must have at least 3 comma-separated fields (timestamp, user id, request), "
            "got 2: '2026-03-01T18:22:09,4711'",
        ),
        (
            b"2026-03-01T18:22:09,4711,GET /rate/heat+1995=7",
            "rating must be an integer 1–5, got '7'",
        ),
        (
            b"2026-03-01T18:22:09,4711,GET /rate/heat+1995=0",
            "rating must be an integer 1–5, got '0'",
        ),
        (
            b"2026-03-01T18:22:09,4711,GET /rate/heat+1995=five",
            "rating must be an integer 1–5, got 'five'",
        ),
        (
            b"2026-03-01T18:22:09,4711,GET /data/m/heat+1995/-3.mpg",
            "minute must be an integer ≥ 0, got '-3'",
        ),
        (b"2026-03-01 18:22:09,4711,GET /rate/heat+1995=4", "timestamp must be ISO 8601"),
        (b"2026-02-30T18:22:09,4711,GET /rate/heat+1995=4", "timestamp must be a valid date"),
        (
            b"2300-01-01T00:00:00,4711,GET /rate/heat+1995=4",
            "timestamp must be between 1678-01-01T00:00:00 and 2261-12-31T23:59:59.999999 (the "
            "range of datetime64[ns]), got '2300-01-01T00:00:00'",
        ),
        (b"2026-03-01T18:22:09,0,GET /rate/heat+1995=4", "user id must be a positive integer"),
        (
            b"2026-03-01T18:22:09,4711,GET /rate/Heat (1995)=4",
            "movie id must be lower-case [a-z0-9] words joined by '+' (like 'toy+story+1995'), "
            "got 'Heat (1995)'",
        ),
        (
            b"2026-03-01T18:22:09,4711,GET /rate/caf\xe9+1995=4",
            "line must be UTF-8 text, got byte 0xe9 at position 38",
        ),
        (b"2026-03-01T18:22:09,4711,POST /rate/heat+1995=4", "request must be 'GET /data/m/"),
    ],
)
def test_errors_name_the_field_the_rule_and_the_value(line, message):
    with pytest.raises(ValueError) as caught:
        parse_line(line)
    assert str(caught.value).startswith(message)


def test_rating_scale_is_configurable():
    line = "2026-03-01T18:22:09,4711,GET /rate/heat+1995=9"
    assert parse_line(line, rating_scale=(1, 10)).rating == 9
    with pytest.raises(ValueError, match="rating must be an integer 1–5, got '9'"):
        parse_line(line)
    with pytest.raises(
        ValueError, match=r"rating_scale must be \(1, 5\) or \(1, 10\), got \(0, 5\)"
    ):
        parse_line(line, rating_scale=(0, 5))


def test_format_refuses_what_parse_would_reject():
    with pytest.raises(ValueError, match="movie id must be"):
        format_event(RateEvent(T, 1, "Toy Story", 4))
    with pytest.raises(TypeError, match="event must be a WatchEvent"):
        format_event("2026-03-01T18:22:09,1,GET /rate/a=1")


@pytest.mark.parametrize(
    "line_breaks",
    [
        [],  # the whole batch is matched in one regex call
        [b"2026-03-01T00:00:00,1,GET /rate/a=3\r\n", b"a\nb", b"\n", b"\r"],  # line by line
    ],
)
def test_parse_batch_agrees_with_parse_line(line_breaks):
    rng = random.Random(5)
    lines = [format_event(_random_event(rng)).encode() for _ in range(300)]
    junk = [
        b"",
        b"x,y",
        b"2026-02-30T00:00:00,1,GET /rate/a=3",
        b"2026-03-01T00:00:00,1,GET /rate/a=6",
        b"2026-03-01T00:00:00,1,GET /data/m/a/-1.mpg",
        b"2300-01-01T00:00:00,1,GET /rate/a=3",
        b"1677-09-21T00:12:43,1,GET /data/m/a/3.mpg",
        b"\xff\xfe",
        *line_breaks,
    ]
    lines[10:10] = junk
    batch = parse_batch(lines)
    parsed = {}
    for i, line in enumerate(lines):
        try:
            parsed[i] = parse_line(line)
        except ValueError as err:
            parsed[i] = str(err)
    assert dict(batch.errors) == {i: v for i, v in parsed.items() if isinstance(v, str)}
    rates = {
        int(i): RateEvent(t.astype("datetime64[us]").item(), int(u), m, int(r))
        for i, t, u, m, r in zip(
            *(batch.rates[k] for k in ("index", "timestamp", "user_id", "movie_id", "rating")),
            strict=True,
        )
    }
    assert rates == {i: v for i, v in parsed.items() if isinstance(v, RateEvent)}
    assert len(batch.watches["index"]) == sum(isinstance(v, WatchEvent) for v in parsed.values())
    assert dict(batch.requests) == {
        i: v for i, v in parsed.items() if isinstance(v, RecommendationRequest)
    }


@pytest.mark.parametrize("line_break", [b"", b"\r\n"])  # whole-batch and line-by-line paths
def test_parse_batch_quarantines_timestamps_outside_datetime64_ns(line_break):
    """Regression: the fast path cast 2300-01-01 to datetime64[ns] as 1715-06-13."""
    lines = [
        b"2300-01-01T00:00:00,1,GET /rate/a=3" + line_break,
        b"1500-06-01T00:00:00,1,GET /data/m/a/3.mpg",
        b"2261-12-31T23:59:59.999999,1,GET /rate/a=4",  # the last instant accepted
        b"1678-01-01T00:00:00,1,GET /data/m/a/0.mpg",  # the first
        b"2262-01-01T00:00:00,2,recommendation request h:1, status 200, result: a, 3 ms",
    ]
    batch = parse_batch(lines)
    rule = "timestamp must be between 1678-01-01T00:00:00 and 2261-12-31T23:59:59.999999"
    assert dict(batch.errors) == {
        0: f"{rule} (the range of datetime64[ns]), got '2300-01-01T00:00:00'",
        1: f"{rule} (the range of datetime64[ns]), got '1500-06-01T00:00:00'",
        4: f"{rule} (the range of datetime64[ns]), got '2262-01-01T00:00:00'",
    }
    last, first = np.datetime64("2261-12-31T23:59:59.999999"), np.datetime64("1678-01-01T00:00:00")
    assert batch.rates["timestamp"].astype("datetime64[us]").tolist() == [last.item()]
    assert batch.watches["timestamp"].astype("datetime64[us]").tolist() == [first.item()]
