"""Per-user outcomes of a recommender: what each user actually got from their top-k list.

Every outcome is one number per user, so groups can be compared on means of them. Accuracy
follows Microsoft Recommenders' vocabulary (``rating_true``, ``ndcg_at_k``) with binary
relevance: every test rating is relevant, whatever its value.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.spatial.distance import jensenshannon

from shrek.fairness._validation import require_frame, require_int
from shrek.fairness.errors import FairnessWarning

logger = logging.getLogger(__name__)

OUTCOMES: tuple[str, ...] = (
    "hit_at_k",
    "ndcg_at_k",
    "recall_at_k",
    "diversity",
    "personalization",
    "popularity",
    "calibration",
)
NO_GENRE = "(no genres listed)"
RECOMMENDATION_COLUMNS = ("user_id", "movie_id", "rank")
RATING_COLUMNS = ("user_id", "movie_id")
MOVIE_COLUMNS = ("movie_id", "genres")


def per_user_outcomes(
    recommendations: pd.DataFrame,
    rating_true: pd.DataFrame,
    rating_train: pd.DataFrame,
    movies: pd.DataFrame,
    *,
    k: int = 10,
) -> pd.DataFrame:
    """Measure each top-k list: accuracy, diversity, personalization, popularity, calibration.

    Parameters
    ----------
    recommendations : pandas.DataFrame, shape [n_users * N, >= 3]
        Columns ``user_id``, ``movie_id`` and ``rank`` (1 is best); each user's top-N list
        with N ≥ ``k``. Rows with ``rank`` > ``k`` are ignored.
    rating_true : pandas.DataFrame, shape [n_test_ratings, >= 2]
        The test ratings (``user_id``, ``movie_id``); every one is relevant.
    rating_train : pandas.DataFrame, shape [n_train_ratings, >= 2]
        The training ratings: the users' histories (for calibration) and the movies'
        popularity.
    movies : pandas.DataFrame, shape [n_movies, >= 2]
        Columns ``movie_id`` and ``genres`` (pipe-joined, possibly empty).
    k : int, default 10
        The list length measured.

    Returns
    -------
    pandas.DataFrame, shape [n_audited_users, 1 + len(OUTCOMES)]
        ``user_id`` then the columns of :data:`OUTCOMES`, one row per user who has both a
        list and at least one test rating, sorted by ``user_id``; ``attrs["k"]`` holds ``k``.

        - ``hit_at_k``: 1.0 if a test movie is in the top k, else 0.0;
        - ``ndcg_at_k``: binary-relevance nDCG, the ideal list holding min(k, n_test) hits;
        - ``recall_at_k``: test movies in the top k over the user's test movies;
        - ``diversity``: one minus the mean pairwise cosine similarity of the binary genre
          vectors of the k movies (0.0 when k is 1);
        - ``personalization``: one minus the mean cosine similarity of the user's list with
          every other user's list (for lists of k movies, the mean share of shared movies);
        - ``popularity``: mean share of training users who rated each recommended movie;
        - ``calibration``: Jensen-Shannon divergence (base 2, in [0, 1]) between the genre
          mix of the user's training history and of the list; 0 is perfectly calibrated,
          NaN when the user has no training history.

    Raises
    ------
    TypeError
        If an input is not a DataFrame or ``k`` is not an integer.
    ValueError
        If a column is missing, a user has fewer than ``k`` ranked movies or a movie twice.
    KeyError
        If a recommended movie is not in ``movies``.

    Notes
    -----
    Genre mixes give each movie a weight of 1 split evenly over its genres (Steck, 2018).
    Movies without genres count as the pseudo-genre :data:`NO_GENRE`. Personalization is
    measured against every user in ``recommendations``, including users without test
    ratings, who are then left out of the returned table. It needs at least two users.
    """
    k = require_int(k, "k", minimum=1)
    top = _top_k(recommendations, k)
    test = _pairs(rating_true, "rating_true")
    train = _pairs(rating_train, "rating_train")
    genre_matrix, movie_index = _genre_matrix(movies)
    _check_known_movies(top, movie_index)

    users = np.sort(top["user_id"].unique())
    if len(users) < 2:
        raise ValueError(
            "recommendations must hold lists for at least 2 users to measure "
            f"personalization, got {len(users)}"
        )
    user_pos = pd.Series(np.arange(len(users)), index=users)
    rows = user_pos.loc[top["user_id"]].to_numpy()
    cols = movie_index.loc[top["movie_id"]].to_numpy()
    lists = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(users), len(movie_index)))

    frame = pd.DataFrame({"user_id": users.astype("int64")})
    frame = frame.join(_accuracy(top, test, users, k))
    frame["diversity"] = _diversity(lists, genre_matrix, k)
    frame["personalization"] = _personalization(lists)
    frame["popularity"] = _popularity(lists, train, movie_index) / k
    frame["calibration"] = _calibration(lists, train, users, genre_matrix, movie_index)

    audited = frame["user_id"].isin(test["user_id"])
    _report_dropped(users, audited.to_numpy(), test)
    result = frame.loc[audited].reset_index(drop=True)[["user_id", *OUTCOMES]]
    result.attrs["k"] = k
    logger.debug("outcomes for %d users at k=%d", len(result), k)
    return result


def _top_k(recommendations: pd.DataFrame, k: int) -> pd.DataFrame:
    require_frame(recommendations, "recommendations", RECOMMENDATION_COLUMNS)
    if len(recommendations) and recommendations["rank"].min() < 1:
        raise ValueError(
            "recommendations rank must start at 1 (the best movie), got rank "
            f"{recommendations['rank'].min()}"
        )
    top = recommendations.loc[recommendations["rank"] <= k, list(RECOMMENDATION_COLUMNS)]
    top = top.astype({"user_id": "int64", "movie_id": str})
    lengths = top.groupby("user_id").size()
    lengths = lengths.reindex(recommendations["user_id"].unique(), fill_value=0)
    short = lengths[lengths < k]
    if len(short):
        raise ValueError(
            f"recommendations must rank at least k={k} movies (ranks 1..{k}) for every user; "
            f"{len(short)} user(s) have fewer, e.g. user {short.index[0]} with {short.iloc[0]}"
        )
    repeated = top.duplicated(["user_id", "movie_id"]) | top.duplicated(["user_id", "rank"])
    if repeated.any():
        first = top.loc[repeated].iloc[0]
        raise ValueError(
            "recommendations must list each movie and each rank once per user; user "
            f"{first['user_id']} repeats movie {first['movie_id']!r} or rank {first['rank']}"
        )
    return top


def _pairs(ratings: pd.DataFrame, name: str) -> pd.DataFrame:
    require_frame(ratings, name, RATING_COLUMNS)
    pairs = ratings[list(RATING_COLUMNS)].astype({"user_id": "int64", "movie_id": str})
    return pairs.drop_duplicates(ignore_index=True)


def _genre_matrix(movies: pd.DataFrame) -> tuple[sp.csr_matrix, pd.Series]:
    """Binary movie × genre matrix, shape [n_movies, n_genres], and movie_id → row."""
    require_frame(movies, "movies", MOVIE_COLUMNS)
    ids = movies["movie_id"].astype(str)
    genres = movies["genres"].fillna("").astype(str).str.split("|")
    genres = genres.map(lambda names: [g.strip() for g in names if g.strip()] or [NO_GENRE])
    names = sorted({g for names in genres for g in names})
    genre_pos = {g: j for j, g in enumerate(names)}
    rows = np.repeat(np.arange(len(ids)), genres.map(len).to_numpy())
    cols = np.array([genre_pos[g] for names in genres for g in names], dtype=np.int64)
    matrix = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(ids), len(names)))
    return matrix, pd.Series(np.arange(len(ids)), index=pd.Index(ids, name="movie_id"))


def _check_known_movies(top: pd.DataFrame, movie_index: pd.Series) -> None:
    unknown = top.loc[~top["movie_id"].isin(movie_index.index), "movie_id"].unique()
    if len(unknown):
        raise KeyError(
            f"movies has no row for {len(unknown)} recommended movie_id(s), e.g. "
            f"{unknown[0]!r}; pass the movies table the model was trained with"
        )


def _accuracy(top: pd.DataFrame, test: pd.DataFrame, users: np.ndarray, k: int) -> pd.DataFrame:
    """hit@k, nDCG@k and recall@k, shape [n_users, 3], NaN for users without test ratings."""
    relevant = top.merge(test.assign(relevant=1.0), on=["user_id", "movie_id"], how="left")
    relevant["relevant"] = relevant["relevant"].fillna(0.0)
    relevant["gain"] = relevant["relevant"] / np.log2(relevant["rank"] + 1.0)
    per_user = relevant.groupby("user_id")[["relevant", "gain"]].sum().reindex(users)
    n_test = test.groupby("user_id").size().reindex(users).to_numpy(dtype=float)

    discounts = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))])
    n_ideal = np.minimum(np.nan_to_num(n_test), k).astype(int)
    ideal = np.where(np.isnan(n_test), np.nan, discounts[n_ideal])
    hits = per_user["relevant"].to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        return pd.DataFrame(
            {
                "hit_at_k": np.where(np.isnan(n_test), np.nan, (hits > 0).astype(float)),
                "ndcg_at_k": per_user["gain"].to_numpy() / ideal,
                "recall_at_k": hits / n_test,
            }
        )


def _diversity(lists: sp.csr_matrix, genre_matrix: sp.csr_matrix, k: int) -> np.ndarray:
    """1 - mean pairwise cosine similarity of the list's genre vectors, shape [n_users]."""
    if k == 1:
        return np.zeros(lists.shape[0])
    norms = np.sqrt(np.asarray(genre_matrix.sum(axis=1)).ravel())
    unit = sp.diags(1.0 / norms) @ genre_matrix
    summed = (lists @ unit).toarray()
    pair_sum = (np.square(summed).sum(axis=1) - k) / 2.0
    return 1.0 - pair_sum / (k * (k - 1) / 2.0)


def _personalization(lists: sp.csr_matrix) -> np.ndarray:
    """1 - mean cosine similarity with every other user's list, shape [n_users].

    The sum of one user's similarities to all users is the dot product of their unit row with
    the column sums of all unit rows, so no [n_users, n_users] matrix is built.
    """
    n_users = lists.shape[0]
    lengths = np.asarray(lists.sum(axis=1)).ravel()
    unit = sp.diags(1.0 / np.sqrt(lengths)) @ lists
    column_sums = np.asarray(unit.sum(axis=0)).ravel()
    to_others = unit @ column_sums - 1.0
    return 1.0 - to_others / (n_users - 1)


def _popularity(lists: sp.csr_matrix, train: pd.DataFrame, movie_index: pd.Series) -> np.ndarray:
    """Sum over the list of each movie's share of training users, shape [n_users]."""
    known = train.loc[train["movie_id"].isin(movie_index.index)]
    counts = known.groupby("movie_id").size()
    share = np.zeros(len(movie_index))
    share[movie_index.loc[counts.index].to_numpy()] = counts.to_numpy()
    share /= max(train["user_id"].nunique(), 1)
    return lists @ share


def _calibration(
    lists: sp.csr_matrix,
    train: pd.DataFrame,
    users: np.ndarray,
    genre_matrix: sp.csr_matrix,
    movie_index: pd.Series,
) -> np.ndarray:
    """Jensen-Shannon divergence between history and list genre mixes, shape [n_users]."""
    shares = sp.diags(1.0 / np.asarray(genre_matrix.sum(axis=1)).ravel()) @ genre_matrix
    known = train.loc[train["user_id"].isin(users) & train["movie_id"].isin(movie_index.index)]
    rows = np.searchsorted(users, known["user_id"].to_numpy())
    cols = movie_index.loc[known["movie_id"]].to_numpy()
    history = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=lists.shape)

    history_mix = (history @ shares).toarray()
    list_mix = (lists @ shares).toarray()
    has_history = history_mix.sum(axis=1) > 0
    divergence = np.full(len(users), np.nan)
    divergence[has_history] = (
        jensenshannon(history_mix[has_history], list_mix[has_history], axis=1, base=2) ** 2
    )
    return divergence


def _report_dropped(users: np.ndarray, audited: np.ndarray, test: pd.DataFrame) -> None:
    without_test = int((~audited).sum())
    if without_test:
        logger.info(
            "%d of %d users with lists have no test rating; left out of the outcomes",
            without_test,
            len(users),
        )
    unserved = np.setdiff1d(test["user_id"].unique(), users)
    if len(unserved):
        warnings.warn(
            f"{len(unserved)} user(s) in rating_true have no recommendations, e.g. user "
            f"{unserved[0]}; they are left out of the audit",
            FairnessWarning,
            stacklevel=3,
        )
