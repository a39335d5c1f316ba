"""Side features for hybrid models: user and movie metadata as tokens and sparse matrices."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
import scipy.sparse as sp

from shrek.data.demographics import age_band


def user_tokens(users: pd.DataFrame) -> pd.Series:
    """Feature tokens per user: ``age:25-34``, ``gender:F``, ``occupation:student``."""

    columns = {
        "age": age_band(users["age"]) if "age" in users else None,
        "gender": users.get("gender"),
        "occupation": users.get("occupation"),
    }
    tokens = [[] for _ in range(len(users))]
    for name, values in columns.items():
        if values is None:
            continue
        for row, value in enumerate(values):
            if pd.notna(value):
                tokens[row].append(f"{name}:{value}")
    return pd.Series(tokens, index=users["user_id"].to_numpy())


def movie_tokens(movies: pd.DataFrame) -> pd.Series:
    """Feature tokens per movie: one ``genre:<name>`` per genre and ``decade:1990``."""

    def tokens(row: pd.Series) -> list[str]:
        found = [f"genre:{g}" for g in str(row["genres"]).split("|") if g and g != "nan"]
        if pd.notna(row.get("year")):
            found.append(f"decade:{int(row['year']) // 10 * 10}")
        return found

    return pd.Series([tokens(row) for _, row in movies.iterrows()], index=movies["movie_id"])


class FeatureSpace:
    """A vocabulary of feature tokens, with an identity feature per known id.

    Columns ``0 .. n_ids - 1`` are the identity features of the known ids (in ``IdMap``
    order); the token columns follow. Rows are normalised to sum to 1, as LightFM expects.

    Parameters
    ----------
    n_ids : int
        Number of known users (or movies).
    vocabulary : iterable of str
        The metadata tokens.
    identity : bool, default True
        Whether known ids get an identity feature.
    """

    def __init__(self, n_ids: int, vocabulary: Iterable[str], *, identity: bool = True) -> None:
        self.n_ids = n_ids if identity else 0
        self.vocabulary = {token: i for i, token in enumerate(sorted(set(vocabulary)))}

    @property
    def n_features(self) -> int:
        return self.n_ids + len(self.vocabulary)

    def matrix(
        self,
        tokens: list[list[str]],
        *,
        index: np.ndarray | None = None,
        token_weight: float = 1.0,
    ) -> sp.csr_matrix:
        """Feature matrix [len(tokens), n_features].

        ``index`` gives each row's identity column (``-1`` for none: a new user or movie);
        tokens outside the vocabulary are ignored. Each token weighs ``token_weight`` against
        an identity weight of 1 before rows are normalised.
        """
        rows, cols = [], []
        for row, row_tokens in enumerate(tokens):
            if self.n_ids and index is not None and index[row] >= 0:
                rows.append(row)
                cols.append(int(index[row]))
            for token in row_tokens:
                if token in self.vocabulary:
                    rows.append(row)
                    cols.append(self.n_ids + self.vocabulary[token])
        identity = np.asarray(cols) < self.n_ids
        values = np.where(identity, 1.0, token_weight).astype(np.float32)
        shape = (len(tokens), self.n_features)
        matrix = sp.csr_matrix((values, (rows, cols)), shape=shape, dtype=np.float32)
        sums = np.asarray(matrix.sum(axis=1)).ravel()
        sums[sums == 0] = 1
        return sp.csr_matrix(sp.diags(1 / sums) @ matrix, dtype=np.float32)
