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
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import socket
import time
from typing import Any

import bentoml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from threadpoolctl import threadpool_limits

from shrek.serve.model import N_RECOMMENDATIONS, Answer, ServedModel, check_n, parse_user_id

logger = logging.getLogger(__name__)

SERVICE_CONFIG: dict[str, Any] = {
    "workers": 1,
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
        from shrek.serve.canary import CanaryConfig, CanaryRouter
        from shrek.serve.metrics import service_metrics
        from shrek.serve.request_log import DEFAULT_TOPIC, RequestLog
        from shrek.stream.broker import KafkaSettings

        # One answer is a few small matrix products: BLAS threads only contend with each other
        # and with the event loop (measured: p99 209 ms -> see benchmarks/bench_service.py).
        threadpool_limits(1)
        lookup = _metadata_lookup(os.environ.get("SHREK_METADATA_URL"))
        self.variants: dict[str, ServedModel] = {
            "stable": ServedModel(self.stable_model.path, user_lookup=lookup)
        }
        if self.candidate_model is not None:
            self.variants["candidate"] = ServedModel(self.candidate_model.path, user_lookup=lookup)
            default = CanaryConfig(
                share=float(os.environ.get("SHREK_CANARY_SHARE") or 0.0),
                salt=os.environ.get("SHREK_CANARY_SALT") or "shrek",
            )
            self.router = CanaryRouter(os.environ.get("SHREK_CANARY_CONFIG"), default=default)
        else:
            self.router = None
        self.admin_token = os.environ.get("SHREK_ADMIN_TOKEN") or None
        self.host = os.environ.get("SHREK_SERVER_NAME") or socket.gethostname()
        self.metrics = service_metrics()
        self.request_log = RequestLog(
            KafkaSettings.from_env(),
            topic=os.environ.get("SHREK_REQUEST_LOG_TOPIC") or DEFAULT_TOPIC,
            on_drop=self.metrics.log_dropped.inc,
        )
        self.service_headers = {
            "X-Shrek-Service": type(self).__name__,
            "X-Shrek-Stable-Model": self.variants["stable"].model_version,
        }
        if "candidate" in self.variants:
            self.service_headers["X-Shrek-Candidate-Model"] = self.variants[
                "candidate"
            ].model_version
        logger.info("serving %s", {k: v.model_version for k, v in self.variants.items()})

    def route(self, user_id: int) -> str:
        """The variant that answers ``user_id``."""
        if self.router is None:
            return "stable"
        config = self.router.config
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

        variant = self.route(user_id)
        served = self.variants[variant]
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
        return {"user_id": user_id, "variant": variant, "answer": answer, "headers": headers}

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
        self, user_id: str | int, n: int = N_RECOMMENDATIONS, ctx: bentoml.Context = None
    ) -> dict:
        """Recommendations with scores, variant, cold start and provenance (JSON)."""
        try:
            result = self.answer(user_id, n=n, port=_port_of(ctx))
        except ValueError as err:
            raise bentoml.exceptions.InvalidArgument(str(err)) from None
        answer: Answer = result["answer"]
        if ctx is not None:
            ctx.response.headers.update(result["headers"])
        served = self.variants[result["variant"]]
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
        return bool(self.variants)

    @bentoml.on_shutdown
    def close_request_log(self) -> None:
        self.request_log.close()


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
