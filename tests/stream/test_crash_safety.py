"""Issue 3: kill -9 the collector at three random points during a replay; after restarts the
tables equal those of an uninterrupted run."""

from __future__ import annotations

import random
import threading
import time

import pandas as pd

from shrek.stream.collector import Collector
from shrek.stream.replay import WatchModel, history_lines, produce_lines


class PacedReplay(threading.Thread):
    """Produce ``lines`` at ``rate`` per second until :meth:`release`, then as fast as
    possible; the last ``held`` lines wait for the release, so that the replay is still
    running whenever the test needs it to, however slow the machine."""

    def __init__(self, settings, topic, lines, keys, *, rate: float, held: int) -> None:
        super().__init__(name="paced-replay")
        self.settings, self.topic, self.lines, self.keys = settings, topic, lines, keys
        self.rate, self.gate_at = rate, len(lines) - held
        self.produced = 0
        self._released = threading.Event()

    def release(self) -> None:
        self._released.set()

    def _paced(self):
        started = time.monotonic()
        for i, line in enumerate(self.lines):
            if i == self.gate_at:
                self._released.wait(timeout=120)
            if not self._released.is_set():
                time.sleep(max(0.0, started + i / self.rate - time.monotonic()))
            self.produced = i
            yield line

    def run(self) -> None:
        produce_lines(self.settings, self.topic, self._paced(), keys=self.keys)
        self.produced = len(self.lines)


def test_kill_9_three_times_loses_and_duplicates_nothing(
    kafka_settings, topic, metadata_server, small_dataset, collect_command, batches_of, tmp_path
):
    rng = random.Random(20260301)
    model = WatchModel(watch_fraction=0.4, runtime_minutes=15, seed=3)
    lines, keys, _, _ = history_lines(small_dataset, watch_model=model)
    replay = PacedReplay(kafka_settings, topic, lines, keys, rate=30.0, held=len(lines) // 10)
    replay.start()

    crashed = tmp_path / "crashed"
    kills = []
    try:
        for _ in range(3):
            process = collect_command(
                topic, crashed, "--group-id", "crash", "--metadata-url", metadata_server.url,
                "--batch-size", "20", "--until-idle", "0",
            )  # fmt: skip
            target = batches_of(crashed) + rng.randint(1, 6)
            deadline = time.monotonic() + 60
            while batches_of(crashed) < target and process.poll() is None:
                assert time.monotonic() < deadline, "the collector made no progress"
                time.sleep(0.01)
            time.sleep(rng.uniform(0, 0.05))
            assert process.poll() is None, process.stderr.read().decode()
            assert replay.is_alive() and replay.produced < len(lines)  # the replay runs on
            process.kill()
            process.wait()
            kills.append((batches_of(crashed), replay.produced))
    finally:
        replay.release()
        replay.join()

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

    batches = [b for b, _ in kills]
    assert batches == sorted(batches) and batches[0] > 0
    assert all(produced < len(lines) for _, produced in kills)
    assert crashed_stats.duplicates == clean_stats.duplicates == 0
    assert crashed_stats.accepted == clean_stats.accepted == len(lines)
    for name in ("ratings", "users", "movies", "watch_log"):
        pd.testing.assert_frame_equal(getattr(after_crashes, name), getattr(uninterrupted, name))
    assert after_crashes.version.hash == uninterrupted.version.hash
    assert after_crashes.version.source["offsets"] == uninterrupted.version.source["offsets"]
    keys = ["user_id", "movie_id"]
    pd.testing.assert_frame_equal(
        uninterrupted.ratings.sort_values(keys, ignore_index=True),
        small_dataset.ratings.sort_values(keys, ignore_index=True),
    )
