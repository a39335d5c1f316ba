"""Read MovieLens 100K's raw files into Shrek's four tables.

The reader is strict: a line with the wrong number of fields, a value of the wrong form, a rating
outside the scale, a rating by a user missing from ``u.user`` or a second rating of the same
movie by the same user stops the load with a :class:`~shrek.errors.DataValidationError` that
names the file, the line and the field.
Nothing is dropped. Two repairs are made, each with a :class:`~shrek.errors.DataQualityWarning`:
movies without a title (``u.item`` line 267, "unknown") get the id ``movie+<movielens id>``, and
titles that occur more than once get the MovieLens id appended to keep ids unique.
"""

from __future__ import annotations

import hashlib
import logging
import re
import unicodedata
import warnings
from pathlib import Path

import pandas as pd
import pandera.pandas as pa

from shrek.data.dataset import Dataset
from shrek.data.download import ML100K_FILES, locate_ml100k
from shrek.data.schemas import (
    DEFAULT_RATING_SCALE,
    MOVIES_SCHEMA,
    USERS_SCHEMA,
    empty_table,
    ratings_schema,
    validate_table,
)
from shrek.errors import DataQualityWarning, DataValidationError

logger = logging.getLogger(__name__)

DEFAULT_GENRES = [
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
]
RATING_FIELDS = ("user_id", "item_id", "rating", "timestamp")
USER_FIELDS = ("user_id", "age", "gender", "occupation", "zip")
ITEM_FIELDS = ("item_id", "title", "release_date", "video_release_date", "imdb_url")
_TITLE_YEAR = re.compile(r"^(?P<title>.*?)\s*\((?P<year>\d{4})\)\s*$")
_DIGITS = r"^\d+$"
_DATE = r"^\d{1,2}-[A-Z][a-z]{2}-\d{4}$"


def load_movielens_100k(
    data_dir: str | Path | None = None,
    *,
    rating_scale: tuple[int, int] = DEFAULT_RATING_SCALE,
    download: bool = True,
) -> Dataset:
    """Load MovieLens 100K as Shrek's four validated tables.

    Parameters
    ----------
    data_dir : str or Path, optional
        A folder holding ``ml-100k/u.data``, ``u.item``, ``u.user``. Defaults to the
        ``SHREK_DATA_DIR`` environment variable; when neither is set the archive is
        downloaded once from GroupLens into the cache and its checksums verified.
    rating_scale : tuple of int, default (1, 5)
        The accepted ratings ``(low, high)``.
    download : bool, default True
        Whether a missing dataset may be downloaded.

    Returns
    -------
    Dataset
        ratings (100,000 rows), users (943), movies (1,682) and an empty watch log, with a
        data version recording the source files' checksums.
    """
    folder = locate_ml100k(data_dir, download=download)
    return read_ml100k_folder(folder, rating_scale=rating_scale)


def read_ml100k_folder(
    folder: str | Path, *, rating_scale: tuple[int, int] = DEFAULT_RATING_SCALE
) -> Dataset:
    """Read the raw files of one ``ml-100k`` folder (see :func:`load_movielens_100k`)."""
    folder = Path(folder)
    occupations = _read_list(folder / "u.occupation")
    genres = _read_genres(folder / "u.genre")

    users = read_users(folder / "u.user", occupations=occupations)
    movies, slug_of_item = read_items(folder / "u.item", genres=genres)
    ratings = read_ratings(
        folder / "u.data",
        user_ids=set(users["user_id"]),
        slug_of_item=slug_of_item,
        rating_scale=rating_scale,
    )

    checksums = {name: _md5(folder / name) for name in ML100K_FILES if (folder / name).exists()}
    source = {"kind": "movielens-100k", "path": str(folder.resolve()), "md5": checksums}
    logger.info("read MovieLens 100K from %s", folder)
    return Dataset.from_tables(
        ratings=ratings,
        users=users,
        movies=movies,
        watch_log=empty_table("watch_log"),
        source=source,
        rating_scale=rating_scale,
    )


def read_users(path: Path, *, occupations: list[str] | None = None) -> pd.DataFrame:
    """Read ``u.user`` into the users table (see :mod:`shrek.data.schemas`)."""
    raw = read_delimited(path, sep="|", fields=USER_FIELDS, encoding="latin-1")
    form = pa.DataFrameSchema(
        {
            "user_id": pa.Column(str, pa.Check.str_matches(_DIGITS, error="must be an integer")),
            "age": pa.Column(str, pa.Check.str_matches(_DIGITS, error="must be an integer")),
        }
    )
    validate_table(raw, form, source=path.name, line_of_row=1)
    users = raw.astype({"user_id": "int64", "age": "int64"})
    schema = USERS_SCHEMA
    if occupations:
        accepted = ", ".join(occupations)
        schema = schema.update_column(
            "occupation",
            checks=[pa.Check.isin(occupations, error=f"must be one of {accepted}")],
        )
    return validate_table(users, schema, source=path.name, line_of_row=1)


def read_items(path: Path, *, genres: list[str] | None = None) -> tuple[pd.DataFrame, dict]:
    """Read ``u.item`` (Latin-1) into the movies table.

    Returns
    -------
    movies : pandas.DataFrame
        The movies table, one row per line of ``u.item``.
    slug_of_item : dict of int to str
        MovieLens item id to Shrek's movie id.
    """
    genres = list(genres or DEFAULT_GENRES)
    raw = read_delimited(path, sep="|", fields=ITEM_FIELDS + tuple(genres), encoding="latin-1")
    form = pa.DataFrameSchema(
        {
            "item_id": pa.Column(
                str, pa.Check.str_matches(_DIGITS, error="must be an integer"), unique=True
            ),
            "release_date": pa.Column(
                str,
                pa.Check.str_matches(_DATE, error="must be a date like 01-Jan-1995"),
                nullable=True,
            ),
            **{
                g: pa.Column(str, pa.Check.isin(["0", "1"], error="must be 0 or 1")) for g in genres
            },
        }
    )
    validate_table(raw, form, source=path.name, line_of_row=1)

    item_ids = raw["item_id"].astype("int64")
    split = raw["title"].fillna("").str.extract(_TITLE_YEAR)
    untitled = raw["title"].isna() | raw["title"].str.strip().str.lower().isin(["", "unknown"])
    release = pd.to_datetime(raw["release_date"], format="%d-%b-%Y").astype("datetime64[ns]")
    year = pd.to_numeric(split["year"]).astype("Int64").fillna(release.dt.year.astype("Int64"))
    flags = raw[genres].eq("1")
    genre_names = flags.apply(
        lambda row: "|".join(g for g, on in zip(genres, row, strict=True) if on), axis=1
    )

    slugs = raw["title"].fillna("").map(slugify).where(~untitled, "movie+" + raw["item_id"])
    slugs = _disambiguate(slugs, item_ids)
    for row in untitled[untitled].index:
        warnings.warn(
            f"{path.name} line {row + 1}: movie {raw['item_id'][row]} has no title; "
            f"kept as {slugs[row]!r}",
            DataQualityWarning,
            stacklevel=2,
        )

    movies = pd.DataFrame(
        {
            "movie_id": slugs,
            "title": split["title"].where(split["title"].notna(), raw["title"]).where(~untitled),
            "year": year,
            "release_date": release,
            "genres": genre_names,
            "imdb_url": raw["imdb_url"],
        }
    )
    movies = validate_table(movies, MOVIES_SCHEMA, source=path.name, line_of_row=1)
    return movies, dict(zip(item_ids, slugs, strict=True))


def read_ratings(
    path: Path,
    *,
    user_ids: set[int],
    slug_of_item: dict[int, str],
    rating_scale: tuple[int, int] = DEFAULT_RATING_SCALE,
) -> pd.DataFrame:
    """Read ``u.data`` into the ratings table, checking users and movies exist.

    Raises
    ------
    DataValidationError
        A malformed line, an unknown user or movie, a rating outside ``rating_scale``, or a
        (user_id, item_id) pair that occurs on more than one line (named at its second line).
    """
    raw = read_delimited(path, sep="\t", fields=RATING_FIELDS, encoding="ascii")
    digits = pa.Check.str_matches(_DIGITS, error="must be an integer")
    form = pa.DataFrameSchema({name: pa.Column(str, digits) for name in RATING_FIELDS})
    validate_table(raw, form, source=path.name, line_of_row=1)
    typed = raw.astype("int64")

    low, high = rating_scale
    known = pa.DataFrameSchema(
        {
            "user_id": pa.Column(
                "int64", pa.Check.isin(user_ids, error="must be a user listed in u.user")
            ),
            "item_id": pa.Column(
                "int64", pa.Check.isin(slug_of_item, error="must be a movie listed in u.item")
            ),
            "rating": pa.Column(
                "int64", pa.Check.in_range(low, high, error=f"must be {low}–{high}")
            ),
        }
    )
    validate_table(typed, known, source=path.name, line_of_row=1)
    _check_one_rating_per_pair(typed, source=path.name)

    ratings = pd.DataFrame(
        {
            "user_id": typed["user_id"],
            "movie_id": typed["item_id"].map(slug_of_item),
            "rating": typed["rating"],
            "timestamp": pd.to_datetime(typed["timestamp"], unit="s").astype("datetime64[ns]"),
        }
    )
    return validate_table(ratings, ratings_schema(rating_scale), source=path.name, line_of_row=1)


def read_delimited(path: Path, *, sep: str, fields: tuple[str, ...], encoding: str) -> pd.DataFrame:
    """Read a delimited file with no header into string columns, one row per line.

    Empty fields become missing values. A line with a number of fields other than
    ``len(fields)`` (a truncated or an empty line) raises :class:`DataValidationError`
    naming the file and the line.
    """
    try:
        text = path.read_text(encoding=encoding)
    except UnicodeDecodeError as err:
        line = path.read_bytes()[: err.start].count(b"\n") + 1
        raise DataValidationError(
            f"{path.name} line {line}: bytes that are not {encoding} ({err.reason})",
            file=path.name,
            line=line,
        ) from None
    except FileNotFoundError:
        raise DataValidationError(f"{path} does not exist", file=path.name) from None

    rows = text.split("\n")
    if rows and rows[-1] == "":
        rows.pop()
    split = [row.rstrip("\r").split(sep) for row in rows]
    for number, values in enumerate(split, start=1):
        if len(values) != len(fields):
            missing = fields[len(values)] if len(values) < len(fields) else None
            detail = f"; field {missing!r} is missing" if missing else ""
            raise DataValidationError(
                f"{path.name} line {number}: expected {len(fields)} fields separated by "
                f"{sep!r} ({', '.join(fields)}), got {len(values)}{detail}",
                file=path.name,
                line=number,
                field=missing,
            )
    frame = pd.DataFrame(split, columns=list(fields), dtype=object)
    return frame.where(frame != "", None)


def slugify(title: str) -> str:
    """Shrek's movie id for a title: ``"Toy Story (1995)"`` -> ``"toy+story+1995"``."""
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    return "+".join(re.findall(r"[a-z0-9]+", ascii_title.lower()))


def _disambiguate(slugs: pd.Series, item_ids: pd.Series) -> pd.Series:
    """Append the MovieLens id to every repeat of a slug after its first occurrence."""
    repeated = slugs.duplicated(keep="first")
    if repeated.any():
        warnings.warn(
            f"{int(repeated.sum())} movie titles occur more than once in u.item; their later "
            "occurrences get the MovieLens id appended to keep movie ids unique",
            DataQualityWarning,
            stacklevel=3,
        )
    return slugs.where(~repeated, slugs + "+" + item_ids.astype(str))


def _check_one_rating_per_pair(typed: pd.DataFrame, *, source: str) -> None:
    """Refuse a (user_id, item_id) pair rated on two lines: nothing says which rating holds."""
    pairs = ["user_id", "item_id"]
    repeated = typed.duplicated(pairs, keep="first").to_numpy()
    if not repeated.any():
        return
    row = int(repeated.nonzero()[0][0])
    user, item = (int(typed[name].iloc[row]) for name in pairs)
    first = int(((typed["user_id"] == user) & (typed["item_id"] == item)).to_numpy().argmax())
    others = int(repeated.sum()) - 1
    more = f" ({others} more repeated lines)" if others else ""
    raise DataValidationError(
        f"{source} line {row + 1}: field 'item_id' must be unique per user_id, got {item} again "
        f"for user {user} (first rated on line {first + 1}){more}",
        file=source,
        line=row + 1,
        field="item_id",
    )


def _read_list(path: Path) -> list[str] | None:
    if not path.exists():
        return None
    return [line.strip() for line in path.read_text(encoding="latin-1").splitlines() if line]


def _read_genres(path: Path) -> list[str] | None:
    names = _read_list(path)
    return [line.rsplit("|", 1)[0] for line in names] if names else None


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()
