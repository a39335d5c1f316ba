"""Shrek's exporter against a real broker and a real collector folder: the served gauges equal
the online metrics of the hand-made log, and the collector's counters and lag."""

from __future__ import annotations

import pandas as pd
import pytest
import requests
from kafka import KafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from shrek.monitoring.metrics import Monitor, read_collector_state
from shrek.stream.broker import ensure_topic
from shrek.stream.collector import Collector


def produce(settings, topic: str, lines: list[str]) -> None:
    """Send lines; a `` | k=v`` suffix becomes the record's headers, as the service does."""
    producer = KafkaProducer(**settings.producer_config())
    for text in lines:
        line, _, suffix = text.partition(" | ")
        headers = [(k, v.encode()) for k, v in (item.split("=", 1) for item in suffix.split())]
        producer.send(topic, value=line.encode(), key=None, headers=headers)
    producer.flush()
    producer.close()


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.fixture
def topic(broker):
    ensure_topic(broker.settings(), "monitor-hand-log", partitions=2)
    return "monitor-hand-log"


def test_exporter_serves_online_collector_and_drift_metrics(
    broker, topic, tmp_path, hand_log_lines
):
    settings = broker.settings()
    produce(settings, topic, hand_log_lines)
    with Collector(tmp_path / "collected", settings=settings, topic=topic, assign=True) as c:
        c.run(stop_at_end=True, until_idle_seconds=10)
    late = [f"2026-03-01T21:0{i}:00,9,GET /data/m/z+1/{i}.mpg" for i in range(5)]
    produce(settings, topic, late)
    reference = pd.DataFrame(
        {
            "user_id": [1, 2, 3],
            "movie_id": ["f+6", "a+1", "b+2"],
            "rating": [5, 4, 3],
            "timestamp": pd.to_datetime(["2026-01-01"] * 3),
        }
    )

    monitor = Monitor(settings, topic, reference=reference, collector_folder=tmp_path / "collected")
    try:
        port = monitor.serve(port=0)
        monitor.refresh()
        samples = scrape(port)
    finally:
        monitor.stop()

    def value(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted(labels.items())))]

    stable = {"variant": "stable", "model_version": "als:1"}
    candidate = {"variant": "candidate", "model_version": "lfm:1"}
    assert value("shrek_online_watch_through", **stable) == 1.0
    assert value("shrek_online_requests", **stable) == 3
    assert value("shrek_online_hit_position", **stable) == pytest.approx(8 / 3)
    assert value("shrek_online_watch_through", **candidate) == 0.0
    assert value("shrek_online_personalization", **stable) == 1.0  # issue 6: per model version
    assert value("shrek_online_completed_requests_total", **stable) == 3
    assert value("shrek_online_hits_total", **stable) == 3
    assert value("shrek_online_completed_requests_total", **candidate) == 2  # 1 answered 500
    assert value("shrek_online_hits_total", **candidate) == 0
    assert value("shrek_collector_events_total", topic=topic, outcome="accepted") == 16
    assert value("shrek_collector_events_total", topic=topic, outcome="quarantined") == 1
    assert value("shrek_collector_quarantine_rate", topic=topic) == pytest.approx(1 / 17)
    assert value("shrek_collector_lag", topic=topic) == 5
    assert value("shrek_stream_quarantine_rate") == pytest.approx(1 / 22)
    assert value("shrek_monitor_records_total") == 22
    assert value("shrek_drift_new_users_share") == 1.0  # user 4 rated, unknown in training
    assert value("shrek_drift_new_movies_share") == 0.0
    assert ("shrek_drift_rating_psi", ()) in samples


def test_collector_state_of_a_missing_folder_is_none(tmp_path):
    assert read_collector_state(tmp_path, topic="t") is None


def test_the_counters_count_each_request_once_when_its_window_has_ended(broker, tmp_path):
    """Regression (issue 6): watch-through counted still-open windows as misses."""
    topic = "monitor-counters"
    ensure_topic(broker.settings(), topic, partitions=1)

    def request(stamp: str, user: int) -> str:
        return (
            f"2026-03-01T{stamp}.000,{user},recommendation request api:8082, status 200, "
            "result: a+1, b+2, 40 ms | variant=stable model_version=als:1"
        )

    produce(broker.settings(), topic, [request("10:00:00", 1), request("10:30:00", 2)])
    monitor = Monitor(broker.settings(), topic, window="1h")
    try:
        port = monitor.serve(port=0)
        open_windows = monitor.refresh()
        produce(broker.settings(), topic, ["2026-03-01T10:50:00,2,GET /data/m/b+2/0.mpg"])
        monitor.refresh()
        produce(broker.settings(), topic, ["2026-03-01T11:40:00,3,GET /data/m/z+9/0.mpg"])
        monitor.refresh()
        monitor.refresh()  # nothing new: the counters stay
        samples = scrape(port)
    finally:
        monitor.stop()

    labels = (("model_version", "als:1"), ("variant", "stable"))
    assert open_windows.online is None and open_windows.completed == {}
    assert samples[("shrek_online_completed_requests_total", labels)] == 2
    assert samples[("shrek_online_hits_total", labels)] == 1
    assert samples[("shrek_online_watch_through", labels)] == 0.5
