"""Train/test splitters.

``stratified_split`` follows the protocol of the Microsoft Recommenders MovieLens benchmark
(``python_stratified_split(data, ratio=0.75, filter_by="item", seed=42)``), so that its results
compare with the published table; ``temporal_split`` holds out each user's latest ratings, as
production does.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd


def stratified_split(
    ratings: pd.DataFrame,
    *,
    ratio: float = 0.75,
    filter_by: Literal["user", "item"] = "item",
    seed: int = 42,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split each movie's (or user's) ratings at random, ``ratio`` of them into train.

    Parameters
    ----------
    ratings : pandas.DataFrame
        The ratings table, rows in source order (``u.data`` order for MovieLens).
    ratio : float, default 0.75
        Share of each group's ratings that goes to train.
    filter_by : {"item", "user"}, default "item"
        The column whose groups are split.
    seed : int, default 42
        Seed of the random draw.

    Returns
    -------
    train, test : pandas.DataFrame
        Disjoint subsets of ``ratings`` with their original index.

    Notes
    -----
    Each row gets a uniform draw from ``numpy.random.RandomState(seed)`` in row order; within a
    group, rows sorted by their draw whose rank over the group size is at most ``ratio`` go to
    train. This is the Recommenders algorithm, so the same input order gives the same split.
    A group of ``n`` rows puts ``floor(ratio * n)`` of them in train, so a movie rated once
    goes to test only.
    """
    group = _group_column(filter_by)
    _check_ratio(ratio)
    draw = pd.Series(np.random.RandomState(seed).rand(len(ratings)), index=ratings.index)
    return _rank_split(ratings, group=group, order=draw, ratio=ratio)


def temporal_split(
    ratings: pd.DataFrame, *, test_fraction: float = 0.2
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hold out each user's latest ``test_fraction`` of ratings by timestamp.

    Parameters
    ----------
    ratings : pandas.DataFrame
        The ratings table (``user_id``, ``timestamp``, ...).
    test_fraction : float, default 0.2
        Share of each user's ratings held out, strictly between 0 and 1.

    Returns
    -------
    train, test : pandas.DataFrame
        Disjoint subsets of ``ratings``; for every user, all train ratings are no later than
        the test ones.

    Notes
    -----
    Ties in time keep source order. A user with ``n`` ratings keeps their
    ``floor((1 - test_fraction) * n)`` earliest in train; the rest, rounded up and at least
    one (the latest rating), go to test. A user with a single rating, or with so few that
    the train share rounds down to nothing, therefore has no training rating at all and is
    a new user in the test part. Every MovieLens 100K user has at least 20 ratings.
    """
    _check_ratio(1 - test_fraction, name="test_fraction", value=test_fraction)
    order = ratings["timestamp"].rank(method="first")
    return _rank_split(ratings, group="user_id", order=order, ratio=1 - test_fraction)


def _rank_split(
    ratings: pd.DataFrame, *, group: str, order: pd.Series, ratio: float
) -> tuple[pd.DataFrame, pd.DataFrame]:
    keyed = pd.DataFrame({"group": ratings[group], "order": order}, index=ratings.index)
    keyed = keyed.sort_values(["group", "order"], kind="stable")
    grouped = keyed.groupby("group", sort=False)
    share = (grouped.cumcount() + 1) / grouped["group"].transform("size")
    in_train = (share <= ratio).reindex(ratings.index)
    return ratings[in_train], ratings[~in_train]


def _group_column(filter_by: str) -> str:
    columns = {"user": "user_id", "item": "movie_id"}
    if filter_by not in columns:
        raise ValueError(f"filter_by must be one of 'user', 'item', got {filter_by!r}")
    return columns[filter_by]


def _check_ratio(ratio: float, *, name: str = "ratio", value: float | None = None) -> None:
    if not 0 < ratio < 1:
        shown = ratio if value is None else value
        raise ValueError(f"{name} must be strictly between 0 and 1, got {shown!r}")
