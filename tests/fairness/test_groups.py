import re

import numpy as np
import pandas as pd
import pytest

from shrek.fairness import AGE_BANDS, age_band, sensitive_features


@pytest.mark.parametrize(
    ("age", "band"),
    [
        (1, "<18"),  # MovieLens 1M's code for "Under 18"
        (17, "<18"),
        (18, "18-24"),
        (24, "18-24"),
        (25, "25-34"),
        (34, "25-34"),
        (35, "35-44"),
        (44, "35-44"),
        (45, "45-49"),
        (49, "45-49"),
        (50, "50-55"),
        (55, "50-55"),
        (56, "56+"),
        (73, "56+"),
    ],
)
def test_age_bands_follow_movielens_1m(age, band):
    assert age_band([age]).iloc[0] == band


def test_missing_or_non_positive_age_has_no_band():
    bands = age_band(pd.Series([np.nan, 0, -3, 30]))

    assert bands.tolist() == [None, None, None, "25-34"]
    assert AGE_BANDS[0] == "<18" and AGE_BANDS[-1] == "56+"


def test_sensitive_features_map_missing_values_to_none(make_users):
    users = make_users(["F", None, " ", np.nan, "M"], occupation=["a", "b", "", "c", None])
    users["age"] = [30, 60, 10, 40, 20]

    features = sensitive_features(users)

    assert features.index.tolist() == [1, 2, 3, 4, 5]
    assert features["gender"].tolist() == ["F", None, None, None, "M"]
    assert features["occupation"].tolist() == ["a", "b", None, "c", None]
    assert features["age_band"].tolist() == ["25-34", "56+", "<18", "35-44", "18-24"]
    assert features["gender_x_age_band"].tolist() == ["F/25-34", None, None, None, "M/18-24"]


def test_sensitive_features_reject_unknown_feature_and_repeated_users(make_users):
    users = make_users(["F", "M"])
    message = (
        "features must be one of ['gender', 'age_band', 'occupation', 'gender_x_age_band'], "
        "got 'race'"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        sensitive_features(users, features=["gender", "race"])

    users.loc[1, "user_id"] = 1
    message = "users must hold one row per user_id, got 1 repeated id(s), e.g. 1"
    with pytest.raises(ValueError, match=re.escape(message)):
        sensitive_features(users)


def test_features_must_be_a_sequence_of_distinct_names(make_users):
    users = make_users(["F", "M"])

    message = "features must be a sequence of names such as ['gender'], got the string 'gender'"
    with pytest.raises(TypeError, match=re.escape(message)):
        sensitive_features(users, features="gender")
    message = "features must not repeat a name, got ['gender', 'gender']"
    with pytest.raises(ValueError, match=re.escape(message)):
        sensitive_features(users, features=["gender", "gender"])
