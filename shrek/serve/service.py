"""What every Shrek bento serves; the entry modules in ``bentos/`` only name their models.

Routes
------
``GET /recommend/<user_id>``
    ``text/plain``: up to 20 movie ids, comma-separated, best first (the production format).
``POST /recommendations``
    JSON ``{"user_id": "42", "n": 20}`` -> ids, scores, variant, cold start and provenance.
``GET|POST /admin/canary``
    The canary split; needs ``Authorization: Bearer $SHREK_ADMIN_TOKEN`` (canary bento only).
``/livez``, ``/readyz``, ``/metrics``
    BentoML's, with Shrek's metrics (:mod:`shrek.serve.metrics`) in ``/metrics``.

Every response carries ``X-Shrek-Service`` and the stable (and candidate) model versions;
every answer also ``X-Shrek-Variant``, ``X-Shrek-Model-Version``, ``X-Shrek-Data-Version``,
``X-Shrek-Run-Id``, ``X-Shrek-Code-Version`` and ``X-Shrek-Cold-Start``.

Environment
-----------
``SHREK_STABLE_MODEL``, ``SHREK_CANDIDATE_MODEL``
    Model tags (default ``shrek-als:latest`` and, in the canary bento, ``shrek-lightfm:latest``).
``SHREK_ROUTING_FILE``
    The watched JSON file naming the versions to serve (:mod:`shrek.serve.routing`); when it
    exists it wins over the two variables above, and a change is loaded and swapped in without a
    restart. ``SHREK_ROUTING_POLL_SECONDS`` sets how often it is checked (default 1).
``SHREK_CANARY_CONFIG``
    The watched YAML file of the split (``share``, ``salt``); ``SHREK_CANARY_SHARE`` and
    ``SHREK_CANARY_SALT`` give the split while it does not exist.
``SHREK_ADMIN_TOKEN``
    Enables the admin endpoint.
``SHREK_KAFKA_*``, ``SHREK_REQUEST_LOG_TOPIC``
    Kafka for the request log (:class:`shrek.stream.broker.KafkaSettings`; topic
    ``shrek-events``); without servers only the service's own log gets the lines.
``SHREK_METADATA_URL``
    The metadata API, asked for unknown users' metadata (LightFM cold start).
``SHREK_SERVER_NAME``
    The host named in request-log lines (default: the machine's host name).
``SHREK_SERVE_WORKERS``
    Worker processes (default 2). Each loads the models and polls the watched files itself, so
    a change through the admin call reaches the other workers at their next poll (about 1 s).
"""

from __future__ import annotations

import gc
import hmac
import json
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import bentoml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from threadpoolctl import threadpool_limits

from shrek.serve.metrics import label_endpoints_by_route
from shrek.serve.model import N_RECOMMENDATIONS, Answer, ServedModel, check_n, parse_user_id

logger = logging.getLogger(__name__)

# Before BentoML builds the app: one `endpoint` label per route, not one per user (issue 5).
label_endpoints_by_route()

SERVICE_CONFIG: dict[str, Any] = {
    # Two processes on the 2-core target take the bursts of a fixed-rate load in parallel:
    # p99 48 ms -> 27-31 ms at 100 req/s (benchmarks/bench_service.py), for ~230 MiB more RSS.
    "workers": int(os.environ.get("SHREK_SERVE_WORKERS") or 2),
    "traffic": {"timeout": 10},
    # One log line per request costs more than the answer; the request log (Kafka) has them.
    "logging": {"access": {"enabled": False}},
}


def model_ref(variable: str, default: str) -> bentoml.models.BentoModel:
    """The store model named by environment ``variable`` (else ``default``), for a service
    class attribute; ``bentoml build`` packs it into the bento."""
    return bentoml.models.BentoModel(os.environ.get(variable) or default)


class RecommendationService:
    """The shared body of Shrek's services: routing, answering, provenance, logging.

    Subclasses are decorated with ``@bentoml.service`` and set ``stable_model`` (and
    ``candidate_model`` for a canary) to :func:`model_ref` values.
    """

    stable_model: Any = None
    candidate_model: Any = None

    def __init__(self) -> None:
        from shrek.serve.canary import CanaryConfig
        from shrek.serve.metrics import service_metrics
        from shrek.serve.request_log import DEFAULT_TOPIC, RequestLog
        from shrek.serve.routing import RoutingWatcher
        from shrek.stream.broker import KafkaSettings

        # One answer is a few small matrix products: BLAS threads only contend with each other
        # and with the event loop (measured: p99 209 ms -> see benchmarks/bench_service.py).
        threadpool_limits(1)
        self.user_lookup = _metadata_lookup(os.environ.get("SHREK_METADATA_URL"))
        self.default_split = CanaryConfig(
            share=float(os.environ.get("SHREK_CANARY_SHARE") or 0.0),
            salt=os.environ.get("SHREK_CANARY_SALT") or "shrek",
        )
        self.canary_path = os.environ.get("SHREK_CANARY_CONFIG") or None
        self._switch_lock = threading.Lock()
        self.state: ServingState | None = None
        self.routing_watcher = None
        routing_file = os.environ.get("SHREK_ROUTING_FILE")
        if routing_file:
            poll = float(os.environ.get("SHREK_ROUTING_POLL_SECONDS") or 1.0)
            self.routing_watcher = RoutingWatcher(routing_file, self.switch, poll_seconds=poll)
            self.routing_watcher.check()
        if self.state is None:  # no routing file (yet): the models the service was built with
            variants = {"stable": ServedModel(self.stable_model.path, user_lookup=self.user_lookup)}
            if self.candidate_model is not None:
                variants["candidate"] = ServedModel(
                    self.candidate_model.path, user_lookup=self.user_lookup
                )
            self.state = self._state(variants, self.canary_path)
        if self.routing_watcher is not None:
            self.routing_watcher.start()

        self.admin_token = os.environ.get("SHREK_ADMIN_TOKEN") or None
        self.host = os.environ.get("SHREK_SERVER_NAME") or socket.gethostname()
        self.metrics = service_metrics()
        self.request_log = RequestLog(
            KafkaSettings.from_env(),
            topic=os.environ.get("SHREK_REQUEST_LOG_TOPIC") or DEFAULT_TOPIC,
            on_drop=self.metrics.log_dropped.inc,
        )
        # The models are long-lived: keep the collector from walking them in every full
        # collection (shortens the pauses that make the latency tail).
        gc.freeze()
        logger.info("serving %s", self.state.versions)

    @property
    def variants(self) -> dict[str, ServedModel]:
        return self.state.variants

    @property
    def router(self) -> Any:
        return self.state.router

    @property
    def service_headers(self) -> dict[str, str]:
        return self.state.headers

    def switch(self, routing: Any) -> None:
        """Serve the versions ``routing`` (:class:`shrek.serve.routing.Routing`) names.

        Versions not loaded yet come from the BentoML store; the new pair replaces the old one
        in one assignment, so a request sees either the old pair or the new one, never a mix.
        """
        with self._switch_lock:
            current = self.state
            loaded = {
                served.model_version: served
                for served in (current.variants.values() if current is not None else ())
            }
            variants = {"stable": self._load(routing.stable, loaded)}
            if routing.candidate:
                variants["candidate"] = self._load(routing.candidate, loaded)
            canary_path = routing.canary_config
            if canary_path is None:
                canary_path = self.canary_path if current is None else current.canary_path
            state = self._state(variants, canary_path)
            if current is not None and state.versions != current.versions:
                logger.info("routing changed: now serving %s", state.versions)
            self.state = state

    def _load(self, tag: str, loaded: dict[str, ServedModel]) -> ServedModel:
        model = bentoml.models.get(tag)
        return loaded.get(str(model.tag)) or ServedModel(model.path, user_lookup=self.user_lookup)

    def _state(self, variants: dict[str, ServedModel], canary_path: str | None) -> ServingState:
        from shrek.serve.canary import CanaryRouter

        router = None
        if "candidate" in variants:
            current = self.state.router if self.state is not None else None
            same_file = current is not None and str(current.path or "") == str(canary_path or "")
            router = current if same_file else CanaryRouter(canary_path, default=self.default_split)
        headers = {
            "X-Shrek-Service": type(self).__name__,
            "X-Shrek-Stable-Model": variants["stable"].model_version,
        }
        if "candidate" in variants:
            headers["X-Shrek-Candidate-Model"] = variants["candidate"].model_version
        return ServingState(variants, router, headers, canary_path)

    def route(self, user_id: int, state: ServingState | None = None) -> str:
        """The variant that answers ``user_id``."""
        router = (state or self.state).router
        if router is None:
            return "stable"
        config = router.config
        self.metrics.canary_share.set(config.share)
        return config.variant(user_id)

    def answer(self, raw_user_id: Any, *, n: int = N_RECOMMENDATIONS, port: int = 0) -> dict:
        """Answer one request: route, recommend, count and log it.

        Returns
        -------
        dict
            ``user_id``, ``variant``, ``answer`` (:class:`Answer`), ``headers`` (provenance).

        Raises
        ------
        ValueError
            For a malformed user id or ``n`` (the caller answers 400).
        """
        started = time.perf_counter()
        try:
            user_id = parse_user_id(raw_user_id)
        except ValueError:
            self.metrics.bad_requests.labels("user_id").inc()
            raise
        try:
            n = check_n(n)
        except ValueError:
            self.metrics.bad_requests.labels("n").inc()
            raise

        state = self.state  # one snapshot per request: a routing switch never mixes pairs
        variant = self.route(user_id, state)
        served = state.variants[variant]
        in_model = time.perf_counter()
        answer = served.recommend(user_id, N=n)
        model_seconds = time.perf_counter() - in_model

        provenance = self._provenance(served, variant, answer)
        self.metrics.answered(
            variant=variant,
            model_version=served.model_version,
            cold_start=answer.cold_start,
            seconds=model_seconds,
        )
        latency_ms = (time.perf_counter() - started) * 1000
        self._log(answer, provenance, port=port, latency_ms=latency_ms)
        headers = {f"X-Shrek-{k.replace('_', '-').title()}": v for k, v in provenance.items()}
        return {
            "user_id": user_id,
            "variant": variant,
            "served": served,
            "answer": answer,
            "headers": headers,
        }

    def _provenance(self, served: ServedModel, variant: str, answer: Answer) -> dict[str, str]:
        meta = served.provenance
        return {
            "variant": variant,
            "model_version": served.model_version,
            "data_version": served.data_version,
            "run_id": str(meta.get("run_id", "")),
            "code_version": str(meta.get("code_version", "")),
            "cold_start": answer.cold_start,
        }

    def _log(self, answer: Answer, provenance: dict[str, str], *, port: int, latency_ms: float):
        from shrek.serve.request_log import request_line

        try:
            line = request_line(
                answer.user_id,
                answer.movie_ids,
                server=f"{self.host}:{port}",
                status=200,
                latency_ms=latency_ms,
            )
            self.request_log.log(line, user_id=answer.user_id, provenance=provenance)
        except Exception:  # noqa: BLE001 - logging must never fail an answer
            logger.exception("request log failed for user %d", answer.user_id)

    @bentoml.api(route="/recommendations")
    async def recommendations(
        self,
        user_id: Any = None,
        n: Any = N_RECOMMENDATIONS,
        ctx: bentoml.Context = None,
    ) -> dict:
        """Recommendations with scores, variant, cold start and provenance (JSON).

        ``user_id`` is a positive integer (as a number or a string) and ``n`` an integer
        1–100. They are typed ``Any`` so that Shrek, not BentoML's validation, answers bad
        values: a 400 with ``{"error": "..."}`` naming the field, what is accepted and what was
        received, and no traceback in the log.
        """
        try:
            result = self.answer(user_id, n=n, port=_port_of(ctx))
        except ValueError as err:
            logger.info("400 on /recommendations: %s", err)
            if ctx is not None:
                ctx.response.status_code = 400
            return JSONResponse({"error": str(err)}, status_code=400)
        answer: Answer = result["answer"]
        if ctx is not None:
            ctx.response.headers.update(result["headers"])
        served: ServedModel = result["served"]
        return {
            "user_id": answer.user_id,
            "movie_ids": list(answer.movie_ids),
            "scores": list(answer.scores),
            "variant": result["variant"],
            "cold_start": answer.cold_start,
            "provenance": {
                "model_version": served.model_version,
                "data_version": served.data_version,
                "run_id": served.provenance.get("run_id"),
                "code_version": served.provenance.get("code_version"),
                "trained_at": served.provenance.get("trained_at"),
                "fairness": served.provenance.get("fairness"),
            },
        }

    def __is_ready__(self) -> bool:
        return self.state is not None and bool(self.state.variants)

    @bentoml.on_shutdown
    def close_request_log(self) -> None:
        if self.routing_watcher is not None:
            self.routing_watcher.stop()
        self.request_log.close()


@dataclass(frozen=True)
class ServingState:
    """What a service answers with, swapped as a whole when the routing file changes."""

    variants: dict[str, ServedModel]
    router: Any
    headers: dict[str, str]
    canary_path: str | None

    @property
    def versions(self) -> dict[str, str]:
        return {name: served.model_version for name, served in self.variants.items()}


def _port_of(ctx: Any) -> int:
    try:
        return int(ctx.request.url.port or ctx.request.scope["server"][1])
    except Exception:  # noqa: BLE001 - only used in log lines
        return 0


def _metadata_lookup(url: str | None) -> Any:
    if not url:
        return None
    from shrek.stream.metadata_api import MetadataClient

    client = MetadataClient(url, timeout=0.3, attempts=1)
    return lambda user_id: client.get("user", user_id)


# --- the plain-text route and the admin endpoint, mounted into every service ------------------


def _service() -> RecommendationService:
    return bentoml.get_current_service()


async def recommend_text(request: Request) -> Response:
    """``GET /recommend/<user_id>``: comma-separated movie ids, best first.

    Answered on the event loop: an answer takes about a millisecond of CPU, and handing it to
    a thread pool only adds GIL hand-offs under load."""
    service = _service()
    port = request.url.port or request.scope.get("server", ("", 0))[1]
    try:
        result = service.answer(request.path_params["user_id"], port=port)
    except ValueError as err:
        return PlainTextResponse(str(err), status_code=400)
    return PlainTextResponse(",".join(result["answer"].movie_ids), headers=result["headers"])


def canary_admin(
    service: RecommendationService, *, method: str, authorization: str, body: bytes
) -> tuple[int, dict]:
    """``GET`` shows, ``POST {"share": 0.3, "salt": "..."}`` changes the canary split.

    Returns
    -------
    tuple of (int, dict)
        The HTTP status and the JSON body: the split, or ``{"error": ...}``.
    """
    if service.router is None:
        return 404, {"error": "this service has no candidate model; serve the canary bento"}
    if service.admin_token is None:
        return 403, {"error": "the admin endpoint is disabled: set SHREK_ADMIN_TOKEN"}
    given = authorization.removeprefix("Bearer ").strip()
    if not hmac.compare_digest(given.encode(), service.admin_token.encode()):
        return 401, {"error": "missing or wrong 'Authorization: Bearer <token>' header"}
    if method == "POST":
        try:
            changes = json.loads(body or b"{}")
            if not isinstance(changes, dict) or not changes or set(changes) - {"share", "salt"}:
                raise ValueError(
                    "body must be a JSON object with 'share' (a number 0–1) and/or 'salt', "
                    f"got {body[:80].decode(errors='replace')!r}"
                )
            service.router.update(share=changes.get("share"), salt=changes.get("salt"))
        except ValueError as err:  # json.JSONDecodeError is a ValueError
            return 400, {"error": str(err)}
    config = service.router.config
    service.metrics.canary_share.set(config.share)
    return 200, config.to_dict()


async def _canary_admin(request: Request) -> Response:
    from starlette.concurrency import run_in_threadpool

    body = await request.body()
    status, document = await run_in_threadpool(
        canary_admin,
        _service(),
        method=request.method,
        authorization=request.headers.get("authorization", ""),
        body=body,
    )
    return JSONResponse(document, status_code=status)


class ProvenanceHeaders:
    """ASGI middleware: the service's provenance headers on every response (health checks,
    metrics and errors included); headers a route already set win."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                try:
                    extra = _service().service_headers
                except Exception:  # noqa: BLE001 - not started yet: nothing to add
                    extra = {}
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                for name, value in extra.items():
                    if name.lower().encode() not in present:
                        headers.append((name.lower().encode(), value.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def make_http_app() -> Starlette:
    """The Starlette app a service mounts at ``/``."""
    return Starlette(
        routes=[
            Route("/recommend/{user_id}", recommend_text, methods=["GET"]),
            Route("/admin/canary", _canary_admin, methods=["GET", "POST"]),
        ]
    )


def finish_service(service: Any) -> Any:
    """Add what a decorated service needs beyond its class: the provenance headers."""
    service.add_asgi_middleware(ProvenanceHeaders)
    return service
