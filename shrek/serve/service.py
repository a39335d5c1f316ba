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

This module holds the service body and the JSON endpoint; the plain-text route, the admin
endpoint and the provenance middleware are in :mod:`shrek.serve.http`.

Every response carries ``X-Shrek-Service``, ``X-Shrek-Worker`` (BentoML's worker index) and the
stable (and candidate) model versions; every answer also ``X-Shrek-Variant``,
``X-Shrek-Model-Version``, ``X-Shrek-Data-Version``, ``X-Shrek-Run-Id``, ``X-Shrek-Code-Version``
and ``X-Shrek-Cold-Start``.

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
    ``SHREK_CANARY_SALT`` give the split while it does not exist. Unset, the workers of one
    ``bentoml serve`` share :func:`shrek.serve.canary.default_split_path`.
``SHREK_ADMIN_TOKEN``
    Enables the admin endpoint.
``SHREK_KAFKA_*``, ``SHREK_REQUEST_LOG_TOPIC``
    Kafka for the request log (:class:`shrek.stream.broker.KafkaSettings`; topic
    ``shrek-events``); without servers only the service's own log gets the lines.
``SHREK_METADATA_URL``
    The metadata API, asked for unknown users' metadata (LightFM cold start); the lookup runs
    in a worker thread, off the event loop.
``SHREK_SERVER_NAME``
    The host named in request-log lines (default: the machine's host name).
``SHREK_SERVE_WORKERS``
    Worker processes (default 2). Each loads the models and polls the watched files itself, so
    a change through the admin call reaches the other workers at their next poll (about 1 s).
"""

from __future__ import annotations

import gc
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import bentoml
from starlette.concurrency import run_in_threadpool
from threadpoolctl import threadpool_limits

from shrek.errors import ShrekError
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


class ModelNotInStoreError(ShrekError):
    """A bento's model is not in the BentoML model store (not exported, or blocked)."""


def model_ref(variable: str, default: str) -> bentoml.models.BentoModel:
    """The store model named by environment ``variable`` (else ``default``), for a service
    class attribute; ``bentoml build`` packs it into the bento.

    Raises
    ------
    ModelNotInStoreError
        If the store has no such model, saying how to export it.
    """
    tag = os.environ.get(variable) or default
    ref = bentoml.models.BentoModel(tag)
    if ref.stored is None:
        home = os.environ.get("BENTOML_HOME") or "~/bentoml"
        raise ModelNotInStoreError(
            f"{variable}: model {tag} is not in the BentoML model store ({home}/models): "
            "export the run's models with `shrek export`. A model the fairness gate blocked is "
            "not exported (`shrek export --force` overrides it, recorded in its labels); "
            "without a LightFM model serve the ALS bento alone: "
            "`bentoml serve bentos.als.service:ShrekALS`"
        )
    return ref


class RecommendationService:
    """The shared body of Shrek's services: routing, answering, provenance, logging.

    Subclasses are decorated with ``@bentoml.service`` and set ``stable_model`` (and
    ``candidate_model`` for a canary) to :func:`model_ref` values.
    """

    stable_model: Any = None
    candidate_model: Any = None

    def __init__(self) -> None:
        from shrek.serve.canary import CanaryConfig, default_split_path
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
        # Unset: one file for the workers of this `bentoml serve`, so that an admin call one
        # worker answers reaches every worker (regression, issue 5).
        self.canary_path = os.environ.get("SHREK_CANARY_CONFIG") or str(default_split_path())
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
        worker = bentoml.server_context.worker_index
        if worker is not None:
            headers["X-Shrek-Worker"] = str(worker)
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

    def answer(
        self, raw_user_id: Any, *, n: int = N_RECOMMENDATIONS, port: int = 0
    ) -> dict[str, Any]:
        """Answer one request: route, recommend, count and log it.

        Parameters
        ----------
        raw_user_id : Any
            The user id as received: a positive integer or its decimal string.
        n : int, default 20
            Length of the list, 1–100.
        port : int, default 0
            The port the request came in on (named in the request-log line).

        Returns
        -------
        dict
            ``user_id`` (int), ``variant`` (``"stable"`` or ``"candidate"``), ``served`` (the
            :class:`ServedModel` that answered), ``answer`` (:class:`Answer`) and ``headers``
            (the provenance headers of the response).

        Raises
        ------
        ValueError
            For a malformed user id or ``n`` (the caller answers 400).

        Notes
        -----
        Runs in the calling thread, metadata lookups included; the HTTP endpoints call
        :meth:`answer_async`, which keeps the lookups off the event loop.
        """
        request = self._accept(raw_user_id, n)
        in_model = time.perf_counter()
        answer = request.served.recommend(request.user_id, N=request.n)
        return self._reply(request, answer, time.perf_counter() - in_model, port=port)

    async def answer_async(
        self, raw_user_id: Any, *, n: int = N_RECOMMENDATIONS, port: int = 0
    ) -> dict[str, Any]:
        """:meth:`answer` for the event loop: what may wait on I/O (LightFM's metadata lookup of
        an unknown user, up to its 0.3 s timeout) runs in a worker thread.

        Notes
        -----
        Every other answer (a lookup in the precomputed lists, or a millisecond of model
        arithmetic) stays on the loop: a thread hand-off would cost more than it saves.
        """
        request = self._accept(raw_user_id, n)
        served, user_id = request.served, request.user_id
        in_model = time.perf_counter()
        if served.may_block(user_id):
            answer = await run_in_threadpool(served.recommend, user_id, N=request.n)
        else:
            answer = served.recommend(user_id, N=request.n)
        return self._reply(request, answer, time.perf_counter() - in_model, port=port)

    def _accept(self, raw_user_id: Any, n: Any) -> _Request:
        """Check the request and pick its variant; ValueError (counted) for bad input."""
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
        return _Request(user_id, n, variant, state.variants[variant], started)

    def _reply(
        self, request: _Request, answer: Answer, model_seconds: float, *, port: int
    ) -> dict[str, Any]:
        """Count and log an answer; the result of :meth:`answer`."""
        served, variant = request.served, request.variant
        provenance = self._provenance(served, variant, answer)
        self.metrics.answered(
            variant=variant,
            model_version=served.model_version,
            cold_start=answer.cold_start,
            seconds=model_seconds,
        )
        latency_ms = (time.perf_counter() - request.started) * 1000
        self._log(answer, provenance, port=port, latency_ms=latency_ms)
        headers = {f"X-Shrek-{k.replace('_', '-').title()}": v for k, v in provenance.items()}
        return {
            "user_id": request.user_id,
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
    ) -> dict[str, Any]:
        """Recommendations with scores, variant, cold start and provenance (JSON).

        ``user_id`` is a positive integer (as a number or a string) and ``n`` an integer
        1–100. They are typed ``Any`` so that Shrek, not BentoML's validation, answers bad
        values: a 400 with ``{"error": "..."}`` naming the field, what is accepted and what was
        received, and no traceback in the log.
        """
        try:
            result = await self.answer_async(user_id, n=n, port=_port_of(ctx))
        except ValueError as err:
            logger.info("400 on /recommendations: %s", err)
            if ctx is not None:
                ctx.response.status_code = 400
            return {"error": str(err)}
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
                "fairness_of": served.provenance.get("fairness_of"),
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
class _Request:
    """A checked request on its way to the model."""

    user_id: int
    n: int
    variant: str
    served: ServedModel
    started: float


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
