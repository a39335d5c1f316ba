"""Alternating least squares for implicit feedback, with ``implicit``."""

from __future__ import annotations

import logging
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares
from implicit.nearest_neighbours import bm25_weight, tfidf_weight
from threadpoolctl import threadpool_limits

from shrek.models.base import Interactions, Recommender

logger = logging.getLogger(__name__)

Weighting = Literal["none", "binary", "bm25", "tfidf"]
WEIGHTINGS: tuple[str, ...] = ("none", "binary", "bm25", "tfidf")


def confidence_weights(
    user_items: sp.csr_matrix,
    *,
    weighting: Weighting = "bm25",
    bm25_k1: float = 100.0,
    bm25_b: float = 0.8,
) -> sp.csr_matrix:
    """Turn ratings [n_users, n_items] into the confidence matrix ALS is fitted on.

    Parameters
    ----------
    user_items : scipy.sparse.csr_matrix, shape [n_users, n_items]
        Ratings (0 where none).
    weighting : {"none", "binary", "bm25", "tfidf"}, default "bm25"
        ``none`` uses the ratings as they are, ``binary`` counts every rating as 1,
        ``bm25`` and ``tfidf`` weight each rating down by the movie's popularity.
    bm25_k1, bm25_b : float
        BM25's saturation and length normalisation (only with ``weighting="bm25"``).
    """
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {', '.join(WEIGHTINGS)}, got {weighting!r}")
    matrix = sp.csr_matrix(user_items, dtype=np.float32)
    if weighting == "binary":
        matrix.data = np.ones_like(matrix.data)
    elif weighting == "bm25":
        # implicit weights the rows of an items × users matrix: transpose in, transpose out.
        matrix = bm25_weight(matrix.T.tocoo(), K1=bm25_k1, B=bm25_b).T.tocsr()
    elif weighting == "tfidf":
        matrix = tfidf_weight(matrix.T.tocoo()).T.tocsr()
    return matrix.astype(np.float32)


class ALSRecommender(Recommender):
    """Implicit-feedback matrix factorisation (Hu, Koren and Volinsky, 2008).

    Parameters
    ----------
    factors : int, default 64
        Latent dimensions.
    regularization : float, default 0.05
        L2 penalty on the factors.
    iterations : int, default 15
        ALS sweeps.
    alpha : float, default 1.0
        Confidence scale: the confidence of a rating is ``alpha`` times its weight.
    weighting : {"none", "binary", "bm25", "tfidf"}, default "bm25"
        How ratings become confidences (:func:`confidence_weights`).
    bm25_k1, bm25_b : float, default 100.0, 0.8
        BM25 parameters.
    random_state : int, default 42
        Seed of the initial factors.
    num_threads : int, default 0
        Threads for fitting; 0 uses every core.

    Notes
    -----
    Users unseen in training get no answer here (``KeyError``); the service answers them from
    the popularity baseline.
    """

    name = "als"

    def __init__(
        self,
        *,
        factors: int = 64,
        regularization: float = 0.05,
        iterations: int = 15,
        alpha: float = 1.0,
        weighting: Weighting = "bm25",
        bm25_k1: float = 100.0,
        bm25_b: float = 0.8,
        random_state: int = 42,
        num_threads: int = 0,
    ) -> None:
        super().__init__()
        if weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {', '.join(WEIGHTINGS)}, got {weighting!r}")
        self._params: dict[str, Any] = {
            "factors": factors,
            "regularization": regularization,
            "iterations": iterations,
            "alpha": alpha,
            "weighting": weighting,
            "bm25_k1": bm25_k1,
            "bm25_b": bm25_b,
            "random_state": random_state,
            "num_threads": num_threads,
        }
        with threadpool_limits(1, "blas"):
            self.model = AlternatingLeastSquares(
                factors=factors,
                regularization=regularization,
                iterations=iterations,
                alpha=alpha,
                random_state=random_state,
                num_threads=num_threads,
            )

    def _fit(self, interactions: Interactions, *, show_progress: bool = False, **_: Any) -> None:
        p = self._params
        confidence = confidence_weights(
            interactions.user_items,
            weighting=p["weighting"],
            bm25_k1=p["bm25_k1"],
            bm25_b=p["bm25_b"],
        )
        # implicit parallelises itself; a threaded BLAS underneath only contends with it.
        with threadpool_limits(1, "blas"):
            self.model.fit(confidence, show_progress=show_progress)

    def _recommend(
        self, userids: np.ndarray, *, seen: sp.csr_matrix | None, N: int
    ) -> tuple[np.ndarray, np.ndarray]:
        interactions = self._fitted()
        N = min(N, interactions.shape[1])
        if seen is None:
            seen = sp.csr_matrix((len(userids), interactions.shape[1]), dtype=np.float32)
        items, scores = self.model.recommend(
            userids, seen, N=N, filter_already_liked_items=seen.nnz > 0
        )
        items, scores = np.atleast_2d(items), np.atleast_2d(scores)
        # implicit pads short lists with filtered items at the lowest float32.
        scores = np.where(scores <= np.finfo(np.float32).min, -np.inf, scores)
        return items, scores
