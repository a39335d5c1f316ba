"""User groups shared by the models' features, the figures and the fairness audit."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

#: Lower bounds of the MovieLens 1M age bands after the first, and the bands' labels.
AGE_BAND_EDGES: tuple[int, ...] = (18, 25, 35, 45, 50, 56)
AGE_BANDS: tuple[str, ...] = ("<18", "18-24", "25-34", "35-44", "45-49", "50-55", "56+")


def age_band(age: pd.Series | Sequence[float]) -> pd.Series:
    """Map ages to the MovieLens 1M age bands.

    Parameters
    ----------
    age : pandas.Series or sequence of numbers, shape [n_users]
        Ages in years (or MovieLens 1M age codes). Missing values and ages ≤ 0 have no band.

    Returns
    -------
    pandas.Series of str, shape [n_users]
        One of :data:`AGE_BANDS`, or ``None`` where the age is missing or not positive.
        Keeps the index of ``age`` when it is a Series.
    """
    ages = age if isinstance(age, pd.Series) else pd.Series(list(age), dtype="float64")
    numeric = pd.to_numeric(ages, errors="coerce").astype("float64").to_numpy()
    known = np.isfinite(numeric) & (numeric > 0)
    positions = np.searchsorted(AGE_BAND_EDGES, np.where(known, numeric, 0), side="right")
    labels = np.array(AGE_BANDS, dtype=object)[positions]
    labels[~known] = None
    return pd.Series(labels, index=ages.index, dtype=object, name="age_band")
