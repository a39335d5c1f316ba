"""Online metrics of a small hand-made log equal the hand-computed values (issue 6).

The log (``HAND_LOG`` in conftest.py), window 1 h, watch events only:

====  =====  =====  =========  ==========  =============================================
req   time   user   variant    list        outcome
====  =====  =====  =========  ==========  =============================================
R1    18:00  1      stable     a, b, c     watches b at 18:05 -> hit, position 2
R2    18:10  2      candidate  a, b, c     watches x (not listed); a at 20:00 (> 1 h) -> miss
R3    18:20  3      stable     c, d, e     e at 18:30 then d at 18:40 -> hit, position 3
                                           (the movie started *first*, not the best ranked)
R4    18:30  4      candidate  d, e, f     d at 18:29 is *before* the request; rates f at
                                           18:50 (not a watch) -> miss
R5    18:45  1      stable     a, b, c     c at 19:00 -> hit, position 3
R6    18:50  5      candidate  (none)      status 500 -> not evaluated
====  =====  =====  =========  ==========  =============================================

User 3 watching ``a`` (on user 1's list) at 18:25 must not count for anyone.

- stable/als:1: 3 requests, 3 hits, watch-through 1.0, mean position (2 + 3 + 3) / 3 = 8/3,
  lists {(1, abc), (3, cde)} -> personalization 2 / 2 = 1.0
- candidate/lfm:1: 2 requests, 0 hits, watch-through 0.0, mean position NaN, 2 / 2 = 1.0
- all: 5 requests, 3 hits, 0.6; lists (1, abc), (3, cde), (2, abc), (4, def) -> 3 / 4 = 0.75
"""

from __future__ import annotations

import math

import pandas as pd
import pytest

from shrek.monitoring.online import (
    evaluate_online,
    join_outcomes,
    online_metrics,
    parse_log,
)


@pytest.fixture
def log(hand_log_lines):
    return parse_log(hand_log_lines)


def by_variant(table: pd.DataFrame) -> dict[str, dict]:
    return {row["variant"]: row for row in table.to_dict("records")}


def test_the_log_parses_into_requests_events_and_rejected_lines(log):
    assert len(log.requests) == 6
    assert len(log.events) == 10
    assert log.rejected["text"].tolist() == ["this line is junk"]
    assert log.quarantine_rate == pytest.approx(1 / 17)
    assert log.requests["variant"].tolist()[:2] == ["stable", "candidate"]
    assert log.requests.loc[0, "movie_ids"] == ("a+1", "b+2", "c+3")


def test_per_request_hits_and_positions_match_the_hand_computed_ones(log):
    joined = join_outcomes(log.requests, log.events, window="1h")

    assert joined["user_id"].tolist() == [1, 2, 3, 4, 1]
    assert joined["hit"].tolist() == [True, False, True, False, True]
    assert joined["hit_position"].tolist()[::2] == [2.0, 3.0, 3.0]
    assert joined["hit_movie_id"].tolist()[::2] == ["b+2", "e+5", "c+3"]
    assert joined["seconds_to_hit"].tolist()[::2] == [300.0, 600.0, 900.0]


def test_metrics_per_variant_equal_the_hand_computed_values(log):
    table = by_variant(evaluate_online(log, window="1h"))

    stable, candidate = table["stable"], table["candidate"]
    assert (stable["requests"], stable["users"], stable["hits"]) == (3, 2, 3)
    assert stable["model_version"] == "als:1"
    assert stable["watch_through"] == 1.0
    assert stable["mean_hit_position"] == pytest.approx(8 / 3)
    assert stable["personalization"] == 1.0
    assert (candidate["requests"], candidate["hits"], candidate["watch_through"]) == (2, 0, 0.0)
    assert math.isnan(candidate["mean_hit_position"])
    assert candidate["personalization"] == 1.0


def test_overall_personalization_is_the_share_of_distinct_lists(log):
    (row,) = evaluate_online(log, window="1h", by=()).to_dict("records")

    assert (row["requests"], row["hits"], row["watch_through"]) == (5, 3, 0.6)
    assert row["personalization"] == 0.75


def test_a_longer_window_catches_the_late_watch(log):
    table = by_variant(evaluate_online(log, window="3h"))

    assert table["candidate"]["hits"] == 1
    assert table["candidate"]["mean_hit_position"] == 1.0


def test_rates_count_only_when_asked(log):
    table = by_variant(evaluate_online(log, window="1h", kinds=("watch", "rate")))

    assert table["candidate"]["watch_through"] == 0.5
    assert table["candidate"]["mean_hit_position"] == 3.0


def test_time_periods_split_the_requests(log):
    table = evaluate_online(log, window="1h", by=(), freq="30min")

    assert table["period"].tolist() == list(
        pd.to_datetime(["2026-03-01 18:00", "2026-03-01 18:30"])
    )
    assert table["requests"].tolist() == [3, 2]
    assert table["hits"].tolist() == [2, 1]


def test_requests_whose_window_is_not_over_are_left_out(log):
    joined = join_outcomes(
        log.requests, log.events, window="1h", observed_until=pd.Timestamp("2026-03-01 19:30")
    )

    assert joined["user_id"].tolist() == [1, 2, 3, 4]


def test_kafka_headers_win_over_the_line_suffix():
    line = (
        "2026-03-01T18:00:00.000,1,recommendation request api:8082, status 200, result: a+1, 40 ms"
    )
    log = parse_log([line.encode()], headers=[{"variant": b"candidate", "model_version": b"m:2"}])

    assert log.requests[["variant", "model_version"]].values.tolist() == [["candidate", "m:2"]]


def test_lines_without_provenance_are_unknown():
    line = (
        "2026-03-01T18:00:00.000,1,recommendation request api:8082, status 200, result: a+1, 4 ms"
    )
    log = parse_log([line])

    assert log.requests[["variant", "model_version"]].values.tolist() == [["unknown", "unknown"]]


@pytest.mark.parametrize("window", ["0s", "-1h", "soon"])
def test_a_bad_window_is_rejected_with_its_value(log, window):
    with pytest.raises(ValueError, match=r"window must be a positive duration like '1h' or '2D', "):
        join_outcomes(log.requests, log.events, window=window)


def test_an_unknown_event_kind_is_rejected(log):
    with pytest.raises(ValueError) as err:
        join_outcomes(log.requests, log.events, kinds=("click",))

    assert str(err.value) == "kinds must be a non-empty sequence of watch, rate, got ('click',)"


def test_grouping_by_an_unknown_column_names_the_columns(log):
    joined = join_outcomes(log.requests, log.events)

    with pytest.raises(
        ValueError, match=r"by must name columns of the joined table .* got \['x'\]"
    ):
        online_metrics(joined, by=("x",))


def test_an_empty_log_gives_an_empty_table():
    log = parse_log([])

    assert evaluate_online(log).empty


def test_timestamps_of_any_resolution_join():
    log = parse_log(
        [
            "2026-03-01T18:00:00.000,1,recommendation request h:1, status 200, result: a+1, 4 ms",
            "2026-03-01T18:10:00,1,GET /data/m/a+1/0.mpg",
        ]
    )
    requests = log.requests.astype({"timestamp": "datetime64[us]"})

    joined = join_outcomes(requests, log.events.astype({"timestamp": "datetime64[s]"}))

    assert joined["seconds_to_hit"].tolist() == [600.0]
