"""Start and stop a real ``bentoml serve`` for the tests of serve, monitoring and lifecycle."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from shrek.stream.broker import free_port

ROOT = Path(__file__).resolve().parent.parent


def launch(target: str, env: dict[str, str], log_file: Path) -> tuple[str, subprocess.Popen]:
    """``bentoml serve <target>`` on a free loopback port, once ``/readyz`` answers.

    Returns
    -------
    url : str
        ``http://127.0.0.1:<port>``.
    process : subprocess.Popen
        The server, leader of its own process group (see :func:`stop`).
    """
    port = free_port()
    command = [str(Path(sys.executable).parent / "bentoml"), "serve", target]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    with open(log_file, "wb") as output:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"bentoml serve exited: {log_file.read_text()[-3000:]}")
        try:
            if requests.get(url + "/readyz", timeout=2).status_code == 200:
                return url, process
        except requests.RequestException:
            pass
        time.sleep(0.25)
    stop(process)
    raise RuntimeError(f"bentoml serve did not get ready: {log_file.read_text()[-3000:]}")


def stop(process: subprocess.Popen) -> None:
    """SIGTERM the server's process group, SIGKILL after 20 s."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass
