"""The validation split the tuning scores on, carved from the training part only.

The test part of a split is never an input here: :func:`tuning_data` takes the training ratings
and splits them again, with the same stratified splitter, into a part the candidate models are
fitted on and a validation part they are scored on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import pandas as pd

from shrek.data import Dataset, stratified_split
from shrek.models import Interactions

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TuningData:
    """What every trial of a study needs: fit ratings, validation ratings and metadata.

    Attributes
    ----------
    fit : pandas.DataFrame
        Ratings the candidates are fitted on, a subset of the training part.
    valid : pandas.DataFrame
        Held-out ratings the candidates are scored on, the rest of the training part.
    interactions : Interactions
        ``fit`` as a matrix [n_users, n_items], built once for all trials.
    users, movies : pandas.DataFrame
        Metadata tables (for LightFM's features).
    seed : int
        Seed of the validation draw.
    """

    fit: pd.DataFrame
    valid: pd.DataFrame
    interactions: Interactions
    users: pd.DataFrame | None = None
    movies: pd.DataFrame | None = None
    seed: int = 7


def validation_split(
    train: pd.DataFrame,
    *,
    ratio: float = 0.75,
    filter_by: Literal["user", "item"] = "item",
    seed: int = 7,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split a training part into a fit part and a validation part.

    Parameters
    ----------
    train : pandas.DataFrame
        The training ratings of a split (``user_id``, ``movie_id``, ``rating``, ...).
    ratio : float, default 0.75
        Share of each movie's (or user's) training ratings kept for fitting.
    filter_by : {"item", "user"}, default "item"
        Stratify by movie (the Recommenders protocol) or by user.
    seed : int, default 7
        Seed of the draw; differs from the outer split's 42 so the two draws are unrelated.

    Returns
    -------
    fit, valid : pandas.DataFrame
        Disjoint subsets of ``train`` (original index kept) whose union is ``train``;
        validation rows of users or movies absent from ``fit`` are dropped.
    """
    fit, valid = stratified_split(train, ratio=ratio, filter_by=filter_by, seed=seed)
    known = valid["user_id"].isin(fit["user_id"]) & valid["movie_id"].isin(fit["movie_id"])
    if not known.all():
        logger.debug("dropping %d validation rows of ids absent from fit", int((~known).sum()))
    return fit, valid[known]


def tuning_data(
    train: pd.DataFrame,
    *,
    dataset: Dataset | None = None,
    ratio: float = 0.75,
    filter_by: Literal["user", "item"] = "item",
    seed: int = 7,
) -> TuningData:
    """The :class:`TuningData` of a training part (see :func:`validation_split`).

    Parameters
    ----------
    train : pandas.DataFrame
        The training ratings of the outer split; its test part is not an argument on purpose.
    dataset : Dataset, optional
        Supplies the users and movies tables for LightFM's features.
    ratio, filter_by, seed
        Passed to :func:`validation_split`.
    """
    if len(train) == 0:
        raise ValueError("train must hold at least one rating, got an empty table")
    fit, valid = validation_split(train, ratio=ratio, filter_by=filter_by, seed=seed)
    logger.info("validation split: %d fit ratings, %d validation ratings", len(fit), len(valid))
    return TuningData(
        fit=fit,
        valid=valid,
        interactions=Interactions(fit),
        users=None if dataset is None else dataset.users,
        movies=None if dataset is None else dataset.movies,
        seed=seed,
    )
