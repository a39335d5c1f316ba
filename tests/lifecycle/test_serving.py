"""The serving model under crashes and rollbacks, against a real `bentoml serve` (issue 7)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime

import pytest
import requests
from lifecycle.helpers import ROOT, START, small_config, start_service, stop_service

from shrek.lifecycle.registry import Registry
from shrek.lifecycle.rollback import apply_deployment, check_consistency, deployment_env
from shrek.lifecycle.schedule import (
    ScheduleSettings,
    export_and_register,
    run_cycle,
    snapshot_movielens,
    stage_pipeline,
)

N_USERS = 120


@pytest.fixture(scope="module")
def world(source_dir, bentoml_home, tmp_path_factory):
    """Model A was production, B was promoted over it; the canary service serves B to all."""
    state = tmp_path_factory.mktemp("lifecycle")
    settings = ScheduleSettings(small_config(), state, source_dir)
    first = run_cycle(settings, now=datetime(2024, 2, 5, tzinfo=UTC), pipeline=stage_pipeline)
    registry = Registry(state)
    a = first.version

    config = small_config()
    config.data.data_dir = str(snapshot_movielens(source_dir, state / "b", until=START.now(UTC)))
    config.reports_dir = str(state)
    run_dir = stage_pipeline(config, run_id="run-b")
    b = export_and_register(registry, run_dir, settings=settings, run_id="run-b", now=START)
    registry.transition([(b, "canary")], action="canary", reason="test", deployment=(a, b, 0.5))
    registry.transition(
        [(a, "retired"), (b, "production")],
        action="promote",
        reason="test",
        deployment=(a, b, 1.0),
    )
    apply_deployment(registry)
    served = start_service(deployment_env(registry), state / "serve.log")
    yield {
        "state": state,
        "registry": registry,
        "a": a,
        "b": b,
        "served": served,
        "settings": settings,
        "run_b": run_dir,
    }
    stop_service(served)


def answering_versions(url: str, users: range) -> set[str]:
    with requests.Session() as http:
        return {
            http.get(f"{url}/recommend/{user}", timeout=10).headers["X-Shrek-Model-Version"]
            for user in users
        }


def test_killing_a_scheduled_run_leaves_registry_and_serving_consistent(world, source_dir):
    registry, state = world["registry"], world["state"]
    config_file = state / "run.yaml"
    small_config().to_yaml(config_file)
    command = [sys.executable, "-m", "shrek.lifecycle.cli", "schedule", "--once"]
    command += ["--state-dir", str(state), "--data-dir", str(source_dir)]
    command += ["--config", str(config_file)]
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            running = registry.runs().query("status == 'running'")
            executed = [
                path
                for run_id in running["run_id"]
                for path in (state / "runs" / run_id / "notebooks").glob("*.ipynb")
            ]
            if executed:  # papermill is executing the pipeline: kill everything mid-way
                break
            time.sleep(0.2)
        assert process.poll() is None, "the scheduled run ended before it could be killed"
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    assert registry.production().version == world["b"]
    assert registry.canary() is None
    assert check_consistency(registry, service_url=world["served"].url) == []
    assert answering_versions(world["served"].url, range(1, 41)) == {world["b"]}
    (interrupted,) = registry.recover_interrupted()
    error = registry.runs().set_index("run_id").loc[interrupted, "error"]
    assert error.startswith("interrupted: the process running it died")


def while_answering(url: str, change, expected: str) -> tuple[list, list, object]:
    """Run ``change()`` while a client loop asks ``url``; wait (up to a timeout) until the
    last ``N_USERS`` answers all come from ``expected``.

    Returns
    -------
    tuple of (list, list, object)
        ``(time, status, model version)`` before and after the change, and what it returned.
    """
    answers: list[tuple[float, int, str]] = []
    stop = threading.Event()

    def client() -> None:
        with requests.Session() as http:
            user = 0
            while not stop.is_set():
                user = user % N_USERS + 1
                try:
                    response = http.get(f"{url}/recommend/{user}", timeout=10)
                    version = response.headers.get("X-Shrek-Model-Version", "")
                    answers.append((time.monotonic(), response.status_code, version))
                except requests.RequestException as err:
                    answers.append((time.monotonic(), 0, repr(err)))

    thread = threading.Thread(target=client, daemon=True)
    thread.start()
    time.sleep(1.0)
    switched_at = time.monotonic()
    result = change()
    deadline = switched_at + 60  # a timeout, not a measurement
    while time.monotonic() < deadline:
        recent = [a for a in answers if a[0] > switched_at][-N_USERS:]
        if len(recent) == N_USERS and {version for _, _, version in recent} == {expected}:
            break
        time.sleep(0.2)
    stop.set()
    thread.join(15)
    before = [a for a in answers if a[0] <= switched_at]
    return before, answers, result


def test_rollback_switches_traffic_while_the_service_keeps_answering(world):
    from shrek.lifecycle.rollback import rollback

    registry, url = world["registry"], world["served"].url
    before, answers, result = while_answering(
        url, lambda: rollback(registry, reason="test: bad online numbers"), world["a"]
    )

    failed = [a for a in answers if a[1] != 200]
    assert before and {version for _, _, version in before} == {world["b"]}
    assert failed == [], f"{len(failed)} of {len(answers)} requests failed, e.g. {failed[:3]}"
    assert (result.serving, result.replaced) == (world["a"], world["b"])
    assert {version for _, _, version in answers[-N_USERS:]} == {world["a"]}
    assert registry.production().version == world["a"]
    assert registry.get(world["b"]).status == "retired"
    assert check_consistency(registry, service_url=url) == []
    assert registry.table().loc[world["b"], "reason"] == "test: bad online numbers"


def test_rollback_beyond_the_loaded_pair_loads_the_version_without_a_restart(world):
    from shrek.lifecycle.rollback import rollback

    registry, url, a = world["registry"], world["served"].url, world["a"]
    c, d = (
        export_and_register(
            registry, world["run_b"], settings=world["settings"], run_id=run_id, now=START
        )
        for run_id in ("run-c", "run-d")
    )
    for old, new in ((a, c), (c, d)):  # each a new deployment the service loads by itself
        registry.transition(
            [(new, "canary")], action="canary", reason="t", deployment=(old, new, 0.5)
        )
        registry.transition(
            [(old, "retired"), (new, "production")],
            action="promote",
            reason="t",
            deployment=(old, new, 1.0),
        )
        apply_deployment(registry)
    process = world["served"].process.pid
    rollback(registry, reason="test: d is bad")  # to c, loaded: the split moves
    deadline = time.monotonic() + 60  # a timeout, not a measurement
    while answering_versions(url, range(1, 41)) != {c} and time.monotonic() < deadline:
        time.sleep(0.5)

    before, answers, result = while_answering(
        url, lambda: rollback(registry, reason="test: c is bad too"), a
    )

    failed = [answer for answer in answers if answer[1] != 200]
    assert failed == [], f"{len(failed)} of {len(answers)} requests failed, e.g. {failed[:3]}"
    assert {version for _, _, version in before} == {c}
    assert (result.serving, result.replaced) == (a, c)
    assert (registry.deployment().stable, registry.deployment().candidate) == (a, c)
    assert {version for _, _, version in answers[-N_USERS:]} == {a}
    assert check_consistency(registry, service_url=url) == []
    assert world["served"].process.pid == process and world["served"].process.poll() is None
