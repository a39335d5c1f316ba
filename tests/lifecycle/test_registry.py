"""The registry: statuses, atomic transitions, decisions and interrupted runs (issue 7)."""

from __future__ import annotations

import pytest

from shrek.lifecycle.registry import Registry, RegistryError


@pytest.fixture
def registry(tmp_path) -> Registry:
    registry = Registry(tmp_path / "state")
    for name in ("a", "b"):
        registry.register(f"shrek-als:{name}", model="als", run_id=f"run-{name}", ndcg=0.1)
    return registry


def test_a_new_version_is_a_candidate_and_its_registration_recorded(registry):
    assert registry.get("shrek-als:a").status == "candidate"
    decisions = registry.decisions(version="shrek-als:a")
    assert decisions["action"].tolist() == ["register"]


def test_transition_changes_status_deployment_and_decision_together(registry):
    registry.transition(
        [("shrek-als:a", "production")],
        action="promote",
        reason="first model",
        deployment=("shrek-als:a", "shrek-als:a", 0.0),
    )
    assert registry.production().version == "shrek-als:a"
    assert registry.deployment().serving() == "shrek-als:a"
    assert registry.decisions()["reason"].iloc[-1] == "first model"


def test_a_refused_transition_changes_nothing(registry):
    registry.transition([("shrek-als:a", "production")], action="promote", reason="first")
    before = (registry.versions(), len(registry.decisions()))

    with pytest.raises(RegistryError, match="2 versions would be production"):
        registry.transition(
            [("shrek-als:b", "canary"), ("shrek-als:b", "production")],
            action="promote",
            reason="two in production",
        )

    assert (registry.versions(), len(registry.decisions())) == before


def test_transition_names_the_allowed_statuses(registry):
    registry.transition([("shrek-als:a", "retired")], action="reject", reason="worse")
    with pytest.raises(RegistryError, match="shrek-als:a is retired; it may become production"):
        registry.transition([("shrek-als:a", "canary")], action="canary", reason="no")


def test_an_unknown_version_is_a_key_error(registry):
    with pytest.raises(KeyError, match="'shrek-als:zzz' is not in the registry"):
        registry.get("shrek-als:zzz")


def test_a_run_whose_process_died_is_recovered_as_failed(registry):
    registry.start_run("run-dead", pid=2**22 + 12345)
    registry.start_run("run-alive")

    assert registry.recover_interrupted() == ["run-dead"]

    runs = registry.runs().set_index("run_id")
    assert runs.loc["run-dead", "status"] == "failed"
    assert "interrupted" in runs.loc["run-dead", "error"]
    assert runs.loc["run-alive", "status"] == "running"


def test_the_deployment_id_grows_only_with_the_pair_of_models(registry):
    registry.transition(
        [("shrek-als:a", "production")],
        action="promote",
        reason="first",
        deployment=("shrek-als:a", "shrek-als:a", 0.0),
    )
    registry.transition(
        [("shrek-als:b", "canary")],
        action="canary",
        reason="better",
        deployment=("shrek-als:a", "shrek-als:b", 0.1),
    )
    first = registry.deployment()
    registry.transition(
        [("shrek-als:a", "retired"), ("shrek-als:b", "production")],
        action="promote",
        reason="A/B",
        deployment=("shrek-als:a", "shrek-als:b", 1.0),
    )
    assert (first.id, registry.deployment().id, registry.deployment().share) == (2, 2, 1.0)
