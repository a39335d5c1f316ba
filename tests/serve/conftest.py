"""Fixtures of the serving tests: a synthetic run folder, its export into a temporary BentoML
store, a real Tansu broker and a real ``bentoml serve`` process for the session."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import requests
from bentoml_process import launch, stop
from synthetic import synthetic_tables

# Before anything imports BentoML: the tests never touch ~/bentoml.
_BENTOML_HOME = tempfile.mkdtemp(prefix="shrek-bentoml-")
os.environ["BENTOML_HOME"] = _BENTOML_HOME

from shrek.config import RunConfig  # noqa: E402
from shrek.data.dataset import Dataset  # noqa: E402
from shrek.stream.broker import EmbeddedBroker, ensure_topic  # noqa: E402

logging.getLogger("kafka").setLevel(logging.WARNING)
ROOT = Path(__file__).resolve().parents[2]
ADMIN_TOKEN = "test-admin-token"
N_RATED_USERS = 80
N_USERS = 100  # users 81..100 have metadata but no ratings: LightFM answers them from it
SMALL_PARAMS = {
    "als": {"factors": 8, "iterations": 5, "regularization": 0.1, "num_threads": 1},
    "lightfm": {"no_components": 8, "epochs": 5},
}


def make_dataset(seed: int = 0) -> Dataset:
    """80 users rating 60 movies, 20 more users with metadata only; source: a Kafka topic."""
    tables = synthetic_tables(
        n_users=N_USERS,
        n_movies=60,
        n_ratings=1600,
        first_year=1970,
        seed=seed,
        n_rated_users=N_RATED_USERS,
    )
    source = {"kind": "kafka", "topic": "shrek-events", "offsets": {"0": 812, "1": 790}}
    return Dataset.from_tables(**tables, source=source)


def write_run(run_dir: Path, *, fairness: dict | None) -> Path:
    """A run folder as `shrek run` leaves it, as far as export reads it."""
    dataset = make_dataset()
    dataset.save(run_dir / "data")
    config = RunConfig(models={"popularity": {}, **SMALL_PARAMS})
    config.to_yaml(run_dir / "config.yaml")
    split_metrics = {"ndcg@10": 0.31, "precision@10": 0.2, "fit_seconds": 0.05}
    metrics = {
        "run_id": run_dir.name,
        "code_version": "abc123",
        "k": 10,
        "data_version": dataset.version.to_dict(),
        "models": {
            name: {"model": name, "params": params, "splits": {"stratified": split_metrics}}
            for name, params in SMALL_PARAMS.items()
        },
    }
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    if fairness is not None:
        (run_dir / "fairness.json").write_text(json.dumps(fairness))
    return run_dir


PASSING_GATE = {
    "gate_mode": "block",
    "split": "temporal",
    "verdicts": {"als": "PASS", "lightfm": "INCONCLUSIVE"},
    "eligible": {"als": True, "lightfm": True},
    "passed": ["als"],
    "models": {"als": {"verdict": "PASS"}, "lightfm": {"verdict": "INCONCLUSIVE"}},
}


@pytest.fixture
def make_run(tmp_path):
    """``make_run(name, fairness)``: a run folder with the given fairness.json (or none)."""
    return lambda name, fairness: write_run(tmp_path / name, fairness=fairness)


@pytest.fixture
def passing_gate() -> dict:
    return json.loads(json.dumps(PASSING_GATE))


@pytest.fixture(scope="session")
def bentoml_home() -> Path:
    yield Path(_BENTOML_HOME)
    shutil.rmtree(_BENTOML_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory) -> Path:
    return write_run(tmp_path_factory.mktemp("runs") / "run-serve", fairness=PASSING_GATE)


@pytest.fixture(scope="session")
def exported(bentoml_home, run_dir) -> dict:
    """Both models exported once for the session: model name -> ExportedModel."""
    from shrek.serve.export import export_run

    return {item.model: item for item in export_run(run_dir)}


@pytest.fixture(scope="session")
def broker():
    with EmbeddedBroker() as running:
        yield running


@pytest.fixture(scope="session")
def log_topic(broker) -> str:
    ensure_topic(broker.settings(), "shrek-serve-log", partitions=1)
    return "shrek-serve-log"


class Served:
    """A running ``bentoml serve`` and what the tests need to talk to it."""

    def __init__(
        self, url: str, canary_file: Path, process: subprocess.Popen, log_file: Path
    ) -> None:
        self.url = url
        self.canary_file = canary_file
        self.process = process
        self.log_file = log_file
        self.http = requests.Session()

    def get(self, path: str) -> requests.Response:
        return self.http.get(self.url + path, timeout=10)

    def post(self, path: str, body: dict, **headers: str) -> requests.Response:
        return self.http.post(self.url + path, json=body, headers=headers, timeout=10)

    admin_token = ADMIN_TOKEN

    def set_share(self, share: float) -> requests.Response:
        auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        return self.http.post(self.url + "/admin/canary", json={"share": share}, headers=auth)


def start_service(target: str, env: dict[str, str], log_file: Path) -> Served:
    """``bentoml serve <target>`` on a free loopback port; waits for /readyz."""
    url, process = launch(target, env, log_file)
    return Served(
        url, Path(env.get("SHREK_CANARY_CONFIG", log_file.with_suffix(".yaml"))), process, log_file
    )


def stop_service(served: Served) -> None:
    stop(served.process)


@pytest.fixture
def serve(tmp_path):
    """Start another `bentoml serve` for one test: ``serve(target, env)``; stopped after it.

    It gets a BentoML home of its own that shares the session's model store: a `bentoml serve`
    empties ``$BENTOML_HOME/prometheus_multiproc_dir`` when it starts, which would wipe the
    session service's metrics.
    """
    started = []
    home = tmp_path / "bentoml-home"
    home.mkdir()
    # The store the tests use: another suite's conftest may have picked the home.
    store = Path(os.environ["BENTOML_HOME"]) / "models"
    (home / "models").symlink_to(store, target_is_directory=True)

    def start(target: str, env: dict[str, str]) -> Served:
        env = {"BENTOML_HOME": str(home), **env}
        started.append(start_service(target, env, tmp_path / f"serve-{len(started)}.log"))
        return started[-1]

    yield start
    for served in started:
        stop_service(served)


@pytest.fixture(scope="session")
def canary_service(exported, broker, log_topic, tmp_path_factory):
    """The canary bento (ALS stable, LightFM candidate) logging to the embedded broker."""
    folder = tmp_path_factory.mktemp("canary")
    env = {
        "SHREK_STABLE_MODEL": exported["als"].tag,
        "SHREK_CANDIDATE_MODEL": exported["lightfm"].tag,
        "SHREK_CANARY_CONFIG": str(folder / "canary.yaml"),
        "SHREK_ADMIN_TOKEN": ADMIN_TOKEN,
        "SHREK_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "SHREK_REQUEST_LOG_TOPIC": log_topic,
        "SHREK_SERVER_NAME": "shrek-test",
        # One worker: the tests measure the split right after an admin call, which other
        # workers would only see at their next poll of the split file.
        "SHREK_SERVE_WORKERS": "1",
    }
    served = start_service("bentos.canary.service:ShrekCanary", env, folder / "serve.log")
    yield served
    stop_service(served)
