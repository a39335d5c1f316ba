"""Helpers of the lifecycle tests: a small MovieLens-format folder spread over ten weeks and a
real ``bentoml serve`` of the canary bento."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from bentoml_process import launch, stop

from shrek.config import RunConfig

ROOT = Path(__file__).resolve().parents[2]
START = datetime(2024, 1, 1, tzinfo=UTC)
N_USERS, N_MOVIES, N_RATINGS, N_WEEKS = 120, 80, 3000, 10
GENRES = ["unknown", "Action", "Comedy", "Drama"]
SMALL_ALS = {"factors": 8, "iterations": 3, "regularization": 0.1, "num_threads": 1}


def write_ml100k(folder: Path, *, seed: int = 0) -> Path:
    """A folder holding ``ml-100k/`` in MovieLens 100K's formats, ratings over 10 weeks."""
    rng = np.random.default_rng(seed)
    target = folder / "ml-100k"
    target.mkdir(parents=True, exist_ok=True)
    occupations = ["student", "writer", "doctor"]
    (target / "u.occupation").write_text("\n".join(occupations) + "\n")
    (target / "u.genre").write_text("".join(f"{g}|{i}\n" for i, g in enumerate(GENRES)) + "\n")
    users = [
        f"{u}|{rng.integers(18, 70)}|{rng.choice(['M', 'F'])}|{rng.choice(occupations)}|"
        f"{rng.integers(10000, 99999)}\n"
        for u in range(1, N_USERS + 1)
    ]
    (target / "u.user").write_text("".join(users))
    items = []
    for i in range(1, N_MOVIES + 1):
        year = 1970 + i % 30
        flags = ["0"] * len(GENRES)
        flags[1 + i % 3] = "1"
        items.append(
            f"{i}|Movie {i} ({year})|01-Jan-{year}||http://imdb.example/{i}|{'|'.join(flags)}\n"
        )
    (target / "u.item").write_text("".join(items), encoding="latin-1")
    pairs = rng.choice(N_USERS * N_MOVIES, N_RATINGS, replace=False)
    popularity = 1 + (pairs % N_MOVIES) % 7  # some structure for the models to find
    ratings = np.clip(rng.integers(1, 6, N_RATINGS) + (popularity > 4), 1, 5)
    start = int(START.timestamp())
    times = start + rng.integers(0, 86_400 * 7 * N_WEEKS, N_RATINGS)
    lines = [
        f"{p // N_MOVIES + 1}\t{p % N_MOVIES + 1}\t{r}\t{t}\n"
        for p, r, t in zip(pairs, ratings, times, strict=True)
    ]
    (target / "u.data").write_text("".join(lines))
    return folder


def small_config() -> RunConfig:
    """Popularity and a tiny ALS; fairness on both with a short bootstrap."""
    config = RunConfig()
    config.models = {"popularity": {}, "als": dict(SMALL_ALS)}
    config.fairness.models = ["popularity", "als"]
    config.fairness.n_boot = 50
    return config


class Served:
    """A running ``bentoml serve`` process."""

    def __init__(self, url: str, process: subprocess.Popen, log_file: Path) -> None:
        self.url = url
        self.process = process
        self.log_file = log_file


def start_service(env: dict[str, str], log_file: Path) -> Served:
    """``bentoml serve`` of the canary bento on a free loopback port; waits for /readyz."""
    url, process = launch("bentos.canary.service:ShrekCanary", env, log_file)
    return Served(url, process, log_file)


def stop_service(served: Served) -> None:
    stop(served.process)
