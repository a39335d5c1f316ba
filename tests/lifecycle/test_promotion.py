"""The promotion gate: the fairness gate, the canary's start and the A/B verdict after the canary
period, on a real registry and serving folder (issue 7)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from shrek.lifecycle.promotion import (
    PromotionPolicy,
    canary_started,
    gate_candidate,
    settle_canary,
    start_canary,
)
from shrek.lifecycle.registry import Registry
from shrek.lifecycle.rollback import canary_config_path, check_consistency
from shrek.lifecycle.schedule import log_ab_source
from shrek.monitoring.ab import ab_test
from shrek.serve.canary import read_canary_config

A, B, C = (f"shrek-als:{name}" for name in "abc")
STARTED = datetime(2026, 3, 2, 12, tzinfo=UTC)
POLICY = PromotionPolicy(canary_share=0.5, canary_days=7)


@pytest.fixture
def registry(tmp_path) -> Registry:
    """A is production; B became the canary at STARTED, on half of the users."""
    registry = Registry(tmp_path / "state")
    for version in (A, B):
        registry.register(version, model="als", ndcg=0.1)
    registry.transition([(A, "production")], action="promote", reason="first", deployment=(A, A, 0))
    start_canary(registry, B, policy=POLICY, reason="beats A offline", started_at=STARTED)
    return registry


def report(rates: tuple[float, float], sizes: tuple[int, int], *, seed: int = 0):
    rng = np.random.default_rng(seed)
    control, treatment = (rng.random(n) < rate for n, rate in zip(sizes, rates, strict=True))
    return ab_test(control, treatment, expected_treatment_share=0.5, n_boot=200)


def test_a_candidate_the_fairness_gate_failed_is_rejected_with_its_verdict(registry):
    registry.register(C, model="als", fairness="FAIL", metrics={"fairness_eligible": False})

    decision = gate_candidate(registry, C, test=pd.DataFrame(), policy=POLICY, run_id="run-c")

    assert (decision.action, decision.status) == ("reject", "retired")
    assert decision.reason == (
        "rejected: the fairness gate did not pass it (verdict FAIL, see its run's fairness.json)"
    )
    assert registry.get(C).status == "retired"
    assert registry.decisions(version=C)["run_id"].iloc[-1] == "run-c"
    assert (registry.production().version, registry.canary().version) == (A, B)


def test_the_canary_decision_records_when_the_canary_started(registry):
    assert canary_started(registry) == STARTED
    assert read_canary_config(canary_config_path(registry, registry.deployment())).share == 0.5
    assert check_consistency(registry) == []


def test_a_significantly_worse_canary_is_rolled_back(registry):
    decision = settle_canary(registry, report((0.30, 0.15), (2000, 2000)), policy=POLICY)

    assert (decision.action, decision.status) == ("rollback", "retired")
    assert decision.reason.startswith(
        "rolled back after the canary period: A/B verdict: stable is better"
    )
    assert registry.get(B).status == "retired"
    assert registry.production().version == A and registry.canary() is None
    assert registry.deployment().share == 0.0
    assert read_canary_config(canary_config_path(registry, registry.deployment())).share == 0.0
    assert check_consistency(registry) == []


def test_a_canary_with_a_broken_split_is_rolled_back(registry):
    decision = settle_canary(registry, report((0.2, 0.2), (1400, 600)), policy=POLICY)

    assert decision.action == "rollback"
    assert "SAMPLE RATIO MISMATCH" in decision.reason
    assert registry.production().version == A and check_consistency(registry) == []


def test_an_underpowered_canary_is_held_with_the_reason(registry):
    """Regression (issue 7): a non-significant canary was promoted on any number of requests."""
    weak = report((0.10, 0.10), (100, 100))

    decision = settle_canary(registry, weak, policy=POLICY, run_id="run-x")

    assert weak.underpowered and not weak.significant
    assert (decision.action, decision.status) == ("hold", "canary")
    assert decision.reason.startswith("canary kept: the A/B test is underpowered")
    assert f"about {weak.required_control} stable and" in decision.reason
    assert registry.canary().version == B and registry.deployment().share == 0.5
    last = registry.decisions().iloc[-1]
    assert (last["action"], last["version"], last["reason"]) == ("hold", B, decision.reason)


def test_a_canary_not_worse_with_enough_requests_is_promoted(registry):
    powered = report((0.10, 0.10), (5000, 5000), seed=3)

    decision = settle_canary(registry, powered, policy=POLICY)

    assert not powered.underpowered and not powered.significant
    assert (decision.action, decision.status) == ("promote", "production")
    assert registry.production().version == B and registry.get(A).status == "retired"
    assert registry.deployment().share == 1.0 and check_consistency(registry) == []


def test_under_promote_when_better_a_tie_with_enough_requests_is_rolled_back(registry):
    policy = PromotionPolicy(canary_share=0.5, promote_when="better")

    decision = settle_canary(registry, report((0.10, 0.10), (5000, 5000), seed=3), policy=policy)

    assert decision.action == "rollback" and registry.production().version == A


def test_a_bad_promote_when_names_the_accepted_values():
    with pytest.raises(ValueError) as err:
        PromotionPolicy(promote_when="always")

    assert str(err.value) == "promote_when must be one of not_worse, better, got 'always'"


# --- the A/B report of the live request log ---------------------------------------------------


def request(at: datetime, user: int, variant: str, version: str, movies: str) -> str:
    return (
        f"{at:%Y-%m-%dT%H:%M:%S}.000,{user},recommendation request api:8082, status 200, "
        f"result: {movies}, 40 ms | variant={variant} model_version={version}"
    )


def watch(at: datetime, user: int, movie: str) -> str:
    return f"{at:%Y-%m-%dT%H:%M:%S},{user},GET /data/m/{movie}/0.mpg"


def test_the_ab_report_counts_only_requests_since_the_canary_started(registry, tmp_path):
    """Regression (issue 7): every user's first request was from before the canary (production
    answering everyone as "stable"), so with one request per user the candidate had none and
    the canary was held forever."""
    split = read_canary_config(canary_config_path(registry, registry.deployment()))
    users = range(1, 61)
    lines = []
    for user in users:  # before: an earlier deployment, then production A for everyone
        lines.append(request(STARTED - timedelta(days=9), user, "candidate", A, "x+1, x+2"))
        lines.append(request(STARTED - timedelta(days=2), user, "stable", A, "x+1, x+2"))
    expected = {"stable": [0, 0], "candidate": [0, 0]}
    for user in users:  # during the canary: one request each, some followed by a watch
        variant = split.variant(user)
        at = STARTED + timedelta(hours=user)
        lines.append(request(at, user, variant, {"stable": A, "candidate": B}[variant], "m+1, m+2"))
        lines.append(request(at + timedelta(hours=1), user, variant, C, "m+1, m+2"))  # not B
        hit = (user % 2 == 0) if variant == "stable" else (user % 3 != 0)
        if hit:
            lines.append(watch(at + timedelta(minutes=30), user, "m+2"))
        expected[variant][0] += 1
        expected[variant][1] += hit
    now = STARTED + timedelta(days=7)
    lines.append(request(now - timedelta(hours=2), 99, "candidate", B, "m+1"))  # window open
    log = tmp_path / "requests.log"
    log.write_text("\n".join(sorted(lines)) + "\n")

    source = log_ab_source(log_file=log, window="1D", policy=POLICY)
    result = source(registry, now)

    assert result is not None
    assert (result.control.requests, result.control.hits) == tuple(expected["stable"])
    assert (result.treatment.requests, result.treatment.hits) == tuple(expected["candidate"])
    assert result.expected_treatment_share == 0.5 and result.mde == POLICY.mde


def test_without_canary_traffic_yet_the_ab_source_has_no_report(registry, tmp_path):
    log = tmp_path / "requests.log"
    log.write_text(request(STARTED - timedelta(days=1), 1, "stable", A, "m+1") + "\n")

    assert log_ab_source(log_file=log)(registry, STARTED + timedelta(days=7)) is None
