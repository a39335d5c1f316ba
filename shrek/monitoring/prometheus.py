"""A local Prometheus server for tests and demos, and helpers around ``monitoring/``.

:class:`PrometheusServer` runs the ``prometheus`` binary (Debian's ``prometheus`` package:
``apt-get install -y prometheus``) as a child process on a loopback port, with a scrape
config derived from ``monitoring/prometheus.yml`` and a temporary storage folder, and queries
its HTTP API. It never touches a system-wide Prometheus service.
"""

from __future__ import annotations

import copy
import logging
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import requests
import yaml

from shrek.errors import ShrekError
from shrek.stream.broker import free_port

logger = logging.getLogger(__name__)

MONITORING_DIR = Path(__file__).resolve().parents[2] / "monitoring"
SCRAPE_CONFIG = MONITORING_DIR / "prometheus.yml"
ALERT_RULES = MONITORING_DIR / "alerts.yml"
DASHBOARD = MONITORING_DIR / "grafana" / "shrek-dashboard.json"


class PrometheusError(ShrekError):
    """The Prometheus binary is missing, did not start, or rejected a query or a file."""


def find_binary(name: str = "prometheus") -> Path:
    """Path of ``prometheus`` or ``promtool``.

    Raises
    ------
    PrometheusError
        Saying how to install it when it is not on ``PATH``.
    """
    found = shutil.which(name)
    if found is None:
        raise PrometheusError(
            f"{name} is not installed: run `apt-get install -y prometheus` (Debian's package "
            "provides prometheus and promtool)"
        )
    return Path(found)


def check_rules(path: str | Path = ALERT_RULES) -> str:
    """Run ``promtool check rules`` on ``path``; return its output.

    Raises
    ------
    PrometheusError
        With promtool's message when the rules are rejected.
    """
    result = subprocess.run(
        [str(find_binary("promtool")), "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode != 0:
        raise PrometheusError(f"promtool rejected {path}: {result.stdout}{result.stderr}")
    return result.stdout


def scrape_config(
    targets: dict[str, list[str]],
    *,
    base: str | Path = SCRAPE_CONFIG,
    interval: str | None = None,
    rule_files: list[str] | None = None,
) -> dict[str, Any]:
    """``base`` with the targets of its jobs replaced.

    Parameters
    ----------
    targets : dict of str to list of str
        Job name -> ``host:port`` targets. Every job must exist in ``base``.
    base : str or Path
        A Prometheus config, ``monitoring/prometheus.yml`` by default.
    interval : str, optional
        Global scrape and evaluation interval (``"1s"`` in tests).
    rule_files : list of str, optional
        Absolute rule file paths (``base`` names them relative to itself).

    Raises
    ------
    KeyError
        For a job that ``base`` does not define, naming the jobs it has.
    """
    config = yaml.safe_load(Path(base).read_text())
    config = copy.deepcopy(config)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    for name, hosts in targets.items():
        if name not in jobs:
            raise KeyError(f"job {name!r} is not in {base}; jobs: {', '.join(sorted(jobs))}")
        jobs[name]["static_configs"] = [{"targets": list(hosts)}]
    config["scrape_configs"] = [job for name, job in jobs.items() if name in targets]
    if interval is not None:
        config.setdefault("global", {}).update(
            scrape_interval=interval, evaluation_interval=interval
        )
    base_dir = Path(base).resolve().parent
    config["rule_files"] = rule_files or [
        str((base_dir / path).resolve()) for path in config.get("rule_files", [])
    ]
    return config


class PrometheusServer:
    """``prometheus`` as a child process on a loopback port, with temporary storage.

    Parameters
    ----------
    config : dict
        The Prometheus configuration (see :func:`scrape_config`).
    port : int, optional
        Listen port; a free one when omitted.
    startup_timeout : float, default 30.0
    """

    def __init__(
        self, config: dict[str, Any], *, port: int | None = None, startup_timeout: float = 30.0
    ) -> None:
        self.config = config
        self.port = port or free_port()
        self.startup_timeout = startup_timeout
        self.url = f"http://127.0.0.1:{self.port}"
        self._folder: Path | None = None
        self._process: subprocess.Popen | None = None

    @property
    def log_file(self) -> Path | None:
        return self._folder / "prometheus.log" if self._folder else None

    def start(self) -> PrometheusServer:
        """Write the config, start the server and wait until ``/-/ready`` answers."""
        binary = find_binary()
        self._folder = Path(tempfile.mkdtemp(prefix="shrek-prometheus-"))
        config_file = self._folder / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(self.config, sort_keys=False))
        command = [
            str(binary),
            f"--config.file={config_file}",
            f"--storage.tsdb.path={self._folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--web.enable-lifecycle",
        ]
        with open(self.log_file, "wb") as output:
            self._process = subprocess.Popen(
                command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise PrometheusError(f"prometheus exited: {self.log_file.read_text()[-2000:]}")
            try:
                if requests.get(self.url + "/-/ready", timeout=1).status_code == 200:
                    logger.info("prometheus on %s (pid %d)", self.url, self._process.pid)
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.2)
        self.stop()
        raise PrometheusError(f"prometheus did not get ready on {self.url}")

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query ``expr``; the ``result`` list of ``/api/v1/query``.

        Raises
        ------
        PrometheusError
            If Prometheus rejects the query.
        """
        response = requests.get(self.url + "/api/v1/query", params={"query": expr}, timeout=10)
        body = response.json()
        if body.get("status") != "success":
            raise PrometheusError(f"query {expr!r} failed: {body.get('error', body)}")
        return body["data"]["result"]

    def series(self, metric: str) -> list[dict[str, str]]:
        """Label sets of the stored series named ``metric``."""
        response = requests.get(self.url + "/api/v1/series", params={"match[]": metric}, timeout=10)
        return response.json()["data"]

    def targets(self) -> list[dict[str, Any]]:
        """The active scrape targets with their health."""
        response = requests.get(self.url + "/api/v1/targets", timeout=10)
        return response.json()["data"]["activeTargets"]

    def rules(self) -> list[dict[str, Any]]:
        """The loaded rule groups."""
        response = requests.get(self.url + "/api/v1/rules", timeout=10)
        return response.json()["data"]["groups"]

    def wait_for(self, expr: str, *, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Query ``expr`` until it returns a non-empty result; return it.

        Raises
        ------
        PrometheusError
            If the result is still empty after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(expr)
            if result:
                return result
            if time.monotonic() >= deadline:
                raise PrometheusError(f"{expr!r} returned nothing within {timeout} s")
            time.sleep(0.5)

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and delete its storage."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
