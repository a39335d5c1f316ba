"""The canary bento: the stable model answers most users, the candidate a salted-hash share.

Stable is ``shrek-als:latest`` and candidate ``shrek-lightfm:latest`` unless
``SHREK_STABLE_MODEL`` / ``SHREK_CANDIDATE_MODEL`` name other versions when the bento is built
(or served from source). The share comes from ``$SHREK_CANARY_CONFIG`` (watched) or the admin
endpoint; without that variable the workers of one ``bentoml serve`` share a split file of their
own, so an admin call reaches all of them. Serve with
``bentoml serve bentos.canary.service:ShrekCanary`` from the repository root; build with
``bentoml build -f bentos/canary/bentofile.yaml .``.
"""

from __future__ import annotations

import bentoml

from shrek.serve.http import finish_service, make_http_app
from shrek.serve.service import SERVICE_CONFIG, RecommendationService, model_ref


@bentoml.service(name="shrek-canary", **SERVICE_CONFIG)
@bentoml.asgi_app(make_http_app(), path="/")
class ShrekCanary(RecommendationService):
    """Stable and candidate models behind a canary router."""

    stable_model = model_ref("SHREK_STABLE_MODEL", "shrek-als:latest")
    candidate_model = model_ref("SHREK_CANDIDATE_MODEL", "shrek-lightfm:latest")


finish_service(ShrekCanary)
