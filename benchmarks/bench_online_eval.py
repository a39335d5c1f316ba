"""Online evaluation throughput beside a bare pandas ``merge_asof`` join on the same data.

Run: ``python benchmarks/bench_online_eval.py [--requests 50000] [--events 1000000]``. Builds
a synthetic log (each request lists 20 of 2,000 movies; watch events of the same users, some
of recommended movies) and times, best of 3:

- bare: explode the lists, ``pd.merge_asof`` forward by (user, movie) within the window, and
  the watch-through per variant (what a hand-written notebook cell would do);
- shrek: :func:`shrek.monitoring.online.join_outcomes` + :func:`online_metrics` (hit
  position, first hit by time, personalization, per variant and model version).

Prints requests/s of each and their ratio. Both give the same watch-through (checked).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from shrek.monitoring.online import events_frame, join_outcomes, online_metrics, requests_frame


def synthetic_log(n_requests: int, n_events: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    n_users, n_movies = max(1, n_requests // 3), 2000
    movies = np.array([f"movie+{i}" for i in range(n_movies)], dtype=object)
    start = np.datetime64("2026-03-01T00:00:00", "ns")
    request_times = start + np.sort(rng.integers(0, 7 * 86_400, n_requests)).astype(
        "timedelta64[s]"
    )
    users = rng.integers(1, n_users + 1, n_requests)
    lists = [tuple(movies[rng.choice(n_movies, 20, replace=False)]) for _ in range(n_requests)]
    variants = np.where(users % 2 == 0, "stable", "candidate")
    requests = requests_frame(
        list(
            zip(
                request_times,
                users,
                lists,
                [200] * n_requests,
                [40] * n_requests,
                variants,
                np.where(variants == "stable", "als:1", "lfm:1"),
                strict=True,
            )
        )
    )
    source = rng.integers(0, n_requests, n_events)
    recommended = rng.random(n_events) < 0.3
    movie = np.where(
        recommended,
        [lists[s][k] for s, k in zip(source, rng.integers(0, 20, n_events), strict=True)],
        movies[rng.integers(0, n_movies, n_events)],
    )
    delay = rng.integers(-3600, 3 * 3600, n_events).astype("timedelta64[s]")
    events = events_frame(
        list(
            zip(
                request_times[source] + delay,
                users[source],
                movie,
                ["watch"] * n_events,
                rng.integers(0, 100, n_events),
                strict=True,
            )
        )
    )
    return requests, events


def bare(requests: pd.DataFrame, events: pd.DataFrame, window: pd.Timedelta) -> pd.Series:
    lists = requests.assign(request_id=requests.index).explode("movie_ids")
    lists = lists.rename(columns={"movie_ids": "movie_id"}).astype({"movie_id": object})
    lists = lists.sort_values("timestamp")
    right = events.rename(columns={"timestamp": "event_time"}).astype({"movie_id": object})
    right = right.sort_values("event_time")
    joined = pd.merge_asof(
        lists,
        right[["event_time", "user_id", "movie_id"]],
        left_on="timestamp",
        right_on="event_time",
        by=["user_id", "movie_id"],
        direction="forward",
        tolerance=window,
    )
    hit = joined.groupby("request_id")["event_time"].count() > 0
    return hit.groupby(requests.loc[hit.index, "variant"]).mean()


def shrek(requests: pd.DataFrame, events: pd.DataFrame, window: pd.Timedelta) -> pd.Series:
    table = online_metrics(join_outcomes(requests, events, window=window))
    return table.set_index("variant")["watch_through"]


def best_of(function, *args, repeat: int = 3) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = function(*args)
        times.append(time.perf_counter() - started)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()
    requests, events = synthetic_log(args.requests, args.events)
    window = pd.Timedelta("1h")

    bare_s, bare_result = best_of(bare, requests, events, window)
    shrek_s, shrek_result = best_of(shrek, requests, events, window)
    same = np.allclose(bare_result.sort_index(), shrek_result.sort_index())

    print(f"{args.requests} requests x 20 ids, {args.events} watch events, window {window}")
    print(f"bare merge_asof : {bare_s:7.3f} s  {args.requests / bare_s:12,.0f} requests/s")
    print(f"shrek           : {shrek_s:7.3f} s  {args.requests / shrek_s:12,.0f} requests/s")
    print(f"ratio shrek/bare throughput: {bare_s / shrek_s:.2f}; same watch-through: {same}")


if __name__ == "__main__":
    main()
