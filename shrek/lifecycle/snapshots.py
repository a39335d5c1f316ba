"""What a scheduled run trains on: the ratings collected up to its time, as MovieLens files.

Two sources, one output: an ``ml-100k/`` folder in MovieLens 100K's formats that the pipeline
reads as ``data.data_dir``.

- :func:`snapshot_collected`, for a deployment: the dataset a collector folder holds
  (``<folder>/dataset``, written by ``shrek collect``), cut at the run's time;
- :func:`snapshot_movielens`, for the simulation: MovieLens 100K's own files cut at a
  simulated time (the ratings "collected" by then).

Notes
-----
The pipeline reads only MovieLens files, so a collected dataset is written back in their
formats (:func:`write_ml100k_files`) and read back to check that the pipeline will see the
same ratings. Three things do not survive the round trip: the watch log (a file run has
none), sub-second parts of timestamps (``u.data`` holds whole seconds), and the display title
of a movie whose id is not the slug of its title and year (such a movie is written under its
id, so the ids, and thus the ratings, are unchanged).
"""

from __future__ import annotations

import logging
import shutil
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from shrek.data.dataset import VERSION_FILE, Dataset
from shrek.data.movielens import DEFAULT_GENRES, slugify
from shrek.errors import ShrekError

logger = logging.getLogger(__name__)

METADATA_FILES: tuple[str, ...] = ("u.item", "u.user", "u.genre", "u.occupation")
DATASET_DIR = "dataset"
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def snapshot_movielens(
    source_dir: str | Path,
    into: str | Path,
    *,
    until: datetime,
    since: datetime | None = None,
) -> Path:
    """Copy MovieLens 100K with only the ratings collected in ``(since, until]``.

    Parameters
    ----------
    source_dir : str or Path
        A folder holding ``ml-100k/``.
    into : str or Path
        Where ``ml-100k/`` is written; pass it as ``data.data_dir`` of the run.
    until, since : datetime
        UTC bounds on the ratings' timestamps (naive values are taken as UTC).

    Raises
    ------
    ShrekError
        If no rating falls in the window.
    """
    from shrek.data.download import locate_ml100k

    source = locate_ml100k(source_dir, download=False)
    target = Path(into) / "ml-100k"
    target.mkdir(parents=True, exist_ok=True)
    for name in METADATA_FILES:
        if (source / name).exists():
            shutil.copyfile(source / name, target / name)
    upper = _utc(until).timestamp()
    lower = _utc(since).timestamp() if since is not None else float("-inf")
    lines = [
        line
        for line in (source / "u.data").read_text().splitlines(keepends=True)
        if line.strip() and lower < int(line.split("\t")[3]) <= upper
    ]
    if not lines:
        raise ShrekError(
            f"no rating in {source / 'u.data'} was collected between {since} and {until}"
        )
    (target / "u.data").write_text("".join(lines))
    logger.info("snapshot of %d ratings up to %s in %s", len(lines), until, target)
    return Path(into)


def snapshot_collected(
    collector_folder: str | Path,
    into: str | Path,
    *,
    until: datetime,
    since: datetime | None = None,
) -> Path:
    """Write the ratings a collector folder holds from ``(since, until]`` as MovieLens files.

    Parameters
    ----------
    collector_folder : str or Path
        A collector folder (``shrek collect --out``) holding ``dataset/``, or a dataset folder
        itself (:meth:`~shrek.data.dataset.Dataset.save`).
    into : str or Path
        Where ``ml-100k/`` is written; pass it as ``data.data_dir`` of the run.
    until, since : datetime
        UTC bounds on the ratings' timestamps (naive values are taken as UTC).

    Returns
    -------
    Path
        ``into``.

    Raises
    ------
    ShrekError
        If the folder holds no dataset, no rating falls in the window, or the written files
        would not give the pipeline the same ratings.

    Notes
    -----
    ``dataset/`` is what the collector's last finished ``shrek collect`` wrote; a collector
    still running has not saved what it collected since (run ``shrek collect --stop-at-end``
    before each retrain, e.g. from the same cron). Ratings of users or movies whose metadata
    the collector has not fetched yet are left out, with a warning in the log.
    """
    dataset = load_collected(collector_folder)
    ratings = dataset.ratings
    stamps = ratings["timestamp"]
    keep = stamps <= _naive(until)
    if since is not None:
        keep &= stamps > _naive(since)
    ratings = ratings[keep]
    known = ratings["user_id"].isin(dataset.users["user_id"]) & ratings["movie_id"].isin(
        dataset.movies["movie_id"]
    )
    if not known.all():
        logger.warning(
            "%d collected ratings are left out: their user or movie has no metadata yet",
            int((~known).sum()),
        )
        ratings = ratings[known]
    if ratings.empty:
        raise ShrekError(
            f"no rating in {collector_folder} was collected between {since} and {until}"
        )
    target = Path(into) / "ml-100k"
    write_ml100k_files(ratings, dataset.users, dataset.movies, target)
    _check_round_trip(ratings, Path(into))
    logger.info("snapshot of %d collected ratings up to %s in %s", len(ratings), until, target)
    return Path(into)


def load_collected(collector_folder: str | Path) -> Dataset:
    """The dataset of a collector folder (``<folder>/dataset``) or of a dataset folder.

    Raises
    ------
    ShrekError
        If neither ``<folder>/dataset`` nor ``<folder>`` holds a saved dataset.
    """
    folder = Path(collector_folder)
    for candidate in (folder / DATASET_DIR, folder):
        if (candidate / VERSION_FILE).exists():
            return Dataset.load(candidate)
    raise ShrekError(
        f"collector_folder must hold the dataset `shrek collect` saves ({folder / DATASET_DIR}"
        f"/{VERSION_FILE}) or be a dataset folder itself, got {folder} without either"
    )


def write_ml100k_files(
    ratings: pd.DataFrame, users: pd.DataFrame, movies: pd.DataFrame, folder: str | Path
) -> Path:
    """Write Shrek's tables in MovieLens 100K's formats (``u.data``, ``u.item`` ...).

    Parameters
    ----------
    ratings : pandas.DataFrame
        ``[n_ratings, 4]``: user_id, movie_id, rating, timestamp; every user and movie must be
        in ``users`` and ``movies``.
    users : pandas.DataFrame
        ``[n_users, 5]``: user_id, age, gender, occupation, zip.
    movies : pandas.DataFrame
        ``[n_movies, 6]``: movie_id, title, year, release_date, genres, imdb_url.
    folder : str or Path
        The ``ml-100k`` folder to write.

    Returns
    -------
    Path
        ``folder``. MovieLens item ids are 1..n in the order of ``movies``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    occupations = sorted(users["occupation"].astype(str).unique())
    (folder / "u.occupation").write_text("".join(f"{o}\n" for o in occupations))
    (folder / "u.user").write_text(
        "".join(
            f"{u.user_id}|{u.age}|{u.gender}|{u.occupation}|{_field(u.zip)}\n"
            for u in users.itertuples(index=False)
        ),
        encoding="latin-1",
        errors="replace",
    )

    names = [name for text in movies["genres"] for name in str(text).split("|") if name]
    genres = DEFAULT_GENRES + sorted(set(names) - set(DEFAULT_GENRES))
    (folder / "u.genre").write_text("".join(f"{g}|{i}\n" for i, g in enumerate(genres)) + "\n")
    item_of_movie = {movie: item for item, movie in enumerate(movies["movie_id"], start=1)}
    lines = []
    for item, movie in enumerate(movies.itertuples(index=False), start=1):
        flags = set(str(movie.genres).split("|"))
        fields = [
            str(item),
            _title(movie),
            _date(movie.release_date),
            "",
            _field(movie.imdb_url),
            *("1" if g in flags else "0" for g in genres),
        ]
        lines.append("|".join(fields) + "\n")
    (folder / "u.item").write_text("".join(lines), encoding="latin-1")

    seconds = ratings["timestamp"].astype("datetime64[ns]").astype("int64") // 10**9
    (folder / "u.data").write_text(
        "".join(
            f"{user}\t{item_of_movie[movie]}\t{rating}\t{stamp}\n"
            for user, movie, rating, stamp in zip(
                ratings["user_id"], ratings["movie_id"], ratings["rating"], seconds, strict=True
            )
        )
    )
    return folder


def _title(movie: Any) -> str:
    """``Title (year)`` when MovieLens's reader turns it back into the movie's id, else the id
    in words (its slug is the id itself)."""
    movie_id, title, year = movie.movie_id, movie.title, movie.year
    if isinstance(title, str) and title.strip():
        text = f"{title} ({year})" if pd.notna(year) else title
        if (
            slugify(text) == movie_id
            and "|" not in text
            and text.strip().lower() != "unknown"
            and _latin1(text)
        ):
            return text
    return movie_id.replace("+", " ")


def _check_round_trip(ratings: pd.DataFrame, data_dir: Path) -> None:
    from shrek.data import load_movielens_100k

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        read = load_movielens_100k(data_dir, download=False).ratings
    columns = ["user_id", "movie_id", "rating", "timestamp"]
    expected = ratings[columns].assign(timestamp=ratings["timestamp"].dt.floor("s"))
    order = ["user_id", "movie_id", "timestamp"]
    expected = expected.sort_values(order, ignore_index=True)
    read = read[columns].sort_values(order, ignore_index=True)
    if not expected.equals(read.astype(expected.dtypes.to_dict())):
        raise ShrekError(
            f"the MovieLens files written to {data_dir} do not give back the collected ratings "
            f"({len(read)} read, {len(expected)} collected); please report this dataset"
        )


def _date(value: object) -> str:
    if pd.isna(value):
        return ""
    stamp = pd.Timestamp(value)
    return f"{stamp.day:02d}-{_MONTHS[stamp.month - 1]}-{stamp.year}"


def _field(value: object) -> str:
    return "" if value is None or pd.isna(value) else str(value).replace("|", " ")


def _latin1(text: str) -> bool:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def _naive(moment: datetime) -> pd.Timestamp:
    return pd.Timestamp(_utc(moment).replace(tzinfo=None))


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
