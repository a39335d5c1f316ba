"""The collector against the real broker: tables, junk, duplicates, metadata outages."""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
import warnings

import pandas as pd
import pytest

from shrek.stream.broker import ensure_topic, free_port
from shrek.stream.collector import Collector, GroupAheadWarning, MetadataPendingWarning, collect
from shrek.stream.metadata_api import MetadataServer
from shrek.stream.replay import WatchModel, history_lines, produce_lines, replay
from shrek.stream.writer import CollectorWriteError


def sort_frame(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return frame.sort_values(keys, kind="stable", ignore_index=True)


def test_collected_tables_equal_the_replayed_dataset(
    kafka_settings, topic, metadata_server, small_dataset, tmp_path
):
    model = WatchModel(watch_fraction=0.3, runtime_minutes=20, seed=1)
    replay(small_dataset, topic, settings=kafka_settings, watch_model=model, show_progress=False)

    dataset = collect(
        tmp_path,
        settings=kafka_settings,
        topic=topic,
        metadata_url=metadata_server.url,
        stop_at_end=True,
        until_idle_seconds=None,
        batch_size=200,
    )

    keys = ["user_id", "movie_id"]
    pd.testing.assert_frame_equal(
        sort_frame(dataset.ratings, keys), sort_frame(small_dataset.ratings, keys)
    )
    pd.testing.assert_frame_equal(dataset.users, small_dataset.users)
    pd.testing.assert_frame_equal(dataset.movies, sort_frame(small_dataset.movies, ["movie_id"]))
    watches = model.simulate(small_dataset.ratings)
    expected = watches.groupby(keys, as_index=False).agg(
        minutes_watched=("minute", "nunique"),
        last_minute=("minute", "max"),
        timestamp=("timestamp", "max"),
    )
    pd.testing.assert_frame_equal(dataset.watch_log, expected, check_dtype=False)
    source = dataset.version.source
    assert source["kind"] == "kafka"
    assert sum(source["offsets"].values()) == len(small_dataset.ratings) + len(watches)
    assert (tmp_path / "dataset" / "data_version.json").exists()
    assert list((tmp_path / "parts" / "rates").glob("month=*/b*.parquet"))


GOOD = [
    "2023-11-15T10:00:00,1,GET /data/m/movie+0+1990/0.mpg",
    "2023-11-15T10:01:00,1,GET /data/m/movie+0+1990/1.mpg",
    "2023-11-15T10:05:00,1,GET /rate/movie+0+1990=4",
    "2023-11-15T11:00:00,2,GET /rate/movie+1+1991=2",
    "2023-11-15T12:00:00,2,GET /rate/movie+1+1991=5",  # re-rating: the latest one wins
    "2023-11-15T09:00:00,3,GET /rate/movie+2+1992=3",  # out of order: kept
    "2023-11-14T09:00:00,2,GET /rate/movie+3+1993=1",  # re-rated below, earlier in time
    "2023-11-15T09:30:00.250,3,recommendation request api:8082, status 200, "
    "result: movie+4+1994, movie+5+1995, 12 ms",
]
JUNK = [
    (b"", "line is empty"),
    (b"2023-11-15T10:00:00,1", "line must have at least 3 comma-separated fields"),
    (b"2023-11-15T10:00:00,1,GET /rate/movie+0+1990=0", "rating must be an integer 1–5, got '0'"),
    (b"2023-11-15T10:00:00,1,GET /rate/movie+0+1990=6", "rating must be an integer 1–5, got '6'"),
    (b"2023-11-15T10:00:00,1,GET /rate/movie+0+1990=five", "rating must be an integer 1–5"),
    (b"2023-11-15T10:00:00,1,GET /rate/no+such+movie=3", "unknown movie id 'no+such+movie'"),
    (b"2023-11-15T10:00:00,999,GET /rate/movie+0+1990=3", "unknown user id 999"),
    (b"2023-11-15T10:00:00,1,GET /data/m/movie+0+1990/-1.mpg", "minute must be an integer ≥ 0"),
    (b"2023-11-15T10:00:00,1,GET /rate/caf\xe9+1990=3", "line must be UTF-8 text"),
    (b"2023-11-15T10:00:00,1,GET /rate/movie+0+1990=4", "duplicate"),  # = GOOD[2] but time
]


def test_junk_is_quarantined_with_its_reason_and_good_lines_are_kept(
    kafka_settings, metadata_server, tmp_path
):
    topic = "junk-salted"
    ensure_topic(kafka_settings, topic, partitions=1)
    good = [line.encode() for line in GOOD] + [b"2023-11-13T09:00:00,2,GET /rate/movie+3+1993=5"]
    junk = [line for line, _ in JUNK[:-1]] + [good[2], good[0]]  # two exact duplicates
    lines = []
    for i in range(max(len(good), len(junk))):
        lines += good[i : i + 1] + junk[i : i + 1]
    produce_lines(kafka_settings, topic, lines)

    with Collector(
        tmp_path,
        settings=kafka_settings,
        topic=topic,
        metadata_url=metadata_server.url,
        batch_size=4,
    ) as collector:
        stats = collector.run(stop_at_end=True, until_idle_seconds=None)
        dataset = collector.to_dataset()
        quarantine = collector.quarantine()

    expected_reasons = [reason for _, reason in JUNK[:-1]] + ["duplicate", "duplicate"]
    reasons = {}
    for row in quarantine.itertuples():
        reasons[lines[row.offset]] = row.reason
        assert row.raw == lines[row.offset]
    assert len(quarantine) == len(junk)
    for line, reason in zip(junk, expected_reasons, strict=True):
        assert reasons[line].startswith(reason) or reason in reasons[line], (line, reasons[line])
    assert stats.duplicates == 2
    # The two lines with unknown ids are stored on arrival and set apart once the metadata
    # API has answered 404; from then on the counters agree with the quarantine listing.
    assert stats.accepted == len(good)
    assert stats.quarantined == len(junk) - 2
    assert stats.quarantined + stats.duplicates == len(quarantine)
    assert stats.lag == 0
    assert dataset.version.source["counters"] == {
        "accepted": len(good), "quarantined": len(junk) - 2, "duplicates": 2,
        "unknown_id_events": 2, "lag": 0,
    }  # fmt: skip

    ratings = dataset.ratings.set_index(["user_id", "movie_id"])["rating"].to_dict()
    assert ratings == {
        (1, "movie+0+1990"): 4,
        (2, "movie+1+1991"): 5,
        (3, "movie+2+1992"): 3,
        (2, "movie+3+1993"): 1,
    }
    assert len(dataset.watch_log) == 1
    assert dataset.watch_log.iloc[0][["minutes_watched", "last_minute"]].tolist() == [2, 1]


def test_rating_history_keeps_every_rating(kafka_settings, topic, metadata_server, tmp_path):
    produce_lines(kafka_settings, topic, GOOD, keys=[b"k"] * len(GOOD))
    with Collector(
        tmp_path, settings=kafka_settings, topic=topic, metadata_url=metadata_server.url
    ) as collector:
        collector.run(stop_at_end=True, until_idle_seconds=None)
        history = collector.rating_history()
    assert sorted(history["rating"]) == [1, 2, 3, 4, 5]


def test_ten_point_scale(kafka_settings, topic, metadata_server, tmp_path):
    lines = [
        "2023-11-15T10:00:00,1,GET /rate/movie+0+1990=9",
        "2023-11-15T10:00:00,2,GET /rate/movie+0+1990=11",
    ]
    produce_lines(kafka_settings, topic, lines)
    with Collector(
        tmp_path,
        settings=kafka_settings,
        topic=topic,
        rating_scale=(1, 10),
        metadata_url=metadata_server.url,
    ) as collector:
        collector.run(stop_at_end=True, until_idle_seconds=None)
        dataset = collector.to_dataset()
        reasons = collector.quarantine()["reason"].tolist()
    assert dataset.ratings["rating"].tolist() == [9]
    assert reasons == ["rating must be an integer 1–10, got '11'"]


def test_dead_letter_topic_receives_quarantined_lines(kafka_settings, topic, tmp_path):
    from kafka import KafkaConsumer

    produce_lines(kafka_settings, topic, [b"junk", b"2023-11-15T10:00:00,1,GET /rate/a=3"])
    collect(
        tmp_path,
        settings=kafka_settings,
        topic=topic,
        dead_letter_topic=topic + "-dlq",
        stop_at_end=True,
        until_idle_seconds=None,
        wait_for_metadata_seconds=0,
    )
    consumer = KafkaConsumer(topic + "-dlq", **kafka_settings.consumer_config(None))
    records = []
    for _ in range(50):
        for batch in consumer.poll(timeout_ms=100).values():
            records += batch
        if records:
            break
    consumer.close()
    assert [r.value for r in records] == [b"junk"]
    assert dict(records[0].headers)["reason"].startswith(b"line must have at least 3")


def _store_state(folder) -> tuple[int, int]:
    """(events accepted on arrival, metadata entries pending) of a collector folder, read
    without disturbing the collector."""
    path = folder / "state.sqlite"
    if not path.exists():
        return 0, 0
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            accepted = db.execute("SELECT value FROM counters WHERE name = 'accepted'").fetchone()
            pending = db.execute("SELECT COUNT(*) FROM metadata WHERE status = 'pending'")
            return (accepted[0] if accepted else 0), pending.fetchone()[0]
    except sqlite3.OperationalError:  # created but no table yet
        return 0, 0


def test_metadata_api_down_during_a_run_loses_nothing(
    kafka_settings, topic, dataset_factory, tmp_path
):
    """Issue 3: the metadata API stops while the collector consumes and comes back on the same
    port; no event is lost and all metadata is there at the end."""
    source = dataset_factory(n_users=20, n_movies=10, n_ratings=120, seed=4)
    lines, keys, _, _ = history_lines(source, watch_model=WatchModel(0.2, 10, seed=2))
    user = [int(line.split(b",")[1]) for line in lines]
    before = [line for line, u in zip(lines, user, strict=True) if u <= 10]
    during = [line for line, u in zip(lines, user, strict=True) if u > 10]
    during, after = during[: len(during) * 3 // 4], during[len(during) * 3 // 4 :]
    port = free_port()
    seen: dict[str, tuple[int, int]] = {}
    failures: list[BaseException] = []
    servers: list[MetadataServer] = []

    def wait_for(accepted: int, pending: bool = False) -> tuple[int, int]:
        deadline = time.monotonic() + 60
        while True:
            state = _store_state(tmp_path)
            if state[0] >= accepted and (state[1] > 0 or not pending):
                return state
            if time.monotonic() > deadline:
                raise TimeoutError(f"collector stuck at {state}, waiting for {accepted}")
            time.sleep(0.02)

    def outage(collector: Collector) -> None:
        try:
            servers.append(MetadataServer(source, port=port).start())
            produce_lines(kafka_settings, topic, before)
            wait_for(len(before))
            servers[-1].stop()
            produce_lines(kafka_settings, topic, during)
            seen["down"] = wait_for(len(before) + len(during), pending=True)
            servers.append(MetadataServer(source, port=port).start())
            produce_lines(kafka_settings, topic, after)
            seen["end"] = wait_for(len(lines))
        except BaseException as err:  # noqa: BLE001 - re-raised by the test
            failures.append(err)
        finally:
            collector.request_stop()

    with Collector(
        tmp_path,
        settings=kafka_settings,
        topic=topic,
        metadata_url=f"http://127.0.0.1:{port}",
        batch_size=20,
        metadata_timeout=0.2,
        assign=True,
    ) as collector:
        thread = threading.Thread(target=outage, args=(collector,))
        thread.start()
        stats = collector.run(until_idle_seconds=None, max_seconds=120)
        thread.join()
        try:
            assert not failures, failures
            assert seen["down"][1] > 0  # ids first seen during the outage were left pending
            assert stats.accepted == len(lines)
            with warnings.catch_warnings():
                warnings.simplefilter("error", MetadataPendingWarning)
                dataset = collector.to_dataset(wait_for_metadata_seconds=10)
            assert collector.stats().pending_metadata == 0
        finally:
            for server in servers:
                server.stop()

    keys = ["user_id", "movie_id"]
    pd.testing.assert_frame_equal(
        sort_frame(dataset.ratings, keys), sort_frame(source.ratings, keys)
    )
    pd.testing.assert_frame_equal(dataset.users, source.users)
    pd.testing.assert_frame_equal(dataset.movies, sort_frame(source.movies, ["movie_id"]))


def test_metadata_pending_warning_names_the_api(kafka_settings, topic, small_dataset, tmp_path):
    lines, keys, _, _ = history_lines(small_dataset, watch_model=WatchModel(0.0))
    produce_lines(kafka_settings, topic, lines[:30], keys=keys[:30])
    url = f"http://127.0.0.1:{free_port()}"
    with Collector(
        tmp_path, settings=kafka_settings, topic=topic, metadata_url=url, metadata_timeout=0.2
    ) as collector:
        stats = collector.run(stop_at_end=True, until_idle_seconds=None)
        assert stats.accepted == 30 and stats.pending_metadata > 0
        with pytest.warns(MetadataPendingWarning, match=f"the API at {url} did not answer"):
            dataset = collector.to_dataset(wait_for_metadata_seconds=0)
    assert len(dataset.ratings) == 30 and dataset.users.empty


def test_request_lines_keep_their_variant_and_model_version(kafka_settings, topic, tmp_path):
    """Issue 3: the collector stores the provenance headers the service sends with requests."""
    from kafka import KafkaProducer

    request = (
        "2023-11-15T10:00:00.113,{user},recommendation request api:8082, status 200, "
        "result: movie+0+1990, movie+1+1991, 43 ms"
    )
    producer = KafkaProducer(**kafka_settings.producer_config())
    producer.send(
        topic,
        value=request.format(user=1).encode(),
        headers=[("variant", b"candidate"), ("model_version", b"shrek-als:abc"), ("run_id", b"r")],
    )
    producer.send(topic, value=request.format(user=2).encode())  # no headers
    producer.send(topic, value=request.format(user=3).encode(), headers=[("variant", b"")])
    producer.flush()
    producer.close()

    with Collector(tmp_path, settings=kafka_settings, topic=topic, assign=True) as collector:
        stats = collector.run(stop_at_end=True, until_idle_seconds=None)
        requests = collector.store.read_events("requests").sort_values("user_id")

    assert stats.accepted == 3
    assert requests["variant"].tolist() == ["candidate", "unknown", "unknown"]
    assert requests["model_version"].tolist() == ["shrek-als:abc", "unknown", "unknown"]
    assert requests["movie_ids"].tolist() == ["movie+0+1990,movie+1+1991"] * 3


def test_writer_process_killed_loses_nothing(kafka_settings, topic, small_dataset, tmp_path):
    lines, keys, _, _ = history_lines(small_dataset)
    produce_lines(kafka_settings, topic, lines[:100], keys=keys[:100])
    options = {"settings": kafka_settings, "topic": topic, "assign": True, "batch_size": 40}
    with Collector(tmp_path, **options) as collector:
        collector.run(stop_at_end=True, until_idle_seconds=None)
        assert collector.stats().accepted == 100
        writer = collector._process._process
        os.kill(writer.pid, signal.SIGKILL)
        writer.join()
        produce_lines(kafka_settings, topic, lines[100:], keys=keys[100:])
        with pytest.raises(CollectorWriteError, match=r"writer process exited \(code -9\)"):
            collector.run(stop_at_end=True, until_idle_seconds=None)
        assert collector.stats().accepted == 100  # the failed batch was not committed

    with Collector(tmp_path, **options) as collector:  # a new writer, from the ledger
        collector.run(stop_at_end=True, until_idle_seconds=None)
        ratings = collector.rating_history()
        assert collector.stats().accepted == len(lines)
        assert collector.stats().duplicates == 0
    assert len(ratings) == len(small_dataset.ratings)


def test_stop_at_end_reads_the_end_offsets_afresh_on_every_run(kafka_settings, topic, tmp_path):
    """Regression: stop_at_end took the high watermarks 0.6 s after the start, which could
    still be those of the last fetch of the previous run (requested before the new lines)."""
    lines = [f"2023-11-15T10:00:{i % 60:02d},{i + 1},GET /rate/movie+0+1990=3" for i in range(60)]
    with Collector(tmp_path, settings=kafka_settings, topic=topic, assign=True) as collector:
        produce_lines(kafka_settings, topic, lines[:30])
        first = collector.run(stop_at_end=True, until_idle_seconds=None)
        time.sleep(1.0)  # the first run's last fetch is answered with the old end meanwhile
        produce_lines(kafka_settings, topic, lines[30:])
        second = collector.run(stop_at_end=True, until_idle_seconds=None)
        empty = collector.run(stop_at_end=True, until_idle_seconds=None)  # at the end already
    assert (first.accepted, second.accepted, empty.accepted) == (30, 60, 60)
    assert second.lag == empty.lag == 0


def test_a_new_folder_on_a_group_that_consumed_the_topic_warns(kafka_settings, topic, tmp_path):
    """Regression (newcomer trial of issue 3): a re-created --out folder on the default group
    collected nothing, silently, because it resumed from the group's committed offsets."""
    lines = [f"2023-11-15T10:00:{i:02d},{i + 1},GET /rate/movie+0+1990=3" for i in range(20)]
    produce_lines(kafka_settings, topic, lines)
    options = {"settings": kafka_settings, "topic": topic, "group_id": f"ahead-{topic}"}
    with warnings.catch_warnings(), Collector(tmp_path / "first", assign=True, **options) as c:
        warnings.simplefilter("error", GroupAheadWarning)
        assert c.run(stop_at_end=True, until_idle_seconds=None).accepted == 20

    new_folder = r"is a new collector folder, but consumer group 'ahead-"
    with (
        Collector(tmp_path / "second", assign=True, **options) as c,
        pytest.warns(GroupAheadWarning, match=new_folder),
    ):
        stats = c.run(stop_at_end=True, until_idle_seconds=None)
    assert stats.accepted == 0  # it says so instead of silently collecting nothing

    options["group_id"] = f"fresh-{topic}"
    with Collector(tmp_path / "third", assign=True, **options) as collector:
        assert collector.run(stop_at_end=True, until_idle_seconds=None).accepted == 20


def test_collect_command_says_where_each_quarantined_line_is(
    kafka_settings, topic, metadata_server, tmp_path
):
    """Regression (newcomer trial of issue 3): the summary pointed at quarantine/ for every
    quarantined line, but events with an unknown user or movie are not written there."""
    from click.testing import CliRunner

    from shrek.stream.cli import collect_command

    good = "2023-11-15T10:00:00,1,GET /rate/movie+0+1990=3"
    lines = [good, good, "2023-11-15T10:00:01,1,GET /rate/movie+1+1991=9"]
    lines += ["2023-11-15T10:00:02,99999,GET /rate/movie+2+1992=4"]  # unknown user
    produce_lines(kafka_settings, topic, lines)
    out = tmp_path / "collected"
    arguments = ["--bootstrap-servers", kafka_settings.bootstrap_servers, "--topic", topic]
    arguments += ["--out", str(out), "--group-id", f"cli-{topic}", "--stop-at-end", "--assign"]
    result = CliRunner().invoke(
        collect_command, [*arguments, "--metadata-url", metadata_server.url, "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    assert (
        f"{out}: 1 events accepted, 2 quarantined (2 lines with their reason in {out}/quarantine/"
        ", duplicates included; 1 events whose user or movie the metadata API does not know), "
        "1 duplicates dropped, lag 0\n"
    ) in result.output
    in_files = sum(len(p.read_text().splitlines()) for p in (out / "quarantine").glob("*.jsonl"))
    assert in_files == 2


def test_idle_time_counts_from_the_assignment_not_from_the_start(kafka_settings, topic, tmp_path):
    """Regression (newcomer trial of issue 3): joining the group counted as idle time, so a
    collector whose join took longer than --until-idle stopped before reading anything."""
    lines = [f"2023-11-15T10:00:{i:02d},{i + 1},GET /rate/movie+0+1990=3" for i in range(30)]
    produce_lines(kafka_settings, topic, lines)
    with Collector(tmp_path, settings=kafka_settings, topic=topic, group_id=f"j-{topic}") as c:
        stats = c.run(until_idle_seconds=0.3)  # a join on the embedded broker takes ~1 s
    assert stats.accepted == 30
