"""The collector's writer process: signals, inherited state, death of either side."""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import time

import pandas as pd
import pytest

from shrek.data.dataset import Dataset
from shrek.stream.collector import Collector
from shrek.stream.metadata_api import MetadataServer
from shrek.stream.replay import WatchModel, history_lines, produce_lines


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_to_the_collectors_process_group_stops_it_cleanly(
    signum, kafka_settings, topic, metadata_server, small_dataset, collect_command, batches_of,
    tmp_path,
):  # fmt: skip
    """Regression: a Ctrl-C (SIGINT to the process group) killed the forked writer, which kept
    Python's default handler, and `shrek collect` failed with CollectorWriteError."""
    lines, keys, _, _ = history_lines(small_dataset, watch_model=WatchModel(0.5, 20, seed=5))
    produce_lines(kafka_settings, topic, lines, keys=keys)
    folder = tmp_path / "collected"
    process = collect_command(
        topic, folder, "--metadata-url", metadata_server.url, "--batch-size", "10",
        "--until-idle", "0", "--assign",
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while batches_of(folder) < 3:
        assert process.poll() is None, process.stderr.read().decode()
        assert time.monotonic() < deadline, "the collector made no progress"
        time.sleep(0.02)

    os.killpg(process.pid, signum)
    _, stderr = process.communicate(timeout=60)

    assert process.returncode == 0, stderr.decode()
    assert "CollectorWriteError" not in stderr.decode()
    saved = Dataset.load(folder / "dataset")
    counters = saved.version.source["counters"]
    consumed = sum(saved.version.source["offsets"].values())
    assert 0 < consumed <= len(lines)
    assert counters["accepted"] + counters["quarantined"] + counters["duplicates"] == consumed

    with Collector(folder, settings=kafka_settings, topic=topic, assign=True,
                   metadata_url=metadata_server.url) as collector:  # fmt: skip
        stats = collector.run(stop_at_end=True, until_idle_seconds=None)
        dataset = collector.to_dataset()
    assert (stats.accepted, stats.quarantined, stats.duplicates) == (len(lines), 0, 0)
    assert len(dataset.ratings) == len(small_dataset.ratings)


def test_metadata_server_restarts_on_its_port_while_a_collector_is_alive(
    kafka_settings, topic, small_dataset, tmp_path
):
    """Regression: a writer forked after the server started inherited its listening socket,
    so the stopped server's port stayed bound (EADDRINUSE on restart)."""
    server = MetadataServer(small_dataset).start()
    url, port = server.url, server.port
    lines, keys, _, _ = history_lines(small_dataset, watch_model=WatchModel(0.0))
    with Collector(tmp_path, settings=kafka_settings, topic=topic, metadata_url=url) as collector:
        server.stop()
        with MetadataServer(small_dataset, port=port):
            produce_lines(kafka_settings, topic, lines, keys=keys)
            stats = collector.run(stop_at_end=True, until_idle_seconds=None)
            dataset = collector.to_dataset(wait_for_metadata_seconds=0)
    assert stats.accepted == len(lines)
    pd.testing.assert_frame_equal(dataset.users, small_dataset.users)


def test_writer_dies_with_a_killed_collector_even_in_the_middle_of_a_batch(
    kafka_settings, topic, small_dataset, collect_command, batches_of, tmp_path
):
    """kill -9 of the collector while its writer waits for the metadata API: the writer exits
    at once, without committing, and frees the folder (it would otherwise commit the batch
    after the API timed out, behind the back of a restarted collector)."""
    lines, keys, _, _ = history_lines(small_dataset)
    produce_lines(kafka_settings, topic, lines, keys=keys)
    silent_api = socket.create_server(("127.0.0.1", 0))  # accepts, never answers
    folder = tmp_path / "collected"
    process = collect_command(
        topic, folder, "--metadata-url", f"http://127.0.0.1:{silent_api.getsockname()[1]}",
        "--until-idle", "0", "--assign",
    )  # fmt: skip
    silent_api.settimeout(60)
    request, _ = silent_api.accept()  # the writer is inside its first batch

    process.kill()
    process.wait()

    with open(folder / ".lock", "w") as lock:  # held by the writer while it lives
        deadline = time.monotonic() + 30
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                assert time.monotonic() < deadline, "the writer outlived its collector"
                time.sleep(0.02)
    assert batches_of(folder) == 0
    request.close()
    silent_api.close()
