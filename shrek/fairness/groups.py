"""The user groups the audit compares: gender, age band, occupation and gender × age band.

Age bands follow MovieLens 1M, whose ``users.dat`` records age only as one of these bands:

=========  ==========
band       ages
=========  ==========
``<18``    1–17
``18-24``  18–24
``25-34``  25–34
``35-44``  35–44
``45-49``  45–49
``50-55``  50–55
``56+``    56 and over
=========  ==========

MovieLens 1M's own age codes (1, 18, 25, 35, 45, 50, 56) fall into the band they stand for,
so the same function serves raw ages (MovieLens 100K) and coded ages (MovieLens 1M).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import pandas as pd

from shrek.data.demographics import AGE_BANDS, age_band
from shrek.fairness._validation import require_choice, require_frame

logger = logging.getLogger(__name__)

FEATURES: tuple[str, ...] = ("gender", "age_band", "occupation", "gender_x_age_band")
INTERSECTION_SEPARATOR = "/"


def group_order(feature: str, labels: Sequence[str]) -> list[str]:
    """The display order of a feature's groups: bands by age, everything else alphabetically."""
    present = sorted(set(labels))
    if feature == "age_band":
        return [band for band in AGE_BANDS if band in present]
    if feature == "gender_x_age_band":
        return sorted(present, key=_intersection_key)
    return present


def sensitive_features(
    users: pd.DataFrame,
    *,
    features: Sequence[str] = FEATURES,
) -> pd.DataFrame:
    """Build one group label per user and audited feature.

    Parameters
    ----------
    users : pandas.DataFrame, shape [n_users, >= 4]
        Columns ``user_id``, ``age``, ``gender`` and ``occupation``. Gender, age and
        occupation may be missing (``None``, NaN or an empty string).
    features : sequence of str, default :data:`FEATURES`
        Which of ``"gender"``, ``"age_band"``, ``"occupation"`` and ``"gender_x_age_band"``
        to build.

    Returns
    -------
    pandas.DataFrame, shape [n_users, len(features)]
        Indexed by ``user_id``; each column holds the user's group as a string, or ``None``
        when the user has no value for that feature. The intersection is written
        ``"F/25-34"``.

    Raises
    ------
    TypeError
        If ``features`` is a single string rather than a sequence of names.
    ValueError
        If a feature is not one of the accepted names or repeats, or ``user_id`` repeats.
    """
    if isinstance(features, str):
        raise TypeError(
            f"features must be a sequence of names such as ['gender'], got the string {features!r}"
        )
    for feature in features:
        require_choice(feature, "features", FEATURES)
    if len(set(features)) < len(features):
        raise ValueError(f"features must not repeat a name, got {list(features)}")
    needed = {"user_id"}
    if {"gender", "gender_x_age_band"} & set(features):
        needed.add("gender")
    if {"age_band", "gender_x_age_band"} & set(features):
        needed.add("age")
    if "occupation" in features:
        needed.add("occupation")
    require_frame(users, "users", sorted(needed))
    duplicated = users["user_id"][users["user_id"].duplicated()]
    if len(duplicated):
        raise ValueError(
            f"users must hold one row per user_id, got {len(duplicated)} repeated id(s), "
            f"e.g. {duplicated.iloc[0]}"
        )

    index = pd.Index(users["user_id"].to_numpy(dtype="int64"), name="user_id")
    columns: dict[str, pd.Series] = {}
    gender = _clean_label(users["gender"]) if "gender" in needed else None
    band = age_band(users["age"]) if "age" in needed else None
    if "gender" in features:
        columns["gender"] = gender
    if "age_band" in features:
        columns["age_band"] = band
    if "occupation" in features:
        columns["occupation"] = _clean_label(users["occupation"])
    if "gender_x_age_band" in features:
        both = gender.notna() & band.notna()
        joined = gender.where(both, "") + INTERSECTION_SEPARATOR + band.where(both, "")
        columns["gender_x_age_band"] = joined.where(both, None)
    frame = pd.DataFrame({name: column.to_numpy() for name, column in columns.items()}, index=index)
    return frame.astype(object).where(frame.notna(), None)


def _clean_label(values: pd.Series) -> pd.Series:
    """Strip strings; map missing and empty values to ``None``."""
    cleaned = values.astype(object).map(lambda v: None if pd.isna(v) else str(v).strip())
    return cleaned.map(lambda v: v or None).astype(object)


def _intersection_key(label: str) -> tuple[str, int]:
    gender, _, band = label.partition(INTERSECTION_SEPARATOR)
    return gender, AGE_BANDS.index(band) if band in AGE_BANDS else len(AGE_BANDS)
