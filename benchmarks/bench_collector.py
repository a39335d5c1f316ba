"""Collector throughput beside a bare kafka-python consume loop on the same topic.

Run: ``python benchmarks/bench_collector.py [--events 200000]``. Starts the embedded broker
(or uses ``SHREK_KAFKA_BOOTSTRAP_SERVERS``), replays a synthetic history of rate and simulated
watch events, then reads the whole topic twice, each in a fresh child process with manual
partition assignment (no group join in the timing):

- bare: ``KafkaConsumer`` created, assigned, then ``poll`` counting records, nothing else;
- collector: :meth:`shrek.stream.collector.Collector.run` with the default batch size (its
  consumer created and assigned; dedup, parse, batched metadata lookups against a local
  metadata API, Parquet + SQLite commits in its writer process, offset commits), timed from
  the call until every batch is committed. Opening the folder and forking the writer process
  (in the constructor), and stopping it (``close``) are left out, as the bare loop has none.

Prints events/s of each, their ratio (target ≥ 0.8) and the peak RSS of each child, and of
the collector's writer process (``VmHWM`` in ``/proc``: the writer is started by
multiprocessing's forkserver, so it is no child of the collector's process).
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import resource
import tempfile
import time

import numpy as np
import pandas as pd

from shrek.data.dataset import Dataset
from shrek.data.schemas import empty_table
from shrek.stream.broker import EmbeddedBroker, KafkaSettings, ensure_topic
from shrek.stream.metadata_api import MetadataServer
from shrek.stream.replay import WatchModel, history_lines, produce_lines


def synthetic_dataset(n_ratings: int, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    n_users, n_movies = 900, 1600
    users = pd.DataFrame(
        {
            "user_id": np.arange(1, n_users + 1, dtype="int64"),
            "age": rng.integers(18, 70, n_users).astype("int64"),
            "gender": rng.choice(["M", "F"], n_users),
            "occupation": "writer",
            "zip": "00000",
        }
    )
    movies = pd.DataFrame(
        {
            "movie_id": [f"movie+{i}+1995" for i in range(n_movies)],
            "title": [f"Movie {i}" for i in range(n_movies)],
            "year": pd.array([1995] * n_movies, dtype="Int64"),
            "release_date": pd.to_datetime(["1995-01-01"] * n_movies),
            "genres": "Drama",
            "imdb_url": None,
        }
    )
    pairs = rng.choice(n_users * n_movies, n_ratings, replace=False)
    ratings = pd.DataFrame(
        {
            "user_id": (pairs // n_movies + 1).astype("int64"),
            "movie_id": movies["movie_id"].to_numpy()[pairs % n_movies],
            "rating": rng.integers(1, 6, n_ratings).astype("int64"),
            "timestamp": pd.to_datetime(880_000_000 + rng.integers(0, 10**7, n_ratings), unit="s"),
        }
    )
    return Dataset.from_tables(
        ratings=ratings, users=users, movies=movies, watch_log=empty_table("watch_log"),
        source={"kind": "benchmark"},
    )  # fmt: skip


def bare_loop(settings: KafkaSettings, topic: str, total: int) -> tuple[int, float]:
    from kafka import KafkaConsumer, TopicPartition

    started = time.perf_counter()
    consumer = KafkaConsumer(**settings.consumer_config("bench-bare"))
    consumer.assign([TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)])
    seen = 0
    while seen < total:
        for records in consumer.poll(timeout_ms=200, max_records=5000).values():
            seen += len(records)
    seconds = time.perf_counter() - started
    consumer.close()
    return seen, seconds


def collector_run(
    settings: KafkaSettings, topic: str, total: int, metadata_url: str | None
) -> tuple[int, float]:
    from shrek.stream.collector import Collector

    with tempfile.TemporaryDirectory() as folder, Collector(
        folder, settings=settings, topic=topic, group_id=f"bench-{time.time()}", assign=True,
        metadata_url=metadata_url,
    ) as collector:  # fmt: skip
        started = time.perf_counter()
        stats = collector.run(stop_at_end=True, until_idle_seconds=None)
        seconds = time.perf_counter() - started
        writer_mb = _peak_rss_mb(collector._process._process.pid)
    return stats.accepted, seconds, writer_mb


def _peak_rss_mb(pid: int) -> float:
    """Peak resident memory of process ``pid`` (Linux ``/proc``; NaN elsewhere)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _child(name: str, args: tuple, queue: multiprocessing.Queue) -> None:
    target = {"bare": bare_loop, "collector": collector_run}[name]
    count, seconds, *writer = target(*args)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put((count, seconds, peak_mb, writer[0] if writer else float("nan")))


def measure(name: str, *args: object) -> tuple[int, float, float, float]:
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    process = context.Process(target=_child, args=(name, args, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000, help="about this many events")
    args = parser.parse_args()

    n_ratings = max(1000, args.events // 16)
    dataset = synthetic_dataset(n_ratings)
    lines, keys, n_rates, n_watches = history_lines(
        dataset, watch_model=WatchModel(watch_fraction=0.3, runtime_minutes=100, seed=0)
    )
    settings = KafkaSettings.from_env()
    with contextlib.ExitStack() as stack:
        if not settings.configured:
            settings = stack.enter_context(EmbeddedBroker()).settings(settings)
        api = stack.enter_context(MetadataServer(dataset))
        topic = f"bench-{int(time.time())}"
        ensure_topic(settings, topic, partitions=3)
        started = time.perf_counter()
        produce_lines(settings, topic, lines, keys=keys)
        produce_s = time.perf_counter() - started
        print(f"produced {len(lines):,} events ({n_rates:,} rate, {n_watches:,} simulated watch) "
              f"in {produce_s:.1f} s ({len(lines) / produce_s:,.0f}/s)")  # fmt: skip

        results = {
            "bare": measure("bare", settings, topic, len(lines)),
            "collector": measure("collector", settings, topic, len(lines), api.url),
            "collector, no metadata API": measure("collector", settings, topic, len(lines), None),
        }

    print(f"{'reader':<27} {'events':>9} {'seconds':>8} {'events/s':>10} {'peak RSS MB':>12} "
          f"{'writer process MB':>18}")  # fmt: skip
    for name, (count, seconds, peak, writer) in results.items():
        writer_text = f"{writer:>18.0f}" if name != "bare" else f"{'-':>18}"
        print(f"{name:<27} {count:>9,} {seconds:>8.2f} {count / seconds:>10,.0f} {peak:>12.0f} "
              f"{writer_text}")  # fmt: skip
    bare_rate = results["bare"][0] / results["bare"][1]
    for name in ("collector", "collector, no metadata API"):
        count, seconds, _, _ = results[name]
        print(f"{name} / bare = {count / seconds / bare_rate:.2f} (target ≥ 0.8)")


if __name__ == "__main__":
    main()
