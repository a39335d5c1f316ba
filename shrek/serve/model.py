"""A model from the store, ready to answer one user: known users, cold start, provenance."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shrek.serve.export import (
    POPULARITY_DIR,
    PROVENANCE_FILE,
    RECOMMENDER_DIR,
    USERS_FILE,
)

logger = logging.getLogger(__name__)

N_RECOMMENDATIONS = 20
MAX_N = 100
# ASCII digits only: `\d` alone also matches other scripts' digits, which int() accepts ("1٢٣").
_USER_ID_RE = re.compile(r"[1-9][0-9]{0,17}")
COLD_START_KINDS: tuple[str, ...] = ("none", "popularity", "metadata")

UserLookup = Callable[[int], dict[str, Any] | None]


def parse_user_id(text: Any) -> int:
    """The user id in a request: a positive integer of at most 18 ASCII digits.

    Raises
    ------
    ValueError
        Naming what is accepted and what was received, e.g.
        ``"user_id must be a positive integer (1 to 18 digits), got 'abc'"``.
    """
    if isinstance(text, bool) or not isinstance(text, int | str):
        shown = repr(text) if len(repr(text)) <= 40 else repr(text)[:39] + "…"
        raise ValueError(
            "user_id must be a positive integer (1 to 18 digits), "
            f"got {shown} ({type(text).__name__})"
        )
    text = str(text)
    if not _USER_ID_RE.fullmatch(text):
        shown = text if len(text) <= 40 else text[:39] + "…"
        raise ValueError(f"user_id must be a positive integer (1 to 18 digits), got {shown!r}")
    return int(text)


def check_n(n: Any) -> int:
    """``n`` as the length of a list: an integer 1–100."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_N:
        raise ValueError(f"n must be an integer 1–{MAX_N}, got {n!r}")
    return n


@dataclass(frozen=True)
class Answer:
    """The recommendations for one user.

    Attributes
    ----------
    user_id : int
    movie_ids : tuple of str
        Best first, at most ``N``.
    scores : tuple of float
        The model's score of each movie (the popularity count for popularity cold starts).
    cold_start : {"none", "popularity", "metadata"}
        How the user was answered: by the model (``none``), from the popularity list, or from
        their metadata (LightFM).
    """

    user_id: int
    movie_ids: tuple[str, ...]
    scores: tuple[float, ...]
    cold_start: str


class ServedModel:
    """An exported model loaded from its store folder.

    Parameters
    ----------
    folder : str or Path
        The model's folder in the store (``bentoml.models.get(tag).path``).
    user_lookup : callable, optional
        ``user_id -> {"age", "gender", "occupation"} or None`` for users missing from the
        exported users table (e.g. the stream's metadata API); LightFM only.
    precompute : int, default 20
        Length of the lists computed for every known user at load time (one batched call);
        requests for at most this many movies are then answered by a lookup. 0 turns it off.

    Attributes
    ----------
    provenance : dict
        The export's metadata with ``model_version`` (the store tag).
    """

    def __init__(
        self,
        folder: str | Path,
        *,
        user_lookup: UserLookup | None = None,
        precompute: int = N_RECOMMENDATIONS,
    ) -> None:
        from shrek.models import LightFMRecommender, PopularityRecommender, Recommender

        folder = Path(folder)
        self.provenance: dict[str, Any] = json.loads((folder / PROVENANCE_FILE).read_text())
        self.recommender = Recommender.load(folder / RECOMMENDER_DIR)
        self.popularity = PopularityRecommender.load(folder / POPULARITY_DIR)
        self.uses_metadata = isinstance(self.recommender, LightFMRecommender)
        self.user_lookup = user_lookup
        users = pd.read_parquet(folder / USERS_FILE)
        self.users = users.set_index("user_id", drop=False)
        self._known = self.recommender.interactions.users
        self._popular = self.popularity.recommend_new_users(N=MAX_N)
        self._top = self._precompute(precompute)

    @classmethod
    def from_store(cls, tag: str, *, user_lookup: UserLookup | None = None) -> ServedModel:
        """Load model version ``tag`` (like ``shrek-als:latest``) from the BentoML store."""
        import bentoml

        return cls(bentoml.models.get(tag).path, user_lookup=user_lookup)

    @property
    def model_version(self) -> str:
        return self.provenance["model_version"]

    @property
    def data_version(self) -> str:
        return self.provenance["data_version"]

    def recommend(self, user_id: int, *, N: int = N_RECOMMENDATIONS) -> Answer:
        """The top-``N`` movies of ``user_id``, falling back to cold start for unknown users.

        Notes
        -----
        Known users never get movies they rated before the export. Cold-start lists are not
        filtered (the service knows nothing the user has seen).
        """
        if self._top_n >= N and user_id in self._top:
            movie_ids, scores = self._top[user_id]
            return Answer(user_id, movie_ids[:N], scores[:N], "none")
        if user_id in self._known:
            frame = self.recommender.recommend([user_id], N=N, filter_already_seen=True)
            return _answer(user_id, frame, "none")
        if self.uses_metadata:
            features = self._user_features(user_id)
            if features is not None:
                frame = self.recommender.recommend_new_users(features, N=N)
                return _answer(user_id, frame, "metadata")
        return _answer(user_id, self._popular.head(N), "popularity")

    def may_block(self, user_id: int) -> bool:
        """Whether :meth:`recommend` may wait on I/O for ``user_id``: the metadata lookup of a
        user LightFM does not know (an HTTP call), which callers keep off an event loop."""
        return (
            self.uses_metadata
            and self.user_lookup is not None
            and user_id not in self._known
            and user_id not in self.users.index
        )

    def _precompute(self, N: int) -> dict[int, tuple[tuple[str, ...], tuple[float, ...]]]:
        """The top-``N`` of every known user, in batches: ``user_id -> (movie_ids, scores)``."""
        self._top_n = N
        if N < 1:
            return {}
        top = {}
        users = self._known.ids
        for start in range(0, len(users), 1024):
            batch = [int(u) for u in users[start : start + 1024]]
            frame = self.recommender.recommend(batch, N=N, filter_already_seen=True)
            for user_id, rows in frame.groupby("user_id", sort=False):
                answer = _answer(int(user_id), rows.sort_values("rank"), "none")
                top[int(user_id)] = (answer.movie_ids, answer.scores)
        return top

    def _user_features(self, user_id: int) -> pd.DataFrame | None:
        if user_id in self.users.index:
            return self.users.loc[[user_id]].reset_index(drop=True)
        if self.user_lookup is None:
            return None
        try:
            document = self.user_lookup(user_id)
        except Exception as err:  # noqa: BLE001 - any lookup failure means "no metadata"
            logger.warning("user metadata lookup failed for %d: %s", user_id, err)
            return None
        if not document:
            return None
        row = {key: document.get(key) for key in ("age", "gender", "occupation")}
        return pd.DataFrame([{"user_id": user_id, **row}])


def _answer(user_id: int, frame: pd.DataFrame, cold_start: str) -> Answer:
    return Answer(
        user_id=user_id,
        movie_ids=tuple(frame["movie_id"].astype(str)),
        scores=tuple(np.asarray(frame["score"], dtype=float).round(6).tolist()),
        cold_start=cold_start,
    )
