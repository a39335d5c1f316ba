"""A real Prometheus scrapes a real `bentoml serve` and Shrek's exporter; Shrek's metrics are
read back through Prometheus's HTTP API, the collector's lag and counters change as it falls
behind and catches up; every dashboard panel and alert queries metrics and labels that exist;
promtool accepts the alert rules (issue 6)."""

from __future__ import annotations

import json
import re
import subprocess
import time
from datetime import UTC, datetime, timedelta

import pytest
import yaml
from kafka import KafkaProducer

from shrek.monitoring.closed_loop import plan_turns, run_closed_loop
from shrek.monitoring.logs import read_topic
from shrek.monitoring.metrics import Monitor
from shrek.monitoring.online import join_outcomes, online_metrics
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
    "without", "avg_over_time", "time", "group_left", "offset", "count", "vector", "increase",
    "ignoring",
}  # fmt: skip
LATE = 7  # lines produced after the collector stopped: its lag
SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}")
MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"')
GROUPING = re.compile(r"\b(?:by|on|without|ignoring)\s*\(([^)]*)\)")


def metric_names(exprs: list[str]) -> set[str]:
    """Metric names the PromQL expressions query."""
    names = set()
    for expr in exprs:
        expr = re.sub(r"\{[^}]*\}", "", expr)  # drop label matchers
        expr = re.sub(r"\[[^\]]*\]", "", expr)  # and range selectors
        expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", expr)  # and labels
        names |= set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr)) - PROMQL_WORDS
    return {name for name in names if not re.fullmatch(r"[0-9.e]+", name)}


def dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]


def alert_exprs() -> list[str]:
    groups = yaml.safe_load(ALERT_RULES.read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def dashboard_metrics() -> set[str]:
    return metric_names(dashboard_exprs())


def alert_metrics() -> set[str]:
    return metric_names(alert_exprs())


def label_problems(prometheus, exprs: list[str]) -> list[str]:
    """Label matchers and grouping labels of ``exprs`` that no stored series carries.

    A matcher's label must exist on its metric; an ``=`` matcher's value must be one it has
    (a regex may match nothing yet: no 5xx answers); a ``by``/``on`` label must exist on one
    of the expression's metrics.
    """
    problems = []
    for expr in exprs:
        labels_of = {name: prometheus.series(name) for name in metric_names([expr])}
        for name, matchers in SELECTOR.findall(expr):
            for label, operator, value in MATCHER.findall(matchers):
                values = {series.get(label) for series in labels_of[name]} - {None}
                if not values:
                    problems.append(f"{name} has no label {label!r}: {expr}")
                elif operator == "=" and value not in values:
                    problems.append(f"{name} has no {label}={value!r} (only {values}): {expr}")
        present = {label for found in labels_of.values() for series in found for label in series}
        for grouping in GROUPING.findall(expr):
            for label in filter(None, (part.strip() for part in grouping.split(","))):
                if label not in present:
                    problems.append(f"no metric of the expression has label {label!r}: {expr}")
    return problems


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
        collect(broker, folder / "collected", topic)
        produce_late_lines(broker, topic)
        monitor = Monitor(
            broker.settings(),
            topic,
            reference=training,
            collector_folder=folder / "collected",
            window="1D",
        )
        monitor.refresh()
        port = monitor.serve(port=0)
        yield {
            "served": served,
            "monitor": monitor,
            "port": port,
            "log": log,
            "stats": stats,
            "topic": topic,
            "collected": folder / "collected",
        }
        monitor.stop()
    finally:
        stack.stop_service(served)


def collect(broker, folder, topic: str) -> None:
    """Run the collector until the end of the topic, then stop it."""
    with Collector(folder, settings=broker.settings(), topic=topic, assign=True) as collector:
        collector.run(stop_at_end=True, until_idle_seconds=10)


def produce_late_lines(broker, topic: str) -> None:
    """``LATE`` watch events after the collector stopped: the collector is behind."""
    producer = KafkaProducer(**broker.settings().producer_config())
    now = datetime.now(UTC).replace(tzinfo=None)
    for minute in range(LATE):
        stamp = (now + timedelta(minutes=minute)).isoformat(timespec="milliseconds")
        producer.send(topic, value=f"{stamp},424242,GET /data/m/late+1/{minute}.mpg".encode())
    producer.flush()
    producer.close()


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
    clock = max(log.requests["timestamp"].max(), log.events["timestamp"].max())
    joined = join_outcomes(log.requests, log.events, window="1D", observed_until=clock)
    expected = online_metrics(joined)

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
    assert float(requests[0]["value"][1]) == len(joined) == len(log.requests)
    completed = prometheus.query("sum(shrek_online_completed_requests_total)")
    hits = prometheus.query("sum(shrek_online_hits_total)")
    assert float(completed[0]["value"][1]) == len(joined)
    assert float(hits[0]["value"][1]) == joined["hit"].sum()
    personalization = prometheus.query("shrek_online_personalization")
    assert {tuple(sorted(r["metric"])) for r in personalization} == {
        ("__name__", "instance", "job", "model_version", "variant")
    }


def test_prometheus_scrapes_the_service_and_sees_the_collector_fall_behind_and_catch_up(
    live_stack, prometheus, broker
):
    """Regression (issue 6): the collector had finished before the scrape, so a lag of 0
    proved nothing. Here it is ``LATE`` records behind, then catches up."""
    answered = prometheus.wait_for("sum by (variant) (shrek_recommendations_total)")
    behind = prometheus.wait_for("shrek_collector_lag")
    accepted = prometheus.query('shrek_collector_events_total{outcome="accepted"}')

    assert {r["metric"]["variant"] for r in answered} == {"stable", "candidate"}
    assert sum(float(r["value"][1]) for r in answered) == live_stack["stats"].answered
    assert float(behind[0]["value"][1]) == LATE
    assert float(accepted[0]["value"][1]) == live_stack["log"].n_lines
    assert prometheus.query('shrek_bad_requests_total{reason="user_id"}')

    collect(broker, live_stack["collected"], live_stack["topic"])
    live_stack["monitor"].refresh()

    total = live_stack["log"].n_lines + LATE
    assert prometheus.wait_for("shrek_collector_lag == 0")
    assert prometheus.wait_for(f'shrek_collector_events_total{{outcome="accepted"}} == {total}')
    grew = prometheus.wait_for('increase(shrek_collector_events_total{outcome="accepted"}[1m])')
    assert float(grew[0]["value"][1]) > 0


def test_prometheus_loaded_the_alert_rules(prometheus):
    groups = {group["name"] for group in prometheus.rules()}

    assert groups == {"shrek-service", "shrek-online", "shrek-data"}


def test_every_dashboard_panel_queries_metrics_and_labels_that_exist(prometheus):
    prometheus.wait_for("bentoml_service_request_duration_seconds_bucket")
    missing = sorted(name for name in dashboard_metrics() if not prometheus.series(name))

    assert dashboard_metrics() >= {"shrek_online_hits_total", "shrek_collector_lag"}
    assert missing == []
    assert label_problems(prometheus, dashboard_exprs()) == []


def test_every_alert_queries_metrics_and_labels_that_exist(prometheus):
    prometheus.wait_for("bentoml_service_request_total")
    prometheus.wait_for("shrek:online_watch_through:ratio_rate1h")  # recorded by the rules
    missing = sorted(name for name in alert_metrics() if not prometheus.series(name))

    assert "shrek_drift_rating_psi" in alert_metrics()
    assert missing == []
    assert label_problems(prometheus, alert_exprs()) == []


def test_the_error_ratio_is_zero_not_empty_without_5xx(live_stack, prometheus):
    """Regression (issue 6): the error-rate expression returned no data without a 5xx."""
    for _ in range(30):  # answered 400, not logged to the topic: traffic without any 5xx
        assert live_stack["served"].get("/recommend/abc").status_code == 400
        time.sleep(0.1)

    ratio = prometheus.wait_for("shrek:request_error_ratio:rate5m == 0")

    assert {r["metric"]["service_name"] for r in ratio} == {"shrek-canary"}
