"""Fixtures of the monitoring tests: a hand-made log, a real Tansu broker, models exported to a
temporary BentoML store, real ``bentoml serve`` processes and a real Prometheus server.

The service start-up mirrors ``tests/serve/conftest.py`` (copied, not imported: importing
another conftest would set a second BentoML home).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests
from bentoml_process import launch, stop
from synthetic import synthetic_tables

# Before anything imports BentoML: the tests never touch ~/bentoml. When tests/serve runs in
# the same session its conftest picks the home; both suites then share one temporary store.
_OWN_BENTOML_HOME = None
if "BENTOML_HOME" not in os.environ:
    _OWN_BENTOML_HOME = tempfile.mkdtemp(prefix="shrek-bentoml-monitoring-")
    os.environ["BENTOML_HOME"] = _OWN_BENTOML_HOME

from shrek.config import RunConfig  # noqa: E402
from shrek.data.dataset import Dataset  # noqa: E402
from shrek.stream.broker import EmbeddedBroker  # noqa: E402

logging.getLogger("kafka").setLevel(logging.WARNING)
ROOT = Path(__file__).resolve().parents[2]
PASSING_GATE = {
    "gate_mode": "block",
    "verdicts": {"als": "PASS", "lightfm": "PASS"},
    "eligible": {"als": True, "lightfm": True},
    "passed": ["als", "lightfm"],
    "models": {"als": {"verdict": "PASS"}, "lightfm": {"verdict": "PASS"}},
}


# The hand-made log of test_online.py; the expected values are worked out in its docstring.
def _request(stamp: str, user: int, result: str, variant: str, status: int = 200) -> str:
    version = {"stable": "als:1", "candidate": "lfm:1"}[variant]
    return (
        f"2026-03-01T{stamp}.000,{user},recommendation request api:8082, status {status}, "
        f"result: {result}, 40 ms | variant={variant} model_version={version}"
    )


HAND_LOG = [
    _request("18:00:00", 1, "a+1, b+2, c+3", "stable"),
    "2026-03-01T18:05:00,1,GET /data/m/b+2/0.mpg",
    "2026-03-01T18:06:00,1,GET /data/m/b+2/1.mpg",
    _request("18:10:00", 2, "a+1, b+2, c+3", "candidate"),
    "2026-03-01T18:15:00,2,GET /data/m/x+9/0.mpg",
    _request("18:20:00", 3, "c+3, d+4, e+5", "stable"),
    "2026-03-01T18:25:00,3,GET /data/m/a+1/0.mpg",
    "2026-03-01T18:29:00,4,GET /data/m/d+4/0.mpg",
    "2026-03-01T18:30:00,3,GET /data/m/e+5/0.mpg",
    _request("18:30:00", 4, "d+4, e+5, f+6", "candidate"),
    "2026-03-01T18:40:00,3,GET /data/m/d+4/0.mpg",
    _request("18:45:00", 1, "a+1, b+2, c+3", "stable"),
    "2026-03-01T18:50:00,4,GET /rate/f+6=5",
    _request("18:50:00", 5, "", "candidate", status=500),
    "2026-03-01T19:00:00,1,GET /data/m/c+3/0.mpg",
    "2026-03-01T20:00:00,2,GET /data/m/a+1/0.mpg",
    "this line is junk",
]


@pytest.fixture
def hand_log_lines() -> list[str]:
    return list(HAND_LOG)


@pytest.fixture(scope="session")
def broker():
    """The embedded Tansu broker, a real process, for the whole session."""
    with EmbeddedBroker() as running:
        yield running


@pytest.fixture(scope="session", autouse=True)
def _own_bentoml_home():
    yield
    if _OWN_BENTOML_HOME:
        import shutil

        shutil.rmtree(_OWN_BENTOML_HOME, ignore_errors=True)


def synthetic_dataset(seed: int = 0, n_users: int = 60, n_movies: int = 40) -> Dataset:
    """``n_users`` users rating ``n_movies`` movies; timestamps over 30 days of 2023."""
    tables = synthetic_tables(
        n_users=n_users,
        n_movies=n_movies,
        n_ratings=n_users * n_movies // 3,
        first_year=1980,
        seed=seed,
    )
    return Dataset.from_tables(**tables, source={"kind": "synthetic", "seed": seed})


def write_run(run_dir: Path, dataset: Dataset, params: dict[str, dict]) -> Path:
    """A run folder as far as :func:`shrek.serve.export.export_run` reads it."""
    dataset.save(run_dir / "data")
    RunConfig(models={"popularity": {}, **params}).to_yaml(run_dir / "config.yaml")
    metrics = {
        "run_id": run_dir.name,
        "code_version": "test",
        "k": 10,
        "data_version": dataset.version.to_dict(),
        "models": {name: {"model": name, "params": p, "splits": {}} for name, p in params.items()},
    }
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    (run_dir / "fairness.json").write_text(json.dumps(PASSING_GATE))
    return run_dir


def export(run_dir: Path) -> dict:
    """Export ALS and LightFM of ``run_dir``: model name -> ExportedModel."""
    from shrek.serve.export import export_run

    return {item.model: item for item in export_run(run_dir)}


class Served:
    """A running ``bentoml serve``."""

    def __init__(self, url: str, port: int, process: subprocess.Popen, log_file: Path) -> None:
        self.url = url
        self.port = port
        self.process = process
        self.log_file = log_file
        self.http = requests.Session()

    def get(self, path: str) -> requests.Response:
        return self.http.get(self.url + path, timeout=10)


def start_service(target: str, env: dict[str, str], log_file: Path) -> Served:
    """``bentoml serve <target>`` on a free loopback port; waits for /readyz."""
    url, process = launch(target, env, log_file)
    return Served(url, int(url.rsplit(":", 1)[1]), process, log_file)


def stop_service(served: Served) -> None:
    stop(served.process)


def canary_env(exported: dict, *, broker, topic: str, share: float, candidate: str) -> dict:
    """Environment of a canary service: ALS stable, ``candidate`` on ``share`` of users."""
    return {
        "SHREK_STABLE_MODEL": exported["als"].tag,
        "SHREK_CANDIDATE_MODEL": exported[candidate].tag,
        "SHREK_CANARY_SHARE": str(share),
        "SHREK_CANARY_CONFIG": "",
        "SHREK_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "SHREK_REQUEST_LOG_TOPIC": topic,
        "SHREK_SERVER_NAME": "shrek-monitoring-test",
    }


@pytest.fixture
def serve(tmp_path):
    """``serve(target, env)`` starts a `bentoml serve` for one test; stopped after it."""
    started = []

    def start(target: str, env: dict[str, str]) -> Served:
        started.append(start_service(target, env, tmp_path / f"serve-{len(started)}.log"))
        return started[-1]

    yield start
    for served in started:
        stop_service(served)


@pytest.fixture(scope="session")
def stack() -> SimpleNamespace:
    """The helpers above, for test modules (``conftest`` is not importable by name here)."""
    return SimpleNamespace(
        synthetic_dataset=synthetic_dataset,
        write_run=write_run,
        export=export,
        start_service=start_service,
        stop_service=stop_service,
        canary_env=canary_env,
    )
