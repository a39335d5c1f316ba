"""Serving files derived from the registry, and rollback without a restart.

The running canary service (``bentos/canary/service.py``) follows two watched files:

- ``serving/routing.json`` (``$SHREK_ROUTING_FILE``): the deployment's pair of model versions
  (``stable``, ``candidate``) and its split file (``canary_config``). When the pair changes the
  service loads the new versions from the BentoML store and swaps them in at once
  (:mod:`shrek.serve.routing`);
- ``serving/deployment-<id>.yaml`` (the ``canary_config`` of the routing file): the share of
  users sent to the candidate, re-read about once a second.

So:

- a new canary is a new deployment (``stable`` = production, ``candidate`` = the canary, share
  = the canary share);
- promotion sets the share to 1: the canary answers everyone, the previous production stays
  loaded on the stable side;
- rollback returns every user to the previous production version: by setting the share when
  that version is one of the loaded pair, else by a new deployment that names it, which the
  service loads from the store. No restart and no failed request either way.

Notes
-----
The split file of a new deployment is written before the routing file that names it, so a
service never follows a routing file whose split it cannot read. A service started without
``$SHREK_ROUTING_FILE`` keeps the pair it started with (``shrek models --env`` prints the
environment to start it with).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shrek.errors import ShrekError
from shrek.lifecycle.registry import Deployment, Registry
from shrek.serve.canary import CanaryConfig, read_canary_config, write_canary_config

logger = logging.getLogger(__name__)

SERVING_DIR = "serving"
ROUTING_FILE = "routing.json"


class RollbackError(ShrekError):
    """There is nothing to roll back to without a new deployment."""


@dataclass(frozen=True)
class RollbackResult:
    """What a rollback did: the version that now answers everyone and the one it replaced."""

    serving: str
    replaced: str
    reason: str
    canary_config: Path


def canary_config_path(registry: Registry, deployment: Deployment) -> Path:
    """The watched split file of ``deployment``: ``<folder>/serving/deployment-<id>.yaml``."""
    return registry.folder / SERVING_DIR / f"deployment-{deployment.id}.yaml"


def deployment_env(registry: Registry) -> dict[str, str]:
    """The environment to (re)start the canary service with for the current deployment.

    Raises
    ------
    RollbackError
        If no model was ever deployed.
    """
    deployment = registry.deployment()
    if deployment is None:
        raise RollbackError(f"{registry.path} has no deployment yet: no model passed the gate")
    return {
        "SHREK_STABLE_MODEL": deployment.stable,
        "SHREK_CANDIDATE_MODEL": deployment.candidate,
        "SHREK_CANARY_CONFIG": str(canary_config_path(registry, deployment)),
        "SHREK_ROUTING_FILE": str(routing_path(registry)),
    }


def routing_path(registry: Registry) -> Path:
    """The watched routing file: ``<folder>/serving/routing.json``."""
    return registry.folder / SERVING_DIR / ROUTING_FILE


def apply_deployment(registry: Registry, *, salt: str = "shrek") -> Path | None:
    """Write the serving files of the registry's deployment (idempotent).

    The watched split file is rewritten only when its share differs, keeping its salt; the
    routing file records the deployment and the environment that serves it.

    Returns
    -------
    Path or None
        The watched split file, or None when nothing was ever deployed.
    """
    deployment = registry.deployment()
    if deployment is None:
        return None
    path = canary_config_path(registry, deployment)
    current = _read_split(path)
    if current is None or current.share != deployment.share:
        config = CanaryConfig(share=deployment.share, salt=current.salt if current else salt)
        write_canary_config(path, config)
        logger.info("deployment %d: candidate share %.2f (%s)", deployment.id, config.share, path)
    routing = {
        "deployment": deployment.id,
        "stable": deployment.stable,
        "candidate": deployment.candidate,
        "share": deployment.share,
        "serving": deployment.serving() if deployment.share in (0, 1) else None,
        "canary_config": str(path),
        "env": deployment_env(registry),
    }
    _write_json(routing_path(registry), routing)
    return path


def rollback(
    registry: Registry, *, reason: str = "manual rollback", run_id: str | None = None
) -> RollbackResult:
    """Return all traffic to the previous production version, without restarting the service.

    During a canary, the canary is retired and every user goes back to production. Otherwise
    the production version is retired and the one in production before it (skipping versions
    an earlier rollback retired) is production again: through the split when the running
    service has it loaded, else through a new deployment the service loads from the store.

    Parameters
    ----------
    registry : Registry
    reason : str, default "manual rollback"
        Recorded with the decision.
    run_id : str, optional
        The scheduled run that decided it, if any.

    Raises
    ------
    RollbackError
        When there is no deployment, or no earlier production version to return to.
    """
    deployment = registry.deployment()
    production = registry.production()
    if deployment is None or production is None:
        raise RollbackError(f"nothing to roll back: {registry.path} has no production model")
    canary = registry.canary()
    if canary is not None:
        registry.transition(
            [(canary.version, "retired")],
            action="rollback",
            reason=reason,
            run_id=run_id,
            deployment=(deployment.stable, deployment.candidate, 0.0),
        )
        path = apply_deployment(registry)
        return RollbackResult(production.version, canary.version, reason, path)

    previous = previous_production(registry)
    if previous is None:
        raise RollbackError(
            f"nothing to roll back to: {production.version} is the only production version "
            "that was not rolled back"
        )
    if previous in (deployment.stable, deployment.candidate):  # loaded: move the split
        stable, candidate = deployment.stable, deployment.candidate
        share = 0.0 if previous == deployment.stable else 1.0
    else:  # a new deployment: the service loads it through the routing file
        stable, candidate, share = previous, production.version, 0.0
    registry.transition(
        [
            (production.version, "retired"),
            (previous, "production", f"back in production after {production.version}: {reason}"),
        ],
        action="rollback",
        reason=reason,
        run_id=run_id,
        deployment=(stable, candidate, share),
    )
    path = apply_deployment(registry)
    logger.info("rolled back from %s to %s: %s", production.version, previous, reason)
    return RollbackResult(previous, production.version, reason, path)


def previous_production(registry: Registry) -> str | None:
    """The retired version that was production most recently before the current one.

    Versions retired by a rollback are skipped: rolling back twice goes two versions back,
    not forth to the version the first rollback removed.
    """
    production = registry.production()
    decisions = registry.decisions()
    last = decisions.dropna(subset=["to_status"]).groupby("version").tail(1)
    rolled_back = set(
        last.loc[(last["action"] == "rollback") & (last["to_status"] == "retired"), "version"]
    )
    history = decisions.loc[decisions["to_status"] == "production", "version"].tolist()
    for version in reversed(history):
        if production is not None and version == production.version:
            continue
        if version in rolled_back or registry.get(version).status != "retired":
            continue
        return version
    return None


def check_consistency(registry: Registry, *, service_url: str | None = None) -> list[str]:
    """What disagrees between the registry, the serving files and (optionally) the service.

    Parameters
    ----------
    registry : Registry
    service_url : str, optional
        A running canary service; its ``/readyz`` headers must name the deployment's models.

    Returns
    -------
    list of str
        One sentence per problem; empty when everything agrees.
    """
    deployment = registry.deployment()
    production, canary = registry.production(), registry.canary()
    if deployment is None:
        return [] if production is None else [f"{production.version} is production, not deployed"]
    problems = []
    if production is None:
        problems.append("a deployment exists but no version is production")
    elif canary is not None:
        if (deployment.stable, deployment.candidate) != (production.version, canary.version):
            problems.append(f"canary {canary.version} is not deployed beside production")
    elif deployment.share not in (0, 1) or deployment.serving() != production.version:
        problems.append(f"production {production.version} does not answer every user")
    split = _read_split(canary_config_path(registry, deployment))
    if split is None or split.share != deployment.share:
        problems.append(f"the watched split file says {split}, the registry {deployment.share}")
    if service_url is not None:
        problems += _check_service(service_url, deployment)
    return problems


def _check_service(url: str, deployment: Deployment) -> list[str]:
    import requests

    response = requests.get(url.rstrip("/") + "/readyz", timeout=5)
    loaded = (
        response.headers.get("X-Shrek-Stable-Model"),
        response.headers.get("X-Shrek-Candidate-Model"),
    )
    if loaded != (deployment.stable, deployment.candidate):
        return [f"the service at {url} loads {loaded}, the deployment wants {deployment}"]
    return []


def _read_split(path: Path) -> CanaryConfig | None:
    try:
        return read_canary_config(path)
    except (OSError, ValueError):
        return None


def _write_json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as file:
        json.dump(document, file, indent=2)
        file.flush()
        os.fsync(file.fileno())
    os.replace(file.name, path)
