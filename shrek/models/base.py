"""The interface every Shrek recommender implements, and the id mapping they share."""

from __future__ import annotations

import json
import logging
import pickle
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd
import scipy.sparse as sp

import shrek

logger = logging.getLogger(__name__)

MODEL_FILE = "model.pkl"
META_FILE = "model.json"


class IdMap:
    """A two-way mapping between external ids and the rows or columns of a matrix.

    Parameters
    ----------
    ids : sequence of int or str
        The external ids, unique. The order given is kept: ``ids[i]`` maps to index ``i``
        (nothing is sorted here).

    Raises
    ------
    ValueError
        An id occurs more than once.
    """

    def __init__(self, ids: Sequence[Any]) -> None:
        self.ids = np.asarray(list(ids), dtype=object if _is_text(ids) else np.int64)
        self._index = pd.Index(self.ids)
        if not self._index.is_unique:
            raise ValueError(f"ids must be unique, got {len(ids) - self._index.nunique()} repeats")

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, id_: Any) -> bool:
        return id_ in self._index

    def to_index(self, ids: Sequence[Any], *, missing: int | None = None) -> np.ndarray:
        """Indices of ``ids``; unknown ids raise ``KeyError`` unless ``missing`` is given."""
        index = self._index.get_indexer(list(ids))
        unknown = index < 0
        if unknown.any():
            if missing is None:
                first = list(ids)[int(np.flatnonzero(unknown)[0])]
                raise KeyError(f"unknown id {first!r} ({int(unknown.sum())} unknown in all)")
            index[unknown] = missing
        return index

    def to_ids(self, index: np.ndarray) -> np.ndarray:
        """External ids of ``index`` (any shape)."""
        return self.ids[np.asarray(index)]


class Interactions:
    """A users × items matrix built from a ratings table, with both id maps.

    Parameters
    ----------
    ratings : pandas.DataFrame
        Columns ``user_id``, ``movie_id``, ``rating``; one row per (user, movie) pair.
    users, items : IdMap, optional
        Fixed id spaces; by default the users and movies that occur in ``ratings``, sorted
        by id.

    Attributes
    ----------
    user_items : scipy.sparse.csr_matrix, shape [n_users, n_items]
        The rating of each user for each movie (0 where none).

    Raises
    ------
    ValueError
        A (user_id, movie_id) pair occurs more than once: the matrix would add the ratings
        up (4 + 5 = 9), so Shrek refuses instead; keep one rating per pair first.
    """

    def __init__(
        self,
        ratings: pd.DataFrame,
        *,
        users: IdMap | None = None,
        items: IdMap | None = None,
    ) -> None:
        _check_one_rating_per_pair(ratings)
        self.users = IdMap(np.sort(ratings["user_id"].unique())) if users is None else users
        self.items = IdMap(np.sort(ratings["movie_id"].unique())) if items is None else items
        rows = self.users.to_index(ratings["user_id"])
        cols = self.items.to_index(ratings["movie_id"])
        values = ratings["rating"].to_numpy(dtype=np.float32)
        shape = (len(self.users), len(self.items))
        self.user_items = sp.csr_matrix((values, (rows, cols)), shape=shape, dtype=np.float32)

    @property
    def shape(self) -> tuple[int, int]:
        return self.user_items.shape


class Recommender(ABC):
    """A top-N recommender over the movies it was trained on.

    Subclasses set ``name``, take their hyperparameters as keyword-only constructor
    arguments, and implement :meth:`_fit` and :meth:`_recommend`.
    """

    name: ClassVar[str]

    def __init__(self) -> None:
        self.interactions: Interactions | None = None

    def get_params(self) -> dict[str, Any]:
        """The constructor keywords of this model."""
        return dict(self._params)

    def fit(
        self,
        interactions: Interactions,
        *,
        users: pd.DataFrame | None = None,
        movies: pd.DataFrame | None = None,
        show_progress: bool = False,
    ) -> Self:
        """Fit on a users × items matrix.

        Parameters
        ----------
        interactions : Interactions
            Training ratings, ``user_items`` of shape [n_users, n_items].
        users, movies : pandas.DataFrame, optional
            Metadata tables; used by models with side features.
        show_progress : bool, default False
            Show a progress bar.
        """
        self.interactions = interactions
        self._fit(interactions, users=users, movies=movies, show_progress=show_progress)
        return self

    def recommend(
        self,
        user_ids: Sequence[int],
        *,
        N: int = 10,
        filter_already_seen: bool = True,
    ) -> pd.DataFrame:
        """Top-``N`` movies for a batch of known users.

        Parameters
        ----------
        user_ids : sequence of int
            Users seen in training.
        N : int, default 10
            Length of each list.
        filter_already_seen : bool, default True
            Leave out movies the user rated in training.

        Returns
        -------
        pandas.DataFrame
            Columns ``user_id``, ``movie_id``, ``score``, ``rank`` (1 = best), ``N`` rows per
            user (fewer when fewer movies are left).

        Raises
        ------
        KeyError
            A user id was not in the training data.
        """
        interactions = self._fitted()
        if N < 1:
            raise ValueError(f"N must be a positive integer, got {N!r}")
        userids = interactions.users.to_index(user_ids)
        seen = interactions.user_items[userids] if filter_already_seen else None
        items, scores = self._recommend(userids, seen=seen, N=N)
        return recommendations_frame(np.asarray(user_ids), items, scores, interactions.items)

    def save(self, folder: str | Path) -> Path:
        """Write the model into ``folder`` (pickle plus a JSON description).

        Notes
        -----
        Pickles run code when loaded: load only models you wrote.
        """
        self._fitted()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / MODEL_FILE, "wb") as file:
            pickle.dump(self, file, protocol=pickle.HIGHEST_PROTOCOL)
        meta = {
            "name": self.name,
            "params": self.get_params(),
            "n_users": self.interactions.shape[0],
            "n_items": self.interactions.shape[1],
            "shrek_version": shrek.__version__,
            "code_version": shrek.code_version(),
        }
        (folder / META_FILE).write_text(json.dumps(meta, indent=2, default=str))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> Recommender:
        """Read a model written by :meth:`save`."""
        with open(Path(folder) / MODEL_FILE, "rb") as file:
            model = pickle.load(file)
        if not isinstance(model, cls):
            raise TypeError(f"{folder} holds a {type(model).__name__}, not a {cls.__name__}")
        return model

    def _fitted(self) -> Interactions:
        if self.interactions is None:
            raise ValueError(f"{type(self).__name__} is not fitted; call fit() first")
        return self.interactions

    @abstractmethod
    def _fit(
        self,
        interactions: Interactions,
        *,
        users: pd.DataFrame | None,
        movies: pd.DataFrame | None,
        show_progress: bool,
    ) -> None: ...

    @abstractmethod
    def _recommend(
        self, userids: np.ndarray, *, seen: sp.csr_matrix | None, N: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Item indices and scores, each of shape [len(userids), N], best first."""


def top_n(
    scores: np.ndarray, *, seen: sp.csr_matrix | None, N: int
) -> tuple[np.ndarray, np.ndarray]:
    """The ``N`` best columns of each row of ``scores`` [n_users, n_items], seen ones excluded.

    Returns
    -------
    items, best : numpy.ndarray, shape [n_users, min(N, n_items)]
        Column indices and their scores, best first; excluded columns score ``-inf`` and
        come last.
    """
    scores = np.array(scores, dtype=np.float32, copy=True)
    if seen is not None:
        rows, cols = seen.nonzero()
        scores[rows, cols] = -np.inf
    N = min(N, scores.shape[1])
    part = np.argpartition(-scores, N - 1, axis=1)[:, :N]
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1), np.take_along_axis(part_scores, order, axis=1)


def recommendations_frame(
    user_ids: np.ndarray, items: np.ndarray, scores: np.ndarray, item_map: IdMap
) -> pd.DataFrame:
    """Long table of recommendations from [n_users, N] item indices and scores."""
    n_users, n = items.shape
    valid = np.isfinite(scores) & (items >= 0)
    frame = pd.DataFrame(
        {
            "user_id": np.repeat(user_ids, n),
            "movie_id": item_map.to_ids(np.where(items >= 0, items, 0)).ravel(),
            "score": scores.ravel().astype(np.float64),
            "rank": np.tile(np.arange(1, n + 1), n_users),
        }
    )
    frame = frame[valid.ravel()].reset_index(drop=True)
    frame["movie_id"] = frame["movie_id"].astype("str")
    return frame


def _check_one_rating_per_pair(ratings: pd.DataFrame) -> None:
    repeated = ratings.duplicated(["user_id", "movie_id"], keep="first").to_numpy()
    if repeated.any():
        row = int(np.flatnonzero(repeated)[0])
        user, movie = ratings["user_id"].iloc[row], ratings["movie_id"].iloc[row]
        raise ValueError(
            f"ratings must hold one row per (user_id, movie_id) pair, got {int(repeated.sum())} "
            f"repeated pairs, first ({user!r}, {movie!r}) at row {row}; keep one rating per "
            "pair (e.g. the latest) before building the matrix"
        )


def _is_text(ids: Sequence[Any]) -> bool:
    return len(ids) > 0 and isinstance(next(iter(ids)), str)
