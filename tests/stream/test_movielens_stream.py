"""Issue 3 must-show: MovieLens 100K through the stream equals the directly loaded tables."""

from __future__ import annotations

import os

import pandas as pd
import pytest

from shrek.stream.job import collect_via_stream
from shrek.stream.replay import WatchModel


@pytest.mark.realdata
def test_movielens_through_kafka_equals_direct_load(kafka_settings, tmp_path):
    from shrek.data.movielens import load_movielens_100k

    if not os.environ.get("SHREK_DATA_DIR"):
        pytest.skip("SHREK_DATA_DIR is not set")
    direct = load_movielens_100k(os.environ["SHREK_DATA_DIR"], download=False)
    collected = collect_via_stream(
        direct, tmp_path, settings=kafka_settings, topic="movielens",
        watch_model=WatchModel(watch_fraction=0.0), show_progress=False,
    )  # fmt: skip
    keys = ["user_id", "movie_id"]
    pd.testing.assert_frame_equal(
        collected.ratings.sort_values(keys, ignore_index=True),
        direct.ratings.sort_values(keys, ignore_index=True),
    )
    pd.testing.assert_frame_equal(collected.users, direct.users)
    pd.testing.assert_frame_equal(
        collected.movies, direct.movies.sort_values("movie_id", ignore_index=True)
    )
