"""The LightFM bento: ``shrek-lightfm:latest`` (or ``$SHREK_STABLE_MODEL``); unknown users are
answered from their metadata when it is known, else by popularity.

Serve with ``bentoml serve bentos.lightfm.service:ShrekLightFM`` from the repository root;
build with ``bentoml build -f bentos/lightfm/bentofile.yaml .``.
"""

from __future__ import annotations

import bentoml

from shrek.serve.http import finish_service, make_http_app
from shrek.serve.service import SERVICE_CONFIG, RecommendationService, model_ref


@bentoml.service(name="shrek-lightfm", **SERVICE_CONFIG)
@bentoml.asgi_app(make_http_app(), path="/")
class ShrekLightFM(RecommendationService):
    """Movie recommendations from LightFM with user and movie metadata."""

    stable_model = model_ref("SHREK_STABLE_MODEL", "shrek-lightfm:latest")


finish_service(ShrekLightFM)
