"""Monitoring: online evaluation, A/B analysis, drift, Prometheus metrics, closed-loop replay.

:mod:`shrek.monitoring.online` joins recommendation requests with later watch events read by
:mod:`shrek.monitoring.logs` (a topic or a log file);
:mod:`shrek.monitoring.ab` compares two variants; :mod:`shrek.monitoring.drift` compares the
latest collection window with the training window; :mod:`shrek.monitoring.metrics` serves
Shrek's Prometheus metrics; :mod:`shrek.monitoring.closed_loop` simulates traffic against a
running service; :mod:`shrek.monitoring.prometheus` runs a local Prometheus. Configuration
files (scrape config, alert rules, Grafana dashboard) are in ``monitoring/``.
"""

from shrek.monitoring.ab import ABReport, ab_report, ab_test, required_sample_size, srm_test
from shrek.monitoring.drift import DriftReport, drift_report, latest_window, psi
from shrek.monitoring.logs import load_log, read_topic
from shrek.monitoring.online import (
    OnlineLog,
    evaluate_online,
    join_outcomes,
    online_metrics,
    parse_log,
)

__all__ = [
    "ABReport",
    "DriftReport",
    "OnlineLog",
    "ab_report",
    "ab_test",
    "drift_report",
    "evaluate_online",
    "join_outcomes",
    "latest_window",
    "load_log",
    "online_metrics",
    "parse_log",
    "psi",
    "read_topic",
    "required_sample_size",
    "srm_test",
]
