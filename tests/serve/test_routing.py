"""The watched routing file: new model versions swapped in without a restart (issues 5 and 7)."""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from pathlib import Path

import pytest
import requests

from shrek.serve.routing import Routing, RoutingWatcher, read_routing

N_USERS = 100


def write_routing(path: Path, **routing: str) -> None:
    """Atomically, as the lifecycle writes it (a reader never sees half a file)."""
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as file:
        json.dump({**routing, "share": 0.0, "deployment": 1}, file)
    os.replace(file.name, path)


def test_read_routing_names_the_bad_field(tmp_path):
    path = tmp_path / "routing.json"
    path.write_text(json.dumps({"stable": 3}))

    with pytest.raises(ValueError, match="stable must be a model tag string, got 3"):
        read_routing(path)


def test_watcher_applies_each_change_once_and_ignores_bad_files(tmp_path):
    path = tmp_path / "routing.json"
    applied: list[Routing] = []
    watcher = RoutingWatcher(path, applied.append)

    missing = watcher.check()
    write_routing(path, stable="shrek-als:a")
    first, unchanged = watcher.check(), watcher.check()
    path.write_text("{not json")
    bad = watcher.check()
    write_routing(path, stable="shrek-als:b", candidate="shrek-lightfm:c")
    second = watcher.check()

    assert (missing, first, unchanged, bad, second) == (False, True, False, False, True)
    assert applied == [Routing("shrek-als:a"), Routing("shrek-als:b", "shrek-lightfm:c")]


def test_routing_change_swaps_models_while_the_service_keeps_answering(
    exported, run_dir, serve, tmp_path
):
    from shrek.serve.export import export_run

    (newer,) = export_run(run_dir, models=("als",))  # a version the service has not loaded
    old, candidate = exported["als"].tag, exported["lightfm"].tag
    routing = tmp_path / "routing.json"
    write_routing(routing, stable=old, candidate=candidate)
    env = {
        "SHREK_ROUTING_FILE": str(routing),
        "SHREK_ROUTING_POLL_SECONDS": "0.2",
        "SHREK_CANARY_CONFIG": str(tmp_path / "canary.yaml"),  # missing: share 0
    }
    served = serve("bentos.canary.service:ShrekCanary", env)
    answers: list[tuple[float, int, str]] = []
    stop = threading.Event()

    def client() -> None:
        with requests.Session() as http:
            user = 0
            while not stop.is_set():
                user = user % N_USERS + 1
                try:
                    response = http.get(f"{served.url}/recommend/{user}", timeout=10)
                    version = response.headers.get("X-Shrek-Model-Version", "")
                    answers.append((time.monotonic(), response.status_code, version))
                except requests.RequestException as err:
                    answers.append((time.monotonic(), 0, repr(err)))

    thread = threading.Thread(target=client, daemon=True)
    thread.start()
    while len(answers) < 50:
        time.sleep(0.05)
    switched_at = time.monotonic()
    write_routing(routing, stable=newer.tag, candidate=candidate)
    deadline = switched_at + 60  # a timeout, not a measurement
    while time.monotonic() < deadline:
        recent = [a for a in answers if a[0] > switched_at][-N_USERS:]
        if len(recent) == N_USERS and {version for _, _, version in recent} == {newer.tag}:
            break
        time.sleep(0.2)
    stop.set()
    thread.join(15)
    ready = served.get("/readyz")
    body = served.post("/recommendations", {"user_id": 7}).json()

    failed = [a for a in answers if a[1] != 200]
    assert failed == [], f"{len(failed)} of {len(answers)} requests failed, e.g. {failed[:3]}"
    assert {version for t, _, version in answers if t <= switched_at} == {old}
    assert {version for _, _, version in answers[-N_USERS:]} == {newer.tag}
    assert ready.headers["X-Shrek-Stable-Model"] == newer.tag
    assert ready.headers["X-Shrek-Candidate-Model"] == candidate
    assert body["provenance"]["model_version"] == newer.tag
