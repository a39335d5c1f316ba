"""Rollback to any earlier production version, through the watched routing file (issue 7)."""

from __future__ import annotations

import json

import pytest

from shrek.lifecycle.registry import Registry
from shrek.lifecycle.rollback import (
    RollbackError,
    apply_deployment,
    check_consistency,
    deployment_env,
    rollback,
    routing_path,
)
from shrek.serve.canary import read_canary_config
from shrek.serve.routing import read_routing

A, B, C = (f"shrek-als:{name}" for name in "abc")


@pytest.fixture
def registry(tmp_path) -> Registry:
    """A was production, then B, then C: the service has B and C loaded, C answers everyone."""
    registry = Registry(tmp_path / "state")
    for version in (A, B, C):
        registry.register(version, model="als", ndcg=0.1)
    registry.transition([(A, "production")], action="promote", reason="first", deployment=(A, A, 0))
    for old, new in ((A, B), (B, C)):
        registry.transition(
            [(new, "canary")], action="canary", reason="t", deployment=(old, new, 0.1)
        )
        registry.transition(
            [(old, "retired"), (new, "production")],
            action="promote",
            reason="t",
            deployment=(old, new, 1.0),
        )
    apply_deployment(registry)
    return registry


def test_rollback_goes_back_beyond_the_loaded_pair_through_the_routing_file(registry):
    first = rollback(registry, reason="C is bad")
    within = read_routing(routing_path(registry))
    second = rollback(registry, reason="B is bad too")
    routing = json.loads(routing_path(registry).read_text())

    assert (first.serving, first.replaced) == (B, C)
    assert (within.stable, within.candidate) == (B, C)
    assert (second.serving, second.replaced) == (A, B)
    assert (routing["stable"], routing["candidate"], routing["share"]) == (A, B, 0.0)
    assert read_canary_config(routing["canary_config"]).share == 0.0
    assert routing["env"]["SHREK_ROUTING_FILE"] == str(routing_path(registry))
    assert deployment_env(registry)["SHREK_CANARY_CONFIG"] == routing["canary_config"]
    assert registry.production().version == A
    assert check_consistency(registry) == []


def test_rollback_skips_versions_an_earlier_rollback_removed(registry):
    rollback(registry)
    rollback(registry)

    with pytest.raises(RollbackError, match=f"nothing to roll back to: {A} is the only"):
        rollback(registry)
    assert registry.production().version == A
