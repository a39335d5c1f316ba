"""LightFM: a hybrid factorisation model that uses user and movie metadata."""

from __future__ import annotations

import logging
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from lightfm import LightFM

from shrek.models.base import Interactions, Recommender, top_n
from shrek.models.features import FeatureSpace, movie_tokens, user_tokens

logger = logging.getLogger(__name__)

LOSSES: tuple[str, ...] = ("warp", "bpr", "warp-kos", "logistic")


class LightFMRecommender(Recommender):
    """LightFM on binary interactions with user features (age band, gender, occupation) and
    movie features (genres, decade).

    Parameters
    ----------
    no_components : int, default 64
        Latent dimensions.
    loss : {"warp", "bpr", "warp-kos", "logistic"}, default "warp"
        Training loss.
    learning_rate : float, default 0.05
        Adagrad's initial step.
    epochs : int, default 30
        Passes over the interactions.
    item_alpha, user_alpha : float, default 0.0
        L2 penalties on the feature embeddings.
    max_sampled : int, default 10
        WARP's negative samples per positive.
    use_user_features, use_item_features : bool, default True
        Whether the metadata features are used; without them the model is plain
        factorisation over identity features.
    feature_weight : float, default 1.0
        Weight of each metadata feature of a known user or movie against its identity
        feature (1) before the row is normalised. Below 1, known users lean on what they
        rated and new users still get a representation from their metadata.
    random_state : int, default 42
        Seed.
    num_threads : int, default 1
        Threads for fitting (LightFM's Hogwild updates make more than one thread
        non-deterministic).

    Notes
    -----
    A user missing from the training data is answered from their metadata alone with
    :meth:`recommend_new_users`. Their feature row is weighted as a known user's row is in
    training, with the identity feature left out: each token weighs
    ``feature_weight / (1 + n_tokens * feature_weight)``, as if the new user were a known one
    whose own embedding is zero. Fit and new-user inference thus weigh metadata alike, and the
    scale of a new user's scores against the item biases is the one the model was trained at.
    """

    name = "lightfm"

    def __init__(
        self,
        *,
        no_components: int = 64,
        loss: Literal["warp", "bpr", "warp-kos", "logistic"] = "warp",
        learning_rate: float = 0.05,
        epochs: int = 30,
        item_alpha: float = 0.0,
        user_alpha: float = 0.0,
        max_sampled: int = 10,
        use_user_features: bool = True,
        use_item_features: bool = True,
        feature_weight: float = 1.0,
        random_state: int = 42,
        num_threads: int = 1,
    ) -> None:
        super().__init__()
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")
        if feature_weight <= 0:
            raise ValueError(f"feature_weight must be positive, got {feature_weight!r}")
        if epochs < 1:
            raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
        self._params: dict[str, Any] = {
            "no_components": no_components,
            "loss": loss,
            "learning_rate": learning_rate,
            "epochs": epochs,
            "item_alpha": item_alpha,
            "user_alpha": user_alpha,
            "max_sampled": max_sampled,
            "use_user_features": use_user_features,
            "use_item_features": use_item_features,
            "feature_weight": feature_weight,
            "random_state": random_state,
            "num_threads": num_threads,
        }
        self.model = LightFM(
            no_components=no_components,
            loss=loss,
            learning_rate=learning_rate,
            item_alpha=item_alpha,
            user_alpha=user_alpha,
            max_sampled=max_sampled,
            random_state=random_state,
        )
        self.user_space: FeatureSpace | None = None
        self.item_space: FeatureSpace | None = None

    def _fit(
        self,
        interactions: Interactions,
        *,
        users: pd.DataFrame | None = None,
        movies: pd.DataFrame | None = None,
        show_progress: bool = False,
    ) -> None:
        p = self._params
        self._check_metadata(users, movies)
        user_tok = self._tokens(users, interactions.users.ids, user_tokens, p["use_user_features"])
        item_tok = self._tokens(
            movies, interactions.items.ids, movie_tokens, p["use_item_features"]
        )
        self.user_space = FeatureSpace(len(interactions.users), _flatten(user_tok))
        self.item_space = FeatureSpace(len(interactions.items), _flatten(item_tok))
        weight = p["feature_weight"]
        user_features = self.user_space.matrix(
            user_tok, index=np.arange(len(user_tok)), token_weight=weight
        )
        item_features = self.item_space.matrix(
            item_tok, index=np.arange(len(item_tok)), token_weight=weight
        )

        positives = interactions.user_items.tocoo()
        positives.data = np.ones_like(positives.data)
        self.model.fit(
            positives,
            user_features=user_features,
            item_features=item_features,
            epochs=p["epochs"],
            num_threads=p["num_threads"],
            verbose=show_progress,
        )
        self._item_biases, self._item_embeddings = self.model.get_item_representations(
            item_features
        )
        self._user_biases, self._user_embeddings = self.model.get_user_representations(
            user_features
        )

    def _recommend(
        self, userids: np.ndarray, *, seen: sp.csr_matrix | None, N: int
    ) -> tuple[np.ndarray, np.ndarray]:
        scores = self._user_embeddings[userids] @ self._item_embeddings.T + self._item_biases
        return top_n(scores, seen=seen, N=N)

    def recommend_new_users(self, users: pd.DataFrame, *, N: int = 10) -> pd.DataFrame:
        """Top-``N`` movies for users absent from training, from their metadata alone.

        Parameters
        ----------
        users : pandas.DataFrame
            Rows of the users table (``user_id``, ``age``, ``gender``, ``occupation``);
            missing values are allowed and contribute nothing.

        Returns
        -------
        pandas.DataFrame
            Columns ``user_id``, ``movie_id``, ``score``, ``rank``.
        """
        from shrek.models.base import recommendations_frame

        interactions = self._fitted()
        tokens = list(user_tokens(users)) if self._params["use_user_features"] else []
        tokens = tokens or [[] for _ in range(len(users))]
        features = self.user_space.matrix(tokens, token_weight=self._params["feature_weight"])
        _, embeddings = self.model.get_user_representations(features)
        scores = embeddings @ self._item_embeddings.T + self._item_biases
        items, best = top_n(scores, seen=None, N=N)
        return recommendations_frame(users["user_id"].to_numpy(), items, best, interactions.items)

    @staticmethod
    def _tokens(
        table: pd.DataFrame | None, ids: np.ndarray, tokenize: Any, enabled: bool
    ) -> list[list[str]]:
        if not enabled or table is None:
            return [[] for _ in ids]
        by_id = tokenize(table)
        return [list(by_id.get(id_, [])) for id_ in ids]

    def _check_metadata(self, users: pd.DataFrame | None, movies: pd.DataFrame | None) -> None:
        if self._params["use_user_features"] and users is None:
            raise ValueError("use_user_features=True needs the users table: fit(..., users=...)")
        if self._params["use_item_features"] and movies is None:
            raise ValueError("use_item_features=True needs the movies table: fit(..., movies=...)")


def _flatten(tokens: list[list[str]]) -> set[str]:
    return {token for row in tokens for token in row}
