"""Issue 3: kill -9 the collector at three random points during a replay; after restarts the
tables equal those of an uninterrupted run."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import pandas as pd

from shrek.stream.collector import Collector
from shrek.stream.replay import WatchModel, replay

COLLECT = "from shrek.stream.cli import stream_commands; stream_commands()"


def _batches(folder) -> int:
    path = folder / "state.sqlite"
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            return db.execute("SELECT COUNT(*) FROM batches").fetchone()[0]
    except sqlite3.OperationalError:  # created but no table yet
        return 0


def _start_collector(kafka_settings, topic, folder, metadata_url) -> subprocess.Popen:
    env = {
        **os.environ,
        "SHREK_KAFKA_SESSION_TIMEOUT_MS": "2000",
        "PYTHONPATH": os.pathsep.join(sys.path),
    }
    command = [
        sys.executable, "-c", COLLECT, "collect",
        "--bootstrap-servers", kafka_settings.bootstrap_servers,
        "--topic", topic, "--out", str(folder), "--group-id", "crash",
        "--metadata-url", metadata_url, "--batch-size", "20", "--until-idle", "0",
        "--no-progress",
    ]  # fmt: skip
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_kill_9_three_times_loses_and_duplicates_nothing(
    kafka_settings, topic, metadata_server, small_dataset, tmp_path
):
    rng = random.Random(20260301)
    model = WatchModel(watch_fraction=0.4, runtime_minutes=15, seed=3)
    producer = threading.Thread(
        target=replay,
        args=(small_dataset, topic),
        kwargs={"settings": kafka_settings, "watch_model": model, "rate": 400.0,
                "show_progress": False},
    )  # fmt: skip
    producer.start()

    crashed = tmp_path / "crashed"
    kills = []
    for _ in range(3):
        process = _start_collector(kafka_settings, topic, crashed, metadata_server.url)
        target = _batches(crashed) + rng.randint(1, 6)
        deadline = time.monotonic() + 60
        while _batches(crashed) < target and process.poll() is None:
            assert time.monotonic() < deadline, "the collector made no progress"
            time.sleep(0.01)
        time.sleep(rng.uniform(0, 0.05))
        assert process.poll() is None, process.stderr.read().decode()
        process.send_signal(signal.SIGKILL)
        process.wait()
        kills.append(_batches(crashed))
    producer.join()

    with Collector(crashed, settings=kafka_settings, topic=topic, group_id="crash",
                   metadata_url=metadata_server.url) as collector:  # fmt: skip
        collector.run(stop_at_end=True, until_idle_seconds=None)
        after_crashes = collector.to_dataset()
        crashed_stats = collector.stats()
    with Collector(tmp_path / "clean", settings=kafka_settings, topic=topic, group_id="clean",
                   metadata_url=metadata_server.url, assign=True) as collector:  # fmt: skip
        collector.run(stop_at_end=True, until_idle_seconds=None)
        uninterrupted = collector.to_dataset()
        clean_stats = collector.stats()

    assert kills == sorted(kills) and kills[0] > 0
    assert crashed_stats.duplicates == clean_stats.duplicates == 0
    assert crashed_stats.accepted == clean_stats.accepted
    for name in ("ratings", "users", "movies", "watch_log"):
        pd.testing.assert_frame_equal(getattr(after_crashes, name), getattr(uninterrupted, name))
    assert after_crashes.version.hash == uninterrupted.version.hash
    assert after_crashes.version.source["offsets"] == uninterrupted.version.source["offsets"]
    assert len(uninterrupted.ratings) == len(small_dataset.ratings)
