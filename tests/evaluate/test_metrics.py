"""Ranking metrics against values computed by hand."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from shrek.evaluate import catalog_coverage, per_user_metrics, summarize


@pytest.fixture
def truth() -> pd.DataFrame:
    return pd.DataFrame({"user_id": [1, 1, 1, 2, 3], "movie_id": ["a", "c", "x", "b", "z"]})


@pytest.fixture
def pred() -> pd.DataFrame:
    # user 1: hits at ranks 1 and 3; user 2: no hit; user 3: hit at rank 2
    return pd.DataFrame(
        {
            "user_id": [1, 1, 1, 2, 2, 2, 3, 3, 3],
            "movie_id": ["a", "b", "c", "a", "c", "d", "y", "z", "w"],
            "rank": [1, 2, 3] * 3,
        }
    )


def test_per_user_values(truth, pred):
    m = per_user_metrics(truth, pred, k=3).set_index("user_id")
    assert m.loc[1, "precision@3"] == pytest.approx(2 / 3)
    assert m.loc[1, "recall@3"] == pytest.approx(2 / 3)
    dcg = 1 + 1 / math.log2(4)
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert m.loc[1, "ndcg@3"] == pytest.approx(dcg / idcg)
    assert m.loc[1, "map@3"] == pytest.approx((1 + 2 / 3) / 3)
    assert m.loc[1, "hit_rate@3"] == 1
    assert m.loc[2, ["precision@3", "ndcg@3", "map@3", "hit_rate@3"]].tolist() == [0, 0, 0, 0]
    assert m.loc[3, "ndcg@3"] == pytest.approx((1 / math.log2(3)) / 1)
    assert m.loc[3, "map@3"] == pytest.approx(1 / 2)
    assert m.loc[3, "recall@3"] == 1


def test_cut_off_and_users_in_both_frames(truth, pred):
    m = per_user_metrics(truth, pred[pred["user_id"] != 3], k=1).set_index("user_id")
    assert list(m.index) == [1, 2]
    assert m.loc[1, "precision@1"] == 1
    assert m.loc[1, "ndcg@1"] == 1


def test_summary_and_coverage(truth, pred):
    summary = summarize(per_user_metrics(truth, pred, k=3))
    assert summary["n_users"] == 3
    assert summary["hit_rate@3"] == pytest.approx(2 / 3)
    assert catalog_coverage(pred, 10, k=3) == pytest.approx(7 / 10)


def test_bad_k(truth, pred):
    with pytest.raises(ValueError, match="^k must be a positive integer, got 0$"):
        per_user_metrics(truth, pred, k=0)
