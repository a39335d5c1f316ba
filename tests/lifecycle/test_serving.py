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
from click.testing import CliRunner
from lifecycle.helpers import ROOT, START, small_config, start_service, stop_service

from shrek.lifecycle.cli import models_command
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
REGISTERED = ("model", "run_id", "data_version", "ndcg", "metrics", "fairness", "fit_seconds")
REGISTERED += ("size_bytes", "latency_ms", "cutoff")
# A scheduled run in its own process whose pipeline gives back run B's model (so it ties B
# offline and margin 0 makes it the canary), killed right after the promotion gate committed
# that decision to the registry and before the serving files were written.
KILLED_AFTER_COMMIT = """
import os, shutil, signal, sys
from datetime import UTC, datetime
from pathlib import Path

import shrek.lifecycle.promotion as promotion
from shrek.config import load_config
from shrek.lifecycle.promotion import PromotionPolicy
from shrek.lifecycle.schedule import ScheduleSettings, run_cycle

state, source, run_b, config = (Path(arg) for arg in sys.argv[1:5])


def run_b_again(config, *, run_id):
    return shutil.copytree(run_b, Path(config.reports_dir) / "runs" / run_id)


def killed(registry, **options):
    os.kill(os.getpid(), signal.SIGKILL)


promotion.apply_deployment = killed
policy = PromotionPolicy(margin=0.0)
settings = ScheduleSettings(load_config(config), state, source, policy=policy)
run_cycle(settings, now=datetime.now(UTC), pipeline=run_b_again)
"""


@pytest.fixture(scope="module")
def trained(source_dir, bentoml_home, tmp_path_factory):
    """Model A of a scheduled run and B of a run on every rating, in the store once."""
    state = tmp_path_factory.mktemp("trained")
    settings = ScheduleSettings(small_config(), state, source_dir)
    first = run_cycle(settings, now=datetime(2024, 2, 5, tzinfo=UTC), pipeline=stage_pipeline)
    registry = Registry(state)
    config = small_config()
    everything = snapshot_movielens(source_dir, state / "b", until=datetime.now(UTC))
    config.data.data_dir = str(everything)
    config.reports_dir = str(state)
    run_dir = stage_pipeline(config, run_id="run-b")
    b = export_and_register(registry, run_dir, settings=settings, run_id="run-b", now=START)
    return {"registry": registry, "a": first.version, "b": b, "run_b": run_dir}


@pytest.fixture
def world(trained, source_dir, tmp_path):
    """A lifecycle folder of its own where A was production and B was promoted over it; a
    canary service follows its serving files and answers every user with B."""
    state = tmp_path / "lifecycle"
    registry = Registry(state)
    a, b = trained["a"], trained["b"]
    for version in (a, b):
        known = trained["registry"].get(version)
        registry.register(version, **{name: getattr(known, name) for name in REGISTERED})
    registry.transition([(a, "production")], action="promote", reason="t", deployment=(a, a, 0))
    registry.transition([(b, "canary")], action="canary", reason="test", deployment=(a, b, 0.5))
    registry.transition(
        [(a, "retired"), (b, "production")],
        action="promote",
        reason="test",
        deployment=(a, b, 1.0),
    )
    apply_deployment(registry)
    served = start_service(deployment_env(registry), tmp_path / "serve.log")
    yield {
        "state": state,
        "registry": registry,
        "a": a,
        "b": b,
        "served": served,
        "settings": ScheduleSettings(small_config(), state, source_dir),
        "run_b": trained["run_b"],
    }
    stop_service(served)


def answering_versions(url: str, users: range) -> set[str]:
    with requests.Session() as http:
        return {
            http.get(f"{url}/recommend/{user}", timeout=10).headers["X-Shrek-Model-Version"]
            for user in users
        }


def wait_until_consistent(registry: Registry, url: str) -> list[str]:
    """``check_consistency`` with the service, once the service followed its files."""
    deadline = time.monotonic() + 60  # a timeout, not a measurement
    while (problems := check_consistency(registry, service_url=url)) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.5)
    return problems


def test_killing_a_scheduled_run_leaves_registry_and_serving_consistent(world, source_dir):
    registry, state = world["registry"], world["state"]
    config_file = state / "run.yaml"
    small_config().to_yaml(config_file)
    command = [sys.executable, "-m", "shrek.lifecycle.cli", "schedule", "--once"]
    command += ["--state-dir", str(state), "--data-dir", str(source_dir)]
    command += ["--config", str(config_file), "--log-file", str(state / "requests.log")]
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


def test_a_run_killed_between_its_decision_and_the_serving_files_is_recovered(
    world, source_dir, tmp_path
):
    """Issue 7: the kill lands after ``registry.transition`` committed the new canary and before
    ``apply_deployment`` wrote its serving files."""
    registry, state, url, b = world["registry"], world["state"], world["served"].url, world["b"]
    script, config_file = tmp_path / "killed_run.py", tmp_path / "run.yaml"
    script.write_text(KILLED_AFTER_COMMIT)
    small_config().to_yaml(config_file)
    arguments = [str(state), str(source_dir), str(world["run_b"]), str(config_file)]

    killed = subprocess.run(
        [sys.executable, str(script), *arguments], cwd=ROOT, capture_output=True, timeout=600
    )

    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-3000:]
    canary = registry.canary()
    assert canary is not None and registry.production().version == b
    behind = check_consistency(registry)
    assert behind and "the watched split file says None" in behind[0]
    assert answering_versions(url, range(1, 41)) == {b}  # the service still follows B's files
    listed = CliRunner().invoke(models_command, ["--state-dir", str(state)])
    assert "warning: the watched split file says None" in listed.output
    assert "`shrek models --apply` rewrites the serving files" in listed.output

    recovered = CliRunner().invoke(models_command, ["--state-dir", str(state), "--apply"])

    assert recovered.exit_code == 0 and "warning" not in recovered.output
    assert wait_until_consistent(registry, url) == []
    deadline = time.monotonic() + 30  # a timeout, not a measurement
    while (versions := answering_versions(url, range(1, N_USERS + 1))) != {b, canary.version}:
        if time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert versions == {b, canary.version}  # the canary takes its share, as the registry says
    (interrupted,) = registry.recover_interrupted()
    error = registry.runs().set_index("run_id").loc[interrupted, "error"]
    assert error.endswith("only the decisions it had committed took effect")


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
    """B is production (pair A, B loaded); C then D replace it, each a new pair. Rolling back
    twice returns to B, which the service no longer has loaded."""
    from shrek.lifecycle.rollback import rollback

    registry, url, b = world["registry"], world["served"].url, world["b"]
    c, d = (
        export_and_register(
            registry, world["run_b"], settings=world["settings"], run_id=run_id, now=START
        )
        for run_id in ("run-c", "run-d")
    )
    for old, new in ((b, c), (c, d)):  # each a new deployment the service loads by itself
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
        url, lambda: rollback(registry, reason="test: c is bad too"), b
    )

    failed = [answer for answer in answers if answer[1] != 200]
    assert failed == [], f"{len(failed)} of {len(answers)} requests failed, e.g. {failed[:3]}"
    assert {version for _, _, version in before} == {c}
    assert (result.serving, result.replaced) == (b, c)
    assert (registry.deployment().stable, registry.deployment().candidate) == (b, c)
    assert {version for _, _, version in answers[-N_USERS:]} == {b}
    assert check_consistency(registry, service_url=url) == []
    assert world["served"].process.pid == process and world["served"].process.poll() is None
