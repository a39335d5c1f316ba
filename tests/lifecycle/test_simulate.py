"""Weekly cycles over MovieLens 100K: production, a promoted canary, a rejected model (issue 7)."""

from __future__ import annotations

import os

import pytest

from shrek.lifecycle.history import history, plot_history
from shrek.lifecycle.registry import Registry
from shrek.lifecycle.rollback import check_consistency
from shrek.lifecycle.simulate import simulate_weeks


@pytest.mark.realdata
def test_three_weekly_cycles_promote_a_better_model_and_reject_a_worse_one(tmp_path, bentoml_home):
    data_dir = os.environ.get("SHREK_DATA_DIR")
    if not data_dir:
        pytest.skip("SHREK_DATA_DIR is not set")
    state = tmp_path / "lifecycle"

    first, better, worse = simulate_weeks(data_dir, state)

    registry = Registry(state)
    assert [r.status for r in (first, better, worse)] == ["succeeded"] * 3
    assert first.decision.status == "production"
    assert better.decision.status == "canary"
    assert worse.settled.action == "promote" and worse.settled.version == better.version
    assert registry.production().version == better.version
    assert registry.get(first.version).status == "retired"
    assert registry.get(worse.version).status == "retired"
    reason = registry.table().loc[worse.version, "reason"]
    assert reason.startswith("rejected: nDCG@10") and better.version in reason
    assert worse.decision.details["candidate"] < worse.decision.details["production"]
    assert registry.deployment().share == 1.0 and check_consistency(registry) == []
    assert history(state)["fit_seconds"].notna().all()
    assert len(plot_history(state).axes) == 4
