"""The ALS bento: ``shrek-als:latest`` (or ``$SHREK_STABLE_MODEL``), cold start by popularity.

Serve with ``bentoml serve bentos.als.service:ShrekALS`` from the repository root; build with
``bentoml build -f bentos/als/bentofile.yaml .``.
"""

from __future__ import annotations

import bentoml

from shrek.serve.http import finish_service, make_http_app
from shrek.serve.service import SERVICE_CONFIG, RecommendationService, model_ref


@bentoml.service(name="shrek-als", **SERVICE_CONFIG)
@bentoml.asgi_app(make_http_app(), path="/")
class ShrekALS(RecommendationService):
    """Movie recommendations from implicit ALS."""

    stable_model = model_ref("SHREK_STABLE_MODEL", "shrek-als:latest")


finish_service(ShrekALS)
