"""The four tables every stage of Shrek reads, as pandera schemas.

=========  ==============================================================================
table      columns
=========  ==============================================================================
ratings    user_id (int64), movie_id (str slug), rating (int64), timestamp (datetime64[ns])
users      user_id (int64), age (int64), gender ("M"/"F"), occupation (str), zip (str)
movies     movie_id (str slug), title (str, nullable), year (Int64, nullable),
           release_date (datetime64[ns], nullable), genres (str, "|"-joined), imdb_url
watch_log  user_id (int64), movie_id (str slug), minutes_watched (int64),
           last_minute (int64), timestamp (datetime64[ns], time of the last minute watched)
=========  ==============================================================================

Timestamps are naive UTC. Movie ids use the stream's slug form: the lower-cased title with its
year, words joined by ``+`` (``toy+story+1995``).
"""

from __future__ import annotations

import re

import pandas as pd
import pandera.pandas as pa

from shrek.errors import DataValidationError

SLUG_PATTERN = r"^[a-z0-9]+(\+[a-z0-9]+)*$"
SLUG_RE = re.compile(SLUG_PATTERN)
GENDERS = ("M", "F")
DEFAULT_RATING_SCALE = (1, 5)

TABLES = ("ratings", "users", "movies", "watch_log")


def _slug_column(*, unique: bool = False) -> pa.Column:
    check = pa.Check.str_matches(SLUG_PATTERN, error="must be a slug like 'toy+story+1995'")
    return pa.Column(str, check, unique=unique)


def ratings_schema(rating_scale: tuple[int, int] = DEFAULT_RATING_SCALE) -> pa.DataFrameSchema:
    """Schema of the ratings table for a rating scale ``(low, high)``."""
    low, high = rating_scale
    return pa.DataFrameSchema(
        {
            "user_id": pa.Column("int64", pa.Check.gt(0, error="must be a positive integer")),
            "movie_id": _slug_column(),
            "rating": pa.Column(
                "int64", pa.Check.in_range(low, high, error=f"must be {low}–{high}")
            ),
            "timestamp": pa.Column("datetime64[ns]"),
        },
        strict=True,
        ordered=True,
        name="ratings",
    )


USERS_SCHEMA = pa.DataFrameSchema(
    {
        "user_id": pa.Column(
            "int64", pa.Check.gt(0, error="must be a positive integer"), unique=True
        ),
        "age": pa.Column("int64", pa.Check.in_range(1, 120, error="must be 1–120")),
        "gender": pa.Column(str, pa.Check.isin(GENDERS, error="must be one of 'M', 'F'")),
        "occupation": pa.Column(str, pa.Check.str_length(min_value=1, error="must not be empty")),
        "zip": pa.Column(str),
    },
    strict=True,
    ordered=True,
    name="users",
)

MOVIES_SCHEMA = pa.DataFrameSchema(
    {
        "movie_id": _slug_column(unique=True),
        "title": pa.Column(str, nullable=True),
        "year": pa.Column("Int64", pa.Check.in_range(1870, 2100), nullable=True),
        "release_date": pa.Column("datetime64[ns]", nullable=True),
        "genres": pa.Column(str),
        "imdb_url": pa.Column(str, nullable=True),
    },
    strict=True,
    ordered=True,
    name="movies",
)

WATCH_LOG_SCHEMA = pa.DataFrameSchema(
    {
        "user_id": pa.Column("int64", pa.Check.gt(0, error="must be a positive integer")),
        "movie_id": _slug_column(),
        "minutes_watched": pa.Column("int64", pa.Check.ge(0, error="must be ≥ 0")),
        "last_minute": pa.Column("int64", pa.Check.ge(0, error="must be ≥ 0")),
        "timestamp": pa.Column("datetime64[ns]"),
    },
    strict=True,
    ordered=True,
    name="watch_log",
)


def empty_table(name: str) -> pd.DataFrame:
    """An empty DataFrame with the columns and dtypes of table ``name``."""
    schema = {
        "ratings": ratings_schema(),
        "users": USERS_SCHEMA,
        "movies": MOVIES_SCHEMA,
        "watch_log": WATCH_LOG_SCHEMA,
    }[name]
    columns = {
        column: pd.Series(dtype=str(col.dtype) if str(col.dtype) != "str" else "object")
        for column, col in schema.columns.items()
    }
    return schema.validate(pd.DataFrame(columns))


def validate_table(
    frame: pd.DataFrame,
    schema: pa.DataFrameSchema,
    *,
    source: str,
    line_of_row: int | None = None,
) -> pd.DataFrame:
    """Validate ``frame`` against ``schema``; raise one precise error for the first failure.

    Parameters
    ----------
    frame : pandas.DataFrame
        The table to check.
    schema : pandera.DataFrameSchema
        Its schema.
    source : str
        The file or table name used in the message.
    line_of_row : int, optional
        When given, row ``i`` of ``frame`` came from line ``i + line_of_row`` of ``source``
        and the message names that line; otherwise it names the row index.

    Raises
    ------
    DataValidationError
        Naming the source, the line (or row), the field, the rule and the value received,
        with the count of further failures.
    """
    try:
        return schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as err:
        raise schema_error_to_validation_error(
            err, source=source, line_of_row=line_of_row
        ) from None


def schema_error_to_validation_error(
    err: pa.errors.SchemaErrors, *, source: str, line_of_row: int | None = None
) -> DataValidationError:
    """Turn pandera's failure cases into one :class:`DataValidationError`."""
    cases = err.failure_cases
    located = cases[cases["index"].notna()].copy()
    if located.empty:
        first = cases.iloc[0]
        return DataValidationError(
            f"{source}: field {first['column']!r} {_describe(first['check'])}, "
            f"got {first['failure_case']!r}",
            file=source,
            field=None if pd.isna(first["column"]) else str(first["column"]),
        )
    located["index"] = located["index"].astype("int64")
    first = located.sort_values("index", kind="stable").iloc[0]
    row = int(first["index"])
    where = f"line {row + line_of_row}" if line_of_row is not None else f"row {row}"
    value = first["failure_case"]
    value = value.item() if hasattr(value, "item") else value
    got = "nothing" if pd.isna(value) else repr(value)
    others = len(located["index"].unique()) - 1
    more = f" ({others} more rows fail)" if others else ""
    return DataValidationError(
        f"{source} {where}: field {first['column']!r} {_describe(first['check'])}, got {got}{more}",
        file=source,
        line=row + line_of_row if line_of_row is not None else None,
        field=str(first["column"]),
    )


def _describe(check: str) -> str:
    """Plain words for a pandera check name."""
    check = str(check)
    if check == "not_nullable":
        return "is missing"
    if check.startswith("field_uniqueness") or check.startswith("unique"):
        return "must be unique"
    if check.startswith("dtype(") or check.startswith("coerce_dtype("):
        return f"must have type {check.split('(', 1)[1].rstrip(')')}"
    if check.startswith("column_in_dataframe"):
        return "is required"
    return check
