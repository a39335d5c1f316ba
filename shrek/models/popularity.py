"""The popularity baseline: the most-rated movies the user has not seen."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from shrek.models.base import Interactions, Recommender, top_n


class PopularityRecommender(Recommender):
    """Recommends the movies with the most ratings in training, the same list for everyone.

    It is the floor every personalised model must beat, and the cold-start answer for users a
    collaborative model has never seen.
    """

    name = "popularity"

    def __init__(self) -> None:
        super().__init__()
        self._params: dict[str, Any] = {}
        self.item_counts: np.ndarray | None = None

    def _fit(self, interactions: Interactions, **_: Any) -> None:
        counts = np.asarray((interactions.user_items > 0).sum(axis=0)).ravel()
        self.item_counts = counts.astype(np.float32)

    def _recommend(
        self, userids: np.ndarray, *, seen: sp.csr_matrix | None, N: int
    ) -> tuple[np.ndarray, np.ndarray]:
        scores = np.broadcast_to(self.item_counts, (len(userids), len(self.item_counts)))
        return top_n(scores, seen=seen, N=N)

    def recommend_new_users(self, n_users: int = 1, *, N: int = 10) -> pd.DataFrame:
        """The list every unknown user gets: movie ids and scores, best first."""
        items, scores = top_n(self.item_counts[None, :], seen=None, N=N)
        return pd.DataFrame(
            {
                "movie_id": self._fitted().items.to_ids(items[0]).astype(str),
                "score": scores[0].astype(np.float64),
                "rank": np.arange(1, items.shape[1] + 1),
            }
        )
