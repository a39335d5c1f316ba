"""Drive a running bento at a fixed request rate and compare with the model's in-process time.

Starts ``bentoml serve`` for one bento on a free loopback port, measures the model's
in-process ``recommend`` time for a sample of users, then sends ``GET /recommend/<user>`` at a
fixed total rate with `hey` (Debian package ``hey``: ``-q`` limits each worker's rate), several
users in parallel, and prints p50/p99 latency, throughput and the service's memory before and
after the load.

Usage (models must be in the store: ``shrek export`` first)::

    python benchmarks/bench_service.py --bento als --rate 100 --duration 30

The target is p99 under 50 ms at 100 requests/s on a 2-core machine (production limit 600 ms).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import bentoml
import numpy as np
import psutil
import requests

ROOT = Path(__file__).resolve().parent.parent
BENTOS = {
    "als": ("bentos.als.service:ShrekALS", "shrek-als:latest"),
    "lightfm": ("bentos.lightfm.service:ShrekLightFM", "shrek-lightfm:latest"),
}
USERS = (1, 42, 196, 305, 99_999)  # the last one is unknown: popularity cold start


def in_process_seconds(tag: str, users: range, *, precompute: bool = True) -> np.ndarray:
    """Seconds per ``ServedModel.recommend`` call, one per user; ``precompute=False`` times
    the model itself instead of the lookup of the lists computed at load time."""
    from shrek.serve.model import N_RECOMMENDATIONS, ServedModel

    model = ServedModel(
        bentoml.models.get(tag).path, precompute=N_RECOMMENDATIONS if precompute else 0
    )
    model.recommend(users[0])
    times = []
    for user in users:
        started = time.perf_counter()
        model.recommend(user)
        times.append(time.perf_counter() - started)
    return np.array(times)


def start(target: str, port: int, log: Path) -> subprocess.Popen:
    command = [str(Path(sys.executable).parent / "bentoml"), "serve", target]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/readyz", timeout=2).ok:
                return process
        except requests.RequestException:
            time.sleep(0.25)
    os.killpg(process.pid, signal.SIGTERM)
    raise SystemExit(f"bentoml serve did not get ready; see {log}")


def rss_mib(pid: int) -> float:
    """Resident memory of the serve process and its children, MiB."""
    parent = psutil.Process(pid)
    processes = [parent, *parent.children(recursive=True)]
    return sum(p.memory_info().rss for p in processes if p.is_running()) / 2**20


def drive(url: str, *, rate: int, duration: int, workers: int) -> tuple[np.ndarray, int]:
    """Run one `hey` per user in parallel, ``rate`` requests/s in total; response times (s)
    and the number of non-200 answers."""
    per_user = max(1, rate // len(USERS))
    per_worker = max(1, per_user // workers)
    runs = [
        subprocess.Popen(
            [
                "hey",
                "-z",
                f"{duration}s",
                "-c",
                str(workers),
                "-q",
                str(per_worker),
                "-o",
                "csv",
                f"{url}/recommend/{user}",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for user in USERS
    ]
    times, errors = [], 0
    for run in runs:
        out, _ = run.communicate()
        for row in out.splitlines()[1:]:
            fields = row.split(",")
            times.append(float(fields[0]))
            errors += fields[6] != "200"
    return np.array(times), errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bento", choices=sorted(BENTOS), default="als")
    parser.add_argument("--rate", type=int, default=100, help="Total requests per second.")
    parser.add_argument("--duration", type=int, default=30, help="Seconds of load.")
    parser.add_argument("--workers", type=int, default=2, help="hey workers per user.")
    parser.add_argument(
        "--serve-workers", type=int, default=None, help="Service processes (default: the bento's)."
    )
    args = parser.parse_args()
    if args.serve_workers is not None:
        os.environ["SHREK_SERVE_WORKERS"] = str(args.serve_workers)
    if shutil.which("hey") is None:
        raise SystemExit("the benchmark needs `hey` (apt-get install hey)")
    target, tag = BENTOS[args.bento]

    local = in_process_seconds(tag, range(1, 501)) * 1000
    computed = in_process_seconds(tag, range(1, 501), precompute=False) * 1000
    port = _free_port()
    log = Path(tempfile.mkdtemp(prefix="shrek-bench-")) / "serve.log"
    process = start(target, port, log)
    url = f"http://127.0.0.1:{port}"
    try:
        drive(url, rate=args.rate, duration=3, workers=args.workers)  # warm up
        before = rss_mib(process.pid)
        samples: list[float] = []
        stop = threading.Event()
        sampler = threading.Thread(target=_sample, args=(process.pid, samples, stop))
        sampler.start()
        started = time.perf_counter()
        times, errors = drive(url, rate=args.rate, duration=args.duration, workers=args.workers)
        elapsed = time.perf_counter() - started
        stop.set()
        sampler.join()
        after = rss_mib(process.pid)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)

    ms = times * 1000
    print(f"bento {args.bento} ({tag}), {len(USERS)} users, target {args.rate} req/s")
    for what, values in (("precomputed lookup", local), ("model", computed)):
        print(
            f"in-process recommend ({what}): p50 {np.percentile(values, 50):.3f} ms, "
            f"p99 {np.percentile(values, 99):.3f} ms"
        )
    print(
        f"HTTP: {len(ms)} requests in {elapsed:.1f} s = {len(ms) / elapsed:.1f} req/s, "
        f"{errors} errors, p50 {np.percentile(ms, 50):.2f} ms, p99 {np.percentile(ms, 99):.2f} "
        f"ms, max {ms.max():.2f} ms"
    )
    print(
        f"memory (serve tree RSS): {before:.0f} MiB before, peak {max(samples):.0f} MiB, "
        f"{after:.0f} MiB after"
    )


def _sample(pid: int, samples: list[float], stop: threading.Event) -> None:
    while not stop.wait(1.0):
        samples.append(rss_mib(pid))


def _free_port() -> int:
    from shrek.stream.broker import free_port

    return free_port()


if __name__ == "__main__":
    main()
