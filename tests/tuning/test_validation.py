"""The validation split is drawn from the training part only; the test part is never read."""

from __future__ import annotations

import pandas as pd
import pytest

from shrek.config import RunConfig
from shrek.tuning import prepare_tuning_data, run_study, tuning_data, validation_split


class _Untouchable:
    """Stands in for a test part: any use of it fails the test."""

    def __getattr__(self, name):
        raise AssertionError(f"the tuning read the test part (attribute {name!r})")

    def __len__(self):
        raise AssertionError("the tuning read the test part (len)")

    def __getitem__(self, key):
        raise AssertionError(f"the tuning read the test part (item {key!r})")

    def __iter__(self):
        raise AssertionError("the tuning read the test part (iteration)")


def _index_set(frame: pd.DataFrame) -> set:
    return set(frame.index)


def test_validation_split_is_drawn_from_the_training_part_only(taste_split):
    train, test = taste_split
    fit, valid = validation_split(train)

    assert _index_set(fit) | _index_set(valid) <= _index_set(train)
    assert not _index_set(fit) & _index_set(valid)
    assert not (_index_set(fit) | _index_set(valid)) & _index_set(test)
    pd.testing.assert_frame_equal(fit, train.loc[fit.index])


def test_validation_rows_are_of_users_and_movies_the_fit_part_knows(taste_split):
    fit, valid = validation_split(taste_split[0], seed=3)

    assert valid["user_id"].isin(fit["user_id"]).all()
    assert valid["movie_id"].isin(fit["movie_id"]).all()


def test_the_validation_draw_is_seeded(taste_split):
    first = validation_split(taste_split[0], seed=5)[1]
    again = validation_split(taste_split[0], seed=5)[1]
    other = validation_split(taste_split[0], seed=6)[1]

    assert list(first.index) == list(again.index)
    assert list(first.index) != list(other.index)


def test_the_tuning_never_reads_the_test_part(monkeypatch, taste_dataset):
    """prepare_tuning_data drops the test part; a test part that fails when touched proves it."""
    import shrek.tuning.study as study

    real_split = study.stratified_split

    def split_with_untouchable_test(ratings, **kwargs):
        train, _ = real_split(ratings, **kwargs)
        return train, _Untouchable()

    monkeypatch.setattr(study, "stratified_split", split_with_untouchable_test)
    data = prepare_tuning_data(RunConfig(), dataset=taste_dataset)
    result = run_study("als", data, n_trials=2)

    assert result.n_trials == 2


def test_prepare_tuning_data_uses_the_run_split(taste_dataset, taste_split):
    train, test = taste_split
    data = prepare_tuning_data(RunConfig(), dataset=taste_dataset, seed=11)

    assert _index_set(data.fit) | _index_set(data.valid) <= _index_set(train)
    assert not (_index_set(data.fit) | _index_set(data.valid)) & _index_set(test)
    assert data.interactions.user_items.nnz == len(data.fit)
    assert data.seed == 11


def test_empty_training_part_is_refused():
    empty = pd.DataFrame(columns=["user_id", "movie_id", "rating"])

    with pytest.raises(ValueError, match="^train must hold at least one rating, got an empty"):
        tuning_data(empty)


@pytest.mark.realdata
def test_validation_split_of_movielens_is_inside_the_recommenders_training_part(ml100k):
    from shrek.data import stratified_split

    train, test = stratified_split(ml100k.ratings, ratio=0.75, filter_by="item", seed=42)
    data = prepare_tuning_data(RunConfig(), dataset=ml100k)

    assert _index_set(data.fit) | _index_set(data.valid) <= _index_set(train)
    assert not (_index_set(data.fit) | _index_set(data.valid)) & _index_set(test)
    assert 0.2 < len(data.valid) / len(train) < 0.3
