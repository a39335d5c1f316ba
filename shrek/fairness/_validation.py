"""Argument checks shared by the fairness modules; messages follow fairlearn's."""

from __future__ import annotations

import numbers
from collections.abc import Iterable

import pandas as pd


def require_frame(frame: object, name: str, columns: Iterable[str]) -> pd.DataFrame:
    """Return ``frame`` if it is a DataFrame holding ``columns``, else raise."""
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"{name} must be a pandas DataFrame, got {type(frame).__name__}")
    expected = list(columns)
    missing = [column for column in expected if column not in frame.columns]
    if missing:
        raise ValueError(
            f"{name} is missing column(s) {missing}; expected at least {expected}, "
            f"got {list(frame.columns)}"
        )
    return frame


def require_int(value: object, name: str, *, minimum: int) -> int:
    """Return ``value`` as an int if it is an integer ≥ ``minimum``, else raise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer ≥ {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer ≥ {minimum}, got {value!r}")
    return int(value)


def require_fraction(value: object, name: str, *, closed_high: bool = True) -> float:
    """Return ``value`` as a float in (0, 1] (or (0, 1) when not ``closed_high``), else raise."""
    interval = "(0, 1]" if closed_high else "(0, 1)"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number in {interval}, got {value!r}")
    inside = 0 < value <= 1 if closed_high else 0 < value < 1
    if not inside:
        raise ValueError(f"{name} must be a number in {interval}, got {value!r}")
    return float(value)


def require_choice(value: object, name: str, accepted: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``accepted``, else raise ``ValueError``."""
    choices = list(accepted)
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return str(value)
