"""The promotion gate: offline and fairness checks before a canary, the A/B verdict after it.

A candidate becomes the canary only when

1. it passed the fairness gate of its run (``fairness.json``), and
2. its nDCG@k on the latest temporal split (its own run's) beats the production model's on the
   same test ratings by at least ``margin``.

The first model that passes the fairness gate becomes production directly: there is nothing to
compare it with. After the canary period, :func:`settle_canary` reads the online A/B report
(:func:`shrek.monitoring.ab.ab_report`) and promotes the canary to 100% of users or rolls it
back. Every decision is recorded in the registry with its reason and numbers; the canary
decision records when the canary started taking traffic (``canary_started_at``), so the A/B
report counts only the requests answered since.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from shrek.lifecycle.registry import Registry
from shrek.lifecycle.rollback import apply_deployment, rollback

if TYPE_CHECKING:
    from shrek.monitoring.ab import ABReport

logger = logging.getLogger(__name__)

PROMOTE_WHEN: tuple[str, ...] = ("not_worse", "better")
CANARY_STARTED = "canary_started_at"
PASSING_FAIRNESS: tuple[str, ...] = ("PASS", "INCONCLUSIVE")


@dataclass(frozen=True)
class PromotionPolicy:
    """When a candidate may take traffic.

    Parameters
    ----------
    margin : float, default 0.005
        nDCG@k points (absolute) by which the candidate must beat production offline.
    canary_share : float, default 0.1
        Share of users the canary answers during the canary period, 0–1 exclusive.
    canary_days : float, default 7.0
        Length of the canary period before the A/B verdict decides.
    promote_when : {"not_worse", "better"}, default "not_worse"
        ``not_worse`` promotes unless the A/B test finds the canary significantly worse (it
        already won offline); ``better`` requires it to be significantly better. Either way a
        canary whose test is not significant and has fewer requests than the power analysis
        needs is held, not promoted.
    alpha : float, default 0.05
        Significance level of the A/B test.
    mde : float, default 0.02
        Minimum detectable watch-through effect of the A/B power analysis.
    k : int, default 10
        Cut-off of the offline nDCG.
    """

    margin: float = 0.005
    canary_share: float = 0.1
    canary_days: float = 7.0
    promote_when: Literal["not_worse", "better"] = "not_worse"
    alpha: float = 0.05
    mde: float = 0.02
    k: int = 10

    def __post_init__(self) -> None:
        if not 0 <= self.margin < 1:
            raise ValueError(f"margin must be an nDCG difference in [0, 1), got {self.margin!r}")
        if not 0 < self.canary_share < 1:
            raise ValueError(
                f"canary_share must be strictly between 0 and 1, got {self.canary_share!r}"
            )
        if self.canary_days < 0:
            raise ValueError(f"canary_days must be ≥ 0, got {self.canary_days!r}")
        if self.promote_when not in PROMOTE_WHEN:
            raise ValueError(
                f"promote_when must be one of {', '.join(PROMOTE_WHEN)}, got {self.promote_when!r}"
            )


@dataclass(frozen=True)
class Decision:
    """One decision of the gate: the version, what happened and why."""

    version: str
    action: str
    status: str
    reason: str
    details: dict[str, Any]


def latest_temporal_test(data_dir: str | Path, *, test_fraction: float = 0.2) -> pd.DataFrame:
    """Each user's latest ``test_fraction`` of the ratings collected in ``data_dir``.

    Parameters
    ----------
    data_dir : str or Path
        A folder holding ``ml-100k/`` (a run's snapshot of everything collected so far).
    test_fraction : float, default 0.2

    Returns
    -------
    pandas.DataFrame
        ``[n_test, 4]`` ratings (:func:`shrek.data.temporal_split`'s test part).
    """
    from shrek.data import load_movielens_100k, temporal_split

    ratings = load_movielens_100k(data_dir, download=False).ratings
    return temporal_split(ratings, test_fraction=test_fraction)[1]


def offline_comparison(
    test: pd.DataFrame, candidate: str, production: str, *, k: int = 10
) -> dict[str, Any]:
    """nDCG@k of two store models on the same held-out ratings.

    Parameters
    ----------
    test : pandas.DataFrame
        ``[n_test, ≥ 2]`` ratings (``user_id``, ``movie_id``); the latest temporal split.
    candidate, production : str
        Model store tags.
    k : int, default 10

    Returns
    -------
    dict
        ``candidate`` and ``production`` nDCG@k, the ``n_users`` and ``n_ratings`` scored.

    Notes
    -----
    Both models are scored on the same users and ratings: test users both models know, and
    only (user, movie) pairs neither model was trained on. A user who joined after production
    was trained, or a rating the candidate saw, would otherwise favour one side.
    """
    from shrek.evaluate import evaluate_model

    models = {
        "candidate": _load_recommender(candidate),
        "production": _load_recommender(production),
    }
    common = set(models["candidate"].interactions.users.ids.tolist()) & set(
        models["production"].interactions.users.ids.tolist()
    )
    test = test[test["user_id"].isin(common)]
    pairs = pd.MultiIndex.from_frame(test[["user_id", "movie_id"]])
    seen = np.zeros(len(test), dtype=bool)
    for model in models.values():
        seen |= pairs.isin(_training_pairs(model))
    test = test[~seen]
    if test.empty:
        raise ValueError(
            f"test must hold ratings of users both models know that neither was trained on; "
            f"none of {len(pairs)} qualifies"
        )
    scores = {
        name: float(evaluate_model(model, test, k=k).summary[f"ndcg@{k}"])
        for name, model in models.items()
    }
    return {
        **scores,
        "n_users": int(test["user_id"].nunique()),
        "n_ratings": len(test),
        "k": k,
    }


def _training_pairs(model: Any) -> pd.MultiIndex:
    interactions = model.interactions
    matrix = interactions.user_items.tocoo()
    return pd.MultiIndex.from_arrays(
        [interactions.users.ids[matrix.row], interactions.items.ids[matrix.col]]
    )


def gate_candidate(
    registry: Registry,
    version: str,
    *,
    test: pd.DataFrame,
    policy: PromotionPolicy,
    run_id: str | None = None,
    started_at: datetime | None = None,
) -> Decision:
    """Decide what a newly registered candidate becomes, record it and apply it.

    Parameters
    ----------
    registry : Registry
    version : str
        A registered candidate.
    test : pandas.DataFrame
        The latest temporal split's test ratings (:func:`latest_temporal_test`).
    policy : PromotionPolicy
    run_id : str, optional
    started_at : datetime, optional
        When a canary would start taking traffic (see :func:`start_canary`).

    Returns
    -------
    Decision
        ``production`` (the first model), ``canary``, ``retired`` (rejected, with the reason)
        or ``candidate`` (held: a canary is still running).
    """
    candidate = registry.get(version)
    eligible = candidate.metrics.get("fairness_eligible", candidate.fairness in PASSING_FAIRNESS)
    if not eligible:
        reason = (
            f"rejected: the fairness gate did not pass it (verdict {candidate.fairness}, see "
            "its run's fairness.json)"
        )
        return _retire(registry, version, reason, {"fairness": candidate.fairness}, run_id)

    production = registry.production()
    if production is None:
        reason = "first model: passed the fairness gate and there is no production to compare with"
        registry.transition(
            [(version, "production")],
            action="promote",
            reason=reason,
            run_id=run_id,
            deployment=(version, version, 0.0),
        )
        apply_deployment(registry)
        return Decision(version, "promote", "production", reason, {})

    canary = registry.canary()
    if canary is not None:
        reason = f"held: canary {canary.version} is still running"
        registry.record("hold", reason, version=version, run_id=run_id)
        return Decision(version, "hold", "candidate", reason, {})

    numbers = offline_comparison(test, version, production.version, k=policy.k)
    k, new, old = policy.k, numbers["candidate"], numbers["production"]
    compared = (
        f"nDCG@{k} {new:.4f} vs production {production.version} {old:.4f} on the latest "
        f"temporal split ({numbers['n_users']} users), margin {policy.margin}"
    )
    if not new >= old + policy.margin:
        return _retire(registry, version, f"rejected: {compared}", numbers, run_id)
    reason = f"canary at {policy.canary_share:.0%} of users: {compared}"
    details = start_canary(
        registry,
        version,
        policy=policy,
        reason=reason,
        details=numbers,
        run_id=run_id,
        started_at=started_at,
    )
    return Decision(version, "canary", "canary", reason, details)


def start_canary(
    registry: Registry,
    version: str,
    *,
    policy: PromotionPolicy,
    reason: str,
    details: dict[str, Any] | None = None,
    run_id: str | None = None,
    started_at: datetime | None = None,
) -> dict[str, Any]:
    """Make ``version`` the canary beside production and write the serving files.

    Parameters
    ----------
    registry : Registry
    version : str
        A registered candidate.
    policy : PromotionPolicy
        Its ``canary_share`` is the candidate's share of users.
    reason : str
        Recorded with the decision.
    details : dict, optional
        Numbers behind the decision (the offline comparison).
    run_id : str, optional
    started_at : datetime, optional
        When the canary starts taking traffic on the run's clock; now (UTC) by default.
        Recorded as ``canary_started_at``: the A/B report counts only later requests.

    Returns
    -------
    dict
        ``details`` with ``canary_started_at`` (ISO 8601).

    Raises
    ------
    ValueError
        If there is no production version to run the canary beside.
    """
    production = registry.production()
    if production is None:
        raise ValueError(f"start_canary needs a production version; {registry.path} has none")
    started = _utc(started_at or datetime.now(UTC))
    details = {**(details or {}), CANARY_STARTED: started.isoformat()}
    registry.transition(
        [(version, "canary")],
        action="canary",
        reason=reason,
        run_id=run_id,
        details=details,
        deployment=(production.version, version, policy.canary_share),
    )
    apply_deployment(registry)
    return details


def settle_canary(
    registry: Registry, report: ABReport, *, policy: PromotionPolicy, run_id: str | None = None
) -> Decision:
    """Promote the canary to every user, roll it back or keep it, from its online A/B report.

    ========================================================  ==========================
    A/B report                                                decision
    ========================================================  ==========================
    sample-ratio mismatch (the split is broken)               rollback
    canary significantly worse                                rollback
    canary significantly better                               promote
    not significant, fewer requests than the power analysis   hold (the canary keeps
    needs for ``mde``                                         running, reason recorded)
    not significant with enough requests                      promote if ``promote_when``
                                                              is ``not_worse``, else
                                                              rollback
    ========================================================  ==========================

    Parameters
    ----------
    registry : Registry
    report : shrek.monitoring.ab.ABReport
        Control ``stable`` (production), treatment ``candidate`` (the canary).
    policy : PromotionPolicy
    run_id : str, optional

    Returns
    -------
    Decision
        ``promote`` (status ``production``), ``rollback`` (``retired``) or ``hold``
        (``canary``).

    Raises
    ------
    ValueError
        If no canary is running.
    """
    canary, production = registry.canary(), registry.production()
    deployment = registry.deployment()
    if canary is None or production is None or deployment is None:
        raise ValueError(f"settle_canary needs a running canary; {registry.path} has none")
    details = report.to_dict()
    worse = report.significant and report.difference < 0
    better = report.significant and report.difference > 0
    if not (report.srm or worse or better) and report.underpowered:
        reason = f"canary kept: the A/B test is underpowered: {report.verdict}"
        registry.record("hold", reason, version=canary.version, run_id=run_id, details=details)
        return Decision(canary.version, "hold", "canary", reason, details)
    promote = not report.srm and (better or (policy.promote_when == "not_worse" and not worse))
    if not promote:
        reason = f"rolled back after the canary period: A/B verdict: {report.verdict}"
        rollback(registry, reason=reason, run_id=run_id)
        return Decision(canary.version, "rollback", "retired", reason, details)
    reason = f"promoted to 100% after the canary period: A/B verdict: {report.verdict}"
    registry.transition(
        [
            (production.version, "retired", f"replaced by {canary.version}: {reason}"),
            (canary.version, "production"),
        ],
        action="promote",
        reason=reason,
        run_id=run_id,
        details=details,
        deployment=(deployment.stable, deployment.candidate, 1.0),
    )
    apply_deployment(registry)
    return Decision(canary.version, "promote", "production", reason, details)


def canary_started(registry: Registry) -> datetime | None:
    """When the running canary started taking traffic (UTC), if a canary is running.

    Read from its canary decision (``canary_started_at``); a canary recorded without it
    started at the data cut-off of the run that made it.
    """
    canary = registry.canary()
    if canary is None:
        return None
    decisions = registry.decisions(version=canary.version)
    made = decisions[(decisions["action"] == "canary") & (decisions["to_status"] == "canary")]
    for details in reversed(made["details"].tolist()):
        if details.get(CANARY_STARTED):
            return _utc(datetime.fromisoformat(details[CANARY_STARTED]))
    return _utc(datetime.fromisoformat(canary.cutoff)) if canary.cutoff else None


def model_cost(tag: str, *, n_users: int = 50) -> dict[str, float]:
    """Size of a store model's folder and the median in-process time of one request.

    Returns
    -------
    dict
        ``size_bytes`` and ``latency_ms`` (median over up to ``n_users`` known users, 20 movies
        each, through the service's own :class:`~shrek.serve.model.ServedModel`).
    """
    import time

    import bentoml

    from shrek.serve.model import ServedModel

    folder = Path(bentoml.models.get(tag).path)
    size = sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
    served = ServedModel(folder)
    users = served.recommender.interactions.users.ids[:n_users].tolist()
    timings = []
    for user in users:
        started = time.perf_counter()
        served.recommend(int(user))
        timings.append((time.perf_counter() - started) * 1000)
    return {"size_bytes": int(size), "latency_ms": float(np.median(timings)) if timings else 0.0}


def _retire(
    registry: Registry, version: str, reason: str, details: dict[str, Any], run_id: str | None
) -> Decision:
    registry.transition(
        [(version, "retired")], action="reject", reason=reason, run_id=run_id, details=details
    )
    return Decision(version, "reject", "retired", reason, details)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _load_recommender(tag: str) -> Any:
    import bentoml

    from shrek.models import Recommender
    from shrek.serve.export import RECOMMENDER_DIR

    return Recommender.load(Path(bentoml.models.get(tag).path) / RECOMMENDER_DIR)
