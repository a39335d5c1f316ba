"""The HTTP glue every Shrek service mounts: the plain-text route, the canary admin endpoint and
the middleware that puts the provenance headers on every response.

:func:`make_http_app` is the Starlette app a service mounts at ``/``; :func:`finish_service`
adds the middleware to a decorated service. The service body is :mod:`shrek.serve.service`.
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any

import bentoml
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from shrek.serve.canary import SplitFileError
from shrek.serve.service import RecommendationService

logger = logging.getLogger(__name__)


def _service() -> RecommendationService:
    return bentoml.get_current_service()


async def recommend_text(request: Request) -> Response:
    """``GET /recommend/<user_id>``: comma-separated movie ids, best first.

    Answered on the event loop: an answer takes about a millisecond of CPU, and handing it to
    a thread pool only adds GIL hand-offs under load; what may wait on I/O (LightFM's metadata
    lookup) goes to a thread (:meth:`RecommendationService.answer_async`)."""
    service = _service()
    port = request.url.port or request.scope.get("server", ("", 0))[1]
    try:
        result = await service.answer_async(request.path_params["user_id"], port=port)
    except ValueError as err:
        return PlainTextResponse(str(err), status_code=400)
    return PlainTextResponse(",".join(result["answer"].movie_ids), headers=result["headers"])


def canary_admin(
    service: RecommendationService, *, method: str, authorization: str, body: bytes
) -> tuple[int, dict[str, Any]]:
    """``GET`` shows, ``POST {"share": 0.3, "salt": "..."}`` changes the canary split.

    Parameters
    ----------
    service : RecommendationService
        The running service.
    method : {"GET", "POST"}
        The HTTP method.
    authorization : str
        The ``Authorization`` header (``Bearer <token>``), empty when absent.
    body : bytes
        The request body (JSON) of a ``POST``.

    Returns
    -------
    tuple of (int, dict)
        The HTTP status and the JSON body: the split, or ``{"error": ...}``: 400 for a bad
        body, 401/403 without the token, 404 without a candidate, 409 when the split file
        cannot be written (a read-only Kubernetes ConfigMap).
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
        except (TypeError, ValueError) as err:  # json.JSONDecodeError is a ValueError
            return 400, {"error": str(err)}
        except SplitFileError as err:
            logger.warning("409 on /admin/canary: %s", err)
            return 409, {"error": str(err)}
    config = service.router.config
    service.metrics.canary_share.set(config.share)
    return 200, config.to_dict()


async def _canary_admin(request: Request) -> Response:
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
