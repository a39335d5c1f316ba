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


# --- BentoML's HTTP metrics by route template ---------------------------------------------------

ROUTE_TEMPLATES: tuple[tuple[str, str], ...] = (("/recommend/", "/recommend/{user_id}"),)


def endpoint_label(path: str) -> str:
    """The ``endpoint`` label of a request path: the route template for templated routes.

    >>> endpoint_label("/recommend/42")
    '/recommend/{user_id}'
    """
    for prefix, template in ROUTE_TEMPLATES:
        if path.startswith(prefix):
            return template
    return path


@cache
def label_endpoints_by_route() -> None:
    """Make BentoML label its HTTP metrics by route template instead of the raw path.

    BentoML's ``RunnerTrafficMetricsMiddleware`` labels ``bentoml_service_request_*`` by
    ``scope["path"]``, so ``GET /recommend/<user_id>`` would create a series per user and the
    ``/metrics`` output (and Prometheus's memory) would grow without bound. This swaps in a
    subclass that shows it the template (``/recommend/{user_id}``) and gives the raw path back to
    the app behind it. Called when the service module is imported, before BentoML builds the
    app; idempotent.

    Notes
    -----
    Relies on BentoML importing the middleware class from
    ``bentoml._internal.server.http.instruments`` when it builds the app (BentoML 1.4);
    ``tests/serve`` check the series count over HTTP so an upgrade that breaks it fails there.
    """
    from bentoml._internal.server.http import instruments

    base = instruments.RunnerTrafficMetricsMiddleware

    class RouteTemplateMetricsMiddleware(base):
        def __init__(self, app: Any, **options: Any) -> None:
            super().__init__(_RestoreRawPath(app), **options)

        async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
            path = scope.get("path", "")
            label = endpoint_label(path)
            if label != path:
                scope = {**scope, "path": label, _RAW_PATH: path}
            await super().__call__(scope, receive, send)

    instruments.RunnerTrafficMetricsMiddleware = RouteTemplateMetricsMiddleware


_RAW_PATH = "shrek.raw_path"


class _RestoreRawPath:
    """ASGI wrapper: puts back the raw path the metrics middleware was shown a template for."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if _RAW_PATH in scope:
            scope = {**scope, "path": scope[_RAW_PATH]}
            del scope[_RAW_PATH]
        await self.app(scope, receive, send)
