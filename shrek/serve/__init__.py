"""Serving: export a run's models to the BentoML store, answer requests, route canary traffic.

:mod:`shrek.serve.export` writes models with their provenance into the store;
:mod:`shrek.serve.model` answers one user (cold start included); :mod:`shrek.serve.canary`
splits users between a stable and a candidate model; :mod:`shrek.serve.request_log` writes
each answer to Kafka; :mod:`shrek.serve.service` is the body of the bentos in ``bentos/``.
This package imports neither BentoML nor the models until used.
"""

from shrek.serve.canary import CanaryConfig, CanaryRouter, bucket
from shrek.serve.export import ExportedModel, FairnessGateError, export_run, store_name
from shrek.serve.model import Answer, ServedModel, parse_user_id

__all__ = [
    "Answer",
    "CanaryConfig",
    "CanaryRouter",
    "ExportedModel",
    "FairnessGateError",
    "ServedModel",
    "bucket",
    "export_run",
    "parse_user_id",
    "store_name",
]
