import re
from itertools import combinations

import numpy as np
import pandas as pd
import pytest

from shrek.fairness import OUTCOMES, FairnessWarning, per_user_outcomes

LOG3 = np.log2(3.0)


def js(p, q):
    """Jensen-Shannon divergence in bits, written out for the hand checks."""
    p, q = np.asarray(p, dtype=float), np.asarray(q, dtype=float)
    m = (p + q) / 2

    def kl(a, b):
        mask = a > 0
        return float(np.sum(a[mask] * np.log2(a[mask] / b[mask])))

    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


def test_tiny_example_by_hand(tiny):
    outcomes = per_user_outcomes(**tiny, k=2).set_index("user_id")

    assert list(outcomes.columns) == list(OUTCOMES)
    assert outcomes.attrs["k"] == 2
    # user 1: top 2 = m1, m3; test = m3, m5 (m5 sits at rank 3, beyond k)
    # user 2: top 2 = m1, m2; test = m4 (a miss)
    # user 3: top 2 = m4, m5; test = m4 (a hit at rank 1)
    np.testing.assert_allclose(outcomes["hit_at_k"], [1.0, 0.0, 1.0])
    np.testing.assert_allclose(outcomes["ndcg_at_k"], [(1 / LOG3) / (1 + 1 / LOG3), 0.0, 1.0])
    np.testing.assert_allclose(outcomes["recall_at_k"], [0.5, 0.0, 1.0])
    # genres: m1 Action|Comedy, m2 Action, m3 Drama, m4 none, m5 Comedy
    np.testing.assert_allclose(outcomes["diversity"], [1.0, 1.0 - 1 / np.sqrt(2), 1.0])
    # lists {m1,m3}, {m1,m2}, {m4,m5}: users 1 and 2 share half their lists
    np.testing.assert_allclose(outcomes["personalization"], [0.75, 0.75, 1.0])
    # 2 training users: m3 rated by both (1.0), m2 and m5 by one (0.5), m1 and m4 by none
    np.testing.assert_allclose(outcomes["popularity"], [0.5, 0.25, 0.25])
    # genre order Action, Comedy, Drama; user 3 has no training history
    expected_1 = js([0.5, 0.0, 0.5], [0.25, 0.25, 0.5])
    expected_2 = js([0.0, 0.5, 0.5], [0.75, 0.25, 0.0])
    np.testing.assert_allclose(outcomes["calibration"].iloc[:2], [expected_1, expected_2])
    assert np.isnan(outcomes.loc[3, "calibration"])


def test_tiny_example_hand_values_in_numbers(tiny):
    outcomes = per_user_outcomes(**tiny, k=2).set_index("user_id")

    np.testing.assert_allclose(outcomes.loc[1, "ndcg_at_k"], 0.386853, atol=1e-6)
    np.testing.assert_allclose(outcomes.loc[1, "calibration"], 0.155639, atol=1e-6)
    np.testing.assert_allclose(outcomes.loc[2, "calibration"], 0.655639, atol=1e-6)


def test_k_of_one_has_zero_diversity(tiny):
    outcomes = per_user_outcomes(**tiny, k=1)

    np.testing.assert_allclose(outcomes["diversity"], 0.0)
    np.testing.assert_allclose(outcomes["recall_at_k"], [0.0, 0.0, 1.0])


def test_vectorised_diversity_and_personalization_match_pairwise_loops():
    rng = np.random.default_rng(3)
    n_users, n_movies, k = 40, 30, 5
    genres = [
        "|".join(rng.choice(list("ABCDE"), rng.integers(1, 4), replace=False))
        for _ in range(n_movies)
    ]
    movies = pd.DataFrame({"movie_id": [f"m{i}" for i in range(n_movies)], "genres": genres})
    lists = {u: rng.choice(n_movies, k, replace=False) for u in range(1, n_users + 1)}
    recommendations = pd.DataFrame(
        [(u, f"m{m}", 0.0, r + 1) for u, ms in lists.items() for r, m in enumerate(ms)],
        columns=["user_id", "movie_id", "score", "rank"],
    )
    truth = pd.DataFrame({"user_id": list(lists), "movie_id": "m0"})

    outcomes = per_user_outcomes(recommendations, truth, truth, movies, k=k)

    vectors = {f"m{i}": set(g.split("|")) for i, g in enumerate(genres)}
    for row in outcomes.itertuples():
        items = [f"m{m}" for m in lists[row.user_id]]
        sims = [
            len(vectors[a] & vectors[b]) / np.sqrt(len(vectors[a]) * len(vectors[b]))
            for a, b in combinations(items, 2)
        ]
        overlaps = [
            len(set(lists[row.user_id]) & set(lists[v])) / k for v in lists if v != row.user_id
        ]
        assert row.diversity == pytest.approx(1 - np.mean(sims))
        assert row.personalization == pytest.approx(1 - np.mean(overlaps))


def test_users_without_test_ratings_are_left_out(tiny):
    tiny["rating_true"] = tiny["rating_true"].loc[lambda r: r["user_id"] != 2]

    outcomes = per_user_outcomes(**tiny, k=2)

    assert outcomes["user_id"].tolist() == [1, 3]
    # personalization still compares with user 2's list
    np.testing.assert_allclose(outcomes["personalization"], [0.75, 1.0])


def test_test_users_without_lists_are_warned_about(tiny):
    extra = pd.DataFrame({"user_id": [9], "movie_id": ["m1"], "rating": [5], "timestamp": [0]})
    tiny["rating_true"] = pd.concat([tiny["rating_true"], extra], ignore_index=True)

    message = "1 user(s) in rating_true have no recommendations, e.g. user 9; they are left out"
    with pytest.warns(FairnessWarning, match=re.escape(message)):
        outcomes = per_user_outcomes(**tiny, k=2)
    assert 9 not in outcomes["user_id"].tolist()


def test_short_lists_are_rejected(tiny):
    message = (
        "recommendations must rank at least k=4 movies (ranks 1..4) for every user; "
        "3 user(s) have fewer, e.g. user 1 with 3"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        per_user_outcomes(**tiny, k=4)


def test_unknown_movie_is_a_key_error(tiny):
    tiny["movies"] = tiny["movies"].loc[lambda m: m["movie_id"] != "m4"]

    with pytest.raises(KeyError, match=re.escape("movies has no row for 1 recommended movie_id")):
        per_user_outcomes(**tiny, k=2)


def test_bad_k_and_missing_column(tiny):
    with pytest.raises(ValueError, match=re.escape("k must be an integer ≥ 1, got 0")):
        per_user_outcomes(**tiny, k=0)
    with pytest.raises(TypeError, match=re.escape("k must be an integer ≥ 1, got 2.5")):
        per_user_outcomes(**tiny, k=2.5)
    tiny["recommendations"] = tiny["recommendations"].drop(columns="rank")
    message = "recommendations is missing column(s) ['rank']; expected at least"
    with pytest.raises(ValueError, match=re.escape(message)):
        per_user_outcomes(**tiny, k=2)


def test_zero_based_ranks_and_repeats_are_rejected(tiny):
    shifted = tiny["recommendations"].assign(rank=lambda r: r["rank"] - 1)
    with pytest.raises(ValueError, match=re.escape("rank must start at 1 (the best movie), got")):
        per_user_outcomes(**{**tiny, "recommendations": shifted}, k=2)

    repeated = tiny["recommendations"].copy()
    repeated.loc[1, "movie_id"] = "m1"
    message = "recommendations must list each movie and each rank once per user; user 1 repeats"
    with pytest.raises(ValueError, match=re.escape(message)):
        per_user_outcomes(**{**tiny, "recommendations": repeated}, k=2)


def test_a_single_user_cannot_be_measured_for_personalization(tiny):
    tiny["recommendations"] = tiny["recommendations"].loc[lambda r: r["user_id"] == 1]

    message = (
        "recommendations must hold lists for at least 2 users to measure personalization, got 1"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        per_user_outcomes(**tiny, k=2)
