"""A real Prometheus scrapes a real `bentoml serve` and Shrek's exporter; Shrek's metrics are
read back through Prometheus's HTTP API; promtool accepts the alert rules (issue 6)."""

from __future__ import annotations

import json
import re
import subprocess
import time

import pytest
import yaml

from shrek.monitoring.closed_loop import plan_turns, run_closed_loop
from shrek.monitoring.metrics import Monitor
from shrek.monitoring.online import join_outcomes, online_metrics, read_topic
from shrek.monitoring.prometheus import (
    ALERT_RULES,
    DASHBOARD,
    SCRAPE_CONFIG,
    PrometheusServer,
    check_rules,
    find_binary,
    scrape_config,
)
from shrek.stream.broker import ensure_topic
from shrek.stream.collector import Collector
from shrek.stream.replay import WatchModel

SMALL = {
    "als": {"factors": 8, "iterations": 5, "regularization": 0.1, "num_threads": 1},
    "lightfm": {"no_components": 8, "epochs": 5},
}
PROMQL_WORDS = {
    "sum", "by", "rate", "histogram_quantile", "max", "min", "avg", "le", "on", "and", "or",
    "without", "avg_over_time", "time", "group_left", "offset", "count",
}  # fmt: skip


def metric_names(exprs: list[str]) -> set[str]:
    """Metric names the PromQL expressions query."""
    names = set()
    for expr in exprs:
        expr = re.sub(r"\{[^}]*\}", "", expr)  # drop label matchers
        expr = re.sub(r"\[[^\]]*\]", "", expr)  # and range selectors
        expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", expr)  # and labels
        names |= set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr)) - PROMQL_WORDS
    return {name for name in names if not re.fullmatch(r"[0-9.e]+", name)}


def dashboard_metrics() -> set[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return metric_names(
        [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    )


def alert_metrics() -> set[str]:
    groups = yaml.safe_load(ALERT_RULES.read_text())["groups"]
    return metric_names([rule["expr"] for group in groups for rule in group["rules"]])


def test_promtool_accepts_the_alert_rules_and_their_unit_tests():
    assert "SUCCESS" in check_rules(ALERT_RULES)
    unit = subprocess.run(
        [
            str(find_binary("promtool")),
            "test",
            "rules",
            str(ALERT_RULES.parent / "alerts_test.yml"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert unit.returncode == 0, unit.stdout + unit.stderr
    config = subprocess.run(
        [str(find_binary("promtool")), "check", "config", str(SCRAPE_CONFIG)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert config.returncode == 0, config.stdout + config.stderr


def test_alert_rules_cover_the_required_conditions():
    text = ALERT_RULES.read_text()
    for alert in (
        "ShrekServiceDown",
        "ShrekHighP99Latency",
        "ShrekHighErrorRate",
        "ShrekWatchThroughDrop",
        "ShrekRatingDrift",
        "ShrekCollectorLag",
    ):
        assert f"alert: {alert}" in text


@pytest.fixture(scope="module")
def live_stack(broker, stack, tmp_path_factory):
    """Closed loop on a synthetic dataset through a canary service, collected and exported."""
    folder = tmp_path_factory.mktemp("prometheus-stack")
    dataset = stack.synthetic_dataset(seed=1)
    start = (
        dataset.ratings["timestamp"].min()
        + (dataset.ratings["timestamp"].max() - dataset.ratings["timestamp"].min()) * 0.6
    )
    training = dataset.ratings[dataset.ratings["timestamp"] < start]
    train_set = type(dataset).from_tables(
        ratings=training,
        users=dataset.users,
        movies=dataset.movies,
        watch_log=dataset.watch_log,
        source={"kind": "synthetic", "window": "training"},
    )
    exported = stack.export(stack.write_run(folder / "run", train_set, SMALL))
    topic = "prometheus-stack-events"
    ensure_topic(broker.settings(), topic, partitions=2)
    env = stack.canary_env(exported, broker=broker, topic=topic, share=0.5, candidate="lightfm")
    served = stack.start_service("bentos.canary.service:ShrekCanary", env, folder / "serve.log")
    try:
        turns = plan_turns(
            dataset.ratings, start=start, horizon="10D", watch_model=WatchModel(1.0, 5, seed=0)
        )
        stats = run_closed_loop(
            turns, service_url=served.url, settings=broker.settings(), topic=topic
        )
        assert served.get("/recommend/abc").status_code == 400
        log = wait_for_requests(broker, topic, stats.answered)
        with Collector(
            folder / "collected", settings=broker.settings(), topic=topic, assign=True
        ) as collector:
            collector.run(stop_at_end=True, until_idle_seconds=10)
        monitor = Monitor(
            broker.settings(),
            topic,
            reference=training,
            collector_folder=folder / "collected",
            window="1D",
        )
        monitor.refresh()
        port = monitor.serve(port=0)
        yield {"served": served, "monitor": monitor, "port": port, "log": log, "stats": stats}
        monitor.stop()
    finally:
        stack.stop_service(served)


def wait_for_requests(broker, topic: str, n: int, timeout: float = 30.0):
    """The topic's log once the service's request log delivered ``n`` request lines."""
    deadline = time.monotonic() + timeout
    while True:
        log = read_topic(broker.settings(), topic, timeout=10)
        if len(log.requests) >= n or time.monotonic() >= deadline:
            return log
        time.sleep(0.5)


@pytest.fixture(scope="module")
def prometheus(live_stack):
    targets = {
        "shrek-service": [live_stack["served"].url.removeprefix("http://")],
        "shrek-monitor": [f"127.0.0.1:{live_stack['port']}"],
    }
    with PrometheusServer(scrape_config(targets, interval="1s")) as server:
        server.wait_for('up{job="shrek-service"} == 1')
        server.wait_for('up{job="shrek-monitor"} == 1')
        server.wait_for("shrek_online_watch_through")
        yield server


def test_closed_loop_requests_reach_the_topic_with_their_variant(live_stack):
    log, stats = live_stack["log"], live_stack["stats"]

    assert stats.failed == 0 and stats.answered == stats.turns > 20
    assert len(log.requests) == stats.answered
    assert set(log.requests["variant"]) == {"stable", "candidate"}
    assert log.requests["model_version"].str.startswith("shrek-").all()


def test_shrek_metrics_read_back_through_prometheus_equal_the_online_evaluation(
    live_stack, prometheus
):
    log = live_stack["log"]
    expected = online_metrics(join_outcomes(log.requests, log.events, window="1D"))

    result = prometheus.query("shrek_online_watch_through")

    got = {
        (r["metric"]["variant"], r["metric"]["model_version"]): float(r["value"][1]) for r in result
    }
    want = {
        (row.variant, row.model_version): row.watch_through
        for row in expected.itertuples(index=False)
    }
    assert got == pytest.approx(want)
    requests = prometheus.query("sum(shrek_online_requests)")
    assert float(requests[0]["value"][1]) == len(log.requests)


def test_prometheus_scrapes_the_service_and_collector_metrics(live_stack, prometheus):
    answered = prometheus.wait_for("sum by (variant) (shrek_recommendations_total)")
    lag = prometheus.wait_for("shrek_collector_lag")
    accepted = prometheus.query('shrek_collector_events_total{outcome="accepted"}')

    assert {r["metric"]["variant"] for r in answered} == {"stable", "candidate"}
    assert sum(float(r["value"][1]) for r in answered) == live_stack["stats"].answered
    assert float(lag[0]["value"][1]) == 0
    assert float(accepted[0]["value"][1]) == live_stack["log"].n_lines
    assert prometheus.query('shrek_bad_requests_total{reason="user_id"}')


def test_prometheus_loaded_the_alert_rules(prometheus):
    groups = {group["name"] for group in prometheus.rules()}

    assert groups == {"shrek-service", "shrek-online", "shrek-data"}


def test_every_dashboard_panel_queries_a_metric_that_exists(prometheus):
    prometheus.wait_for("bentoml_service_request_duration_seconds_bucket")
    missing = sorted(name for name in dashboard_metrics() if not prometheus.series(name))

    assert dashboard_metrics() >= {"shrek_online_watch_through", "shrek_collector_lag"}
    assert missing == []


def test_every_alert_queries_a_metric_that_exists(prometheus):
    prometheus.wait_for("bentoml_service_request_total")
    missing = sorted(name for name in alert_metrics() if not prometheus.series(name))

    assert "shrek_drift_rating_psi" in alert_metrics()
    assert missing == []
