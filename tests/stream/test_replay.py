"""Replay: simulated watch events and the order of the stream."""

from __future__ import annotations

import numpy as np

from shrek.stream.events import parse_line
from shrek.stream.replay import WatchModel, history_lines


def test_watch_model_is_seeded_and_watches_longer_for_higher_ratings(small_dataset):
    model = WatchModel(watch_fraction=1.0, runtime_minutes=100, seed=7)
    first = model.simulate(small_dataset.ratings)
    again = model.simulate(small_dataset.ratings)
    assert first.equals(again)
    sessions = first.groupby(["user_id", "movie_id"])["minute"].count().rename("minutes")
    joined = small_dataset.ratings.set_index(["user_id", "movie_id"]).join(sessions)
    means = joined.groupby("rating")["minutes"].mean()
    assert np.all(np.diff(means.to_numpy()) > 0)


def test_watch_events_precede_their_rating(small_dataset):
    watches = WatchModel(watch_fraction=1.0, seed=1).simulate(small_dataset.ratings)
    rated = small_dataset.ratings.set_index(["user_id", "movie_id"])["timestamp"]
    last = watches.groupby(["user_id", "movie_id"])["timestamp"].max()
    assert (last < rated.loc[last.index]).all()


def test_history_lines_are_parseable_and_in_timestamp_order(small_dataset):
    lines, keys, n_rates, n_watches = history_lines(small_dataset, watch_model=WatchModel(0.5))
    events = [parse_line(line) for line in lines]
    stamps = [e.timestamp for e in events]
    assert stamps == sorted(stamps)
    assert len(lines) == n_rates + n_watches and n_rates == len(small_dataset.ratings)
    assert keys[0] == str(events[0].user_id).encode()
