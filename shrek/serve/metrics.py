"""Shrek's Prometheus metrics, served by BentoML's ``/metrics`` beside its own.

=====================================  =============================================================
metric                                 meaning
=====================================  =============================================================
``shrek_recommendations_total``        answers, by ``variant``, ``model_version``, ``cold_start``
``shrek_cold_start_share``             share of this worker's answers that were cold starts
``shrek_bad_requests_total``           400 answers, by ``reason`` (``user_id``, ``n``)
``shrek_recommend_seconds``            time in the model per answer, by ``variant``
``shrek_canary_share``                 the candidate's configured share of users
``shrek_request_log_dropped_total``    request-log lines that never reached Kafka
=====================================  =============================================================

The cold-start share across workers is
``sum(rate(shrek_recommendations_total{cold_start!="none"}[5m])) /
sum(rate(shrek_recommendations_total[5m]))``.

Notes
-----
BentoML runs ``prometheus_client`` in multiprocess mode and sets its directory when a worker
starts, so the metrics are created when the service is, never at import time.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import cache
from typing import Any


@dataclass
class ServiceMetrics:
    recommendations: Any
    cold_start_share: Any
    bad_requests: Any
    recommend_seconds: Any
    canary_share: Any
    log_dropped: Any

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._answers = 0
        self._cold = 0

    def answered(
        self, *, variant: str, model_version: str, cold_start: str, seconds: float
    ) -> None:
        """Count one answer."""
        self.recommendations.labels(variant, model_version, cold_start).inc()
        self.recommend_seconds.labels(variant).observe(seconds)
        with self._lock:
            self._answers += 1
            self._cold += cold_start != "none"
            self.cold_start_share.set(self._cold / self._answers)


@cache
def service_metrics() -> ServiceMetrics:
    """The process's metrics, created once."""
    from prometheus_client import Counter, Gauge, Histogram

    return ServiceMetrics(
        recommendations=Counter(
            "shrek_recommendations",
            "Recommendation answers by variant, model version and cold start kind.",
            ["variant", "model_version", "cold_start"],
        ),
        cold_start_share=Gauge(
            "shrek_cold_start_share",
            "Share of this worker's answers that were cold starts.",
            multiprocess_mode="mostrecent",
        ),
        bad_requests=Counter(
            "shrek_bad_requests", "Requests answered 400, by the bad field.", ["reason"]
        ),
        recommend_seconds=Histogram(
            "shrek_recommend_seconds",
            "Seconds spent in the model per answer.",
            ["variant"],
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
        ),
        canary_share=Gauge(
            "shrek_canary_share",
            "The candidate's configured share of users.",
            multiprocess_mode="mostrecent",
        ),
        log_dropped=Counter(
            "shrek_request_log_dropped", "Request-log lines that never reached Kafka."
        ),
    )
