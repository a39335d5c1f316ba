"""The served model in process: lists precomputed at load time equal the model's own."""

from __future__ import annotations

import bentoml
import pytest

from shrek.serve.model import ServedModel

USERS = [*range(1, 101), 123456]  # rated, metadata only (81-100) and unknown


@pytest.mark.parametrize("model", ["als", "lightfm"])
def test_precomputed_lists_equal_those_computed_per_request(exported, model):
    path = bentoml.models.get(exported[model].tag).path
    precomputed, computed = ServedModel(path), ServedModel(path, precompute=0)

    for user_id in USERS:
        for n in (1, 5, 20, 30):
            fast, slow = precomputed.recommend(user_id, N=n), computed.recommend(user_id, N=n)
            assert (fast.movie_ids, fast.cold_start) == (slow.movie_ids, slow.cold_start)
            assert fast.scores == pytest.approx(slow.scores, abs=1e-5)
