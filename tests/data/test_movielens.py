"""Reading MovieLens 100K's raw files: the tables, the repairs, and precise errors."""

from __future__ import annotations

import warnings

import pytest
from ml100k_files import ITEMS, RATINGS, USERS, write_ml100k

from shrek.data import load_movielens_100k, slugify
from shrek.data.schemas import MOVIES_SCHEMA, USERS_SCHEMA, ratings_schema
from shrek.errors import DataQualityWarning, DataValidationError


def load(root):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        return load_movielens_100k(root)


def test_tables_follow_their_schemas(tiny_dataset):
    ratings_schema().validate(tiny_dataset.ratings)
    USERS_SCHEMA.validate(tiny_dataset.users)
    MOVIES_SCHEMA.validate(tiny_dataset.movies)
    assert len(tiny_dataset.ratings) == len(RATINGS)
    assert len(tiny_dataset.users) == len(USERS)
    assert len(tiny_dataset.movies) == len(ITEMS)
    assert tiny_dataset.watch_log.empty


def test_movie_ids_are_unique_slugs_and_latin1_titles_decode(tiny_dataset):
    movies = tiny_dataset.movies.set_index("movie_id")
    assert list(movies.index[:3]) == ["toy+story+1995", "goldeneye+1995", "amelie+2001"]
    assert movies.loc["amelie+2001", "title"] == "Amélie"
    assert movies.loc["toy+story+1995", "year"] == 1995
    assert movies.loc["toy+story+1995", "genres"] == "Comedy"
    assert movies.index.is_unique
    assert "chasing+amy+1997+6" in movies.index


def test_movie_without_title_is_kept_with_a_warning(tiny_root):
    with pytest.warns(DataQualityWarning, match=r"u.item line 4: movie 4 has no title"):
        dataset = load_movielens_100k(tiny_root)
    untitled = dataset.movies.set_index("movie_id").loc["movie+4"]
    assert untitled.isna()[["title", "year", "release_date"]].all()
    assert (dataset.ratings["movie_id"] == "movie+4").sum() == 1


def test_ratings_map_to_movie_slugs_and_times(tiny_dataset):
    first = tiny_dataset.ratings.iloc[0]
    assert (first["user_id"], first["movie_id"], first["rating"]) == (1, "toy+story+1995", 5)
    assert str(first["timestamp"]) == "1997-12-04 15:55:49"


@pytest.mark.parametrize(
    ("title", "slug"),
    [
        ("Toy Story (1995)", "toy+story+1995"),
        ("Brothers McMullen, The (1995)", "brothers+mcmullen+the+1995"),
        ("Amélie (2001)", "amelie+2001"),
        ("8 1/2 (1963)", "8+1+2+1963"),
    ],
)
def test_slugify(title, slug):
    assert slugify(title) == slug


def test_truncated_line_names_file_line_and_field(tmp_path):
    lines = ["\t".join(map(str, r)) for r in RATINGS]
    lines[6] = "3\t2\t1"
    write_ml100k(tmp_path, data_lines=lines)
    with pytest.raises(DataValidationError) as info:
        load(tmp_path)
    assert str(info.value) == (
        "u.data line 7: expected 4 fields separated by '\\t' (user_id, item_id, rating, "
        "timestamp), got 3; field 'timestamp' is missing"
    )
    assert (info.value.file, info.value.line, info.value.field) == ("u.data", 7, "timestamp")


def test_rating_out_of_scale_names_file_line_and_field(tmp_path):
    lines = ["\t".join(map(str, r)) for r in RATINGS]
    lines[3] = "2\t1\t7\t881250952"
    write_ml100k(tmp_path, data_lines=lines)
    with pytest.raises(DataValidationError) as info:
        load(tmp_path)
    assert str(info.value) == "u.data line 4: field 'rating' must be 1–5, got 7"
    assert (info.value.file, info.value.line, info.value.field) == ("u.data", 4, "rating")


def test_unknown_user_names_file_line_and_field(tmp_path):
    lines = ["\t".join(map(str, r)) for r in RATINGS]
    lines[9] = "944\t1\t5\t881250958"
    write_ml100k(tmp_path, data_lines=lines)
    with pytest.raises(DataValidationError) as info:
        load(tmp_path)
    assert (
        str(info.value)
        == "u.data line 10: field 'user_id' must be a user listed in u.user, got 944"
    )
    assert (info.value.file, info.value.line, info.value.field) == ("u.data", 10, "user_id")


def test_repeated_rating_pair_names_file_line_and_field(tmp_path):
    """Regression (review of issue 2): a user's second rating of a movie was merged silently
    (the matrix added 4 + 5 = 9); it now stops the load at the second line."""
    lines = ["\t".join(map(str, r)) for r in RATINGS]
    lines[11] = "2\t5\t4\t881250960"  # user 2 rated movie 5 on line 5 already
    write_ml100k(tmp_path, data_lines=lines)
    with pytest.raises(DataValidationError) as info:
        load(tmp_path)
    assert str(info.value) == (
        "u.data line 12: field 'item_id' must be unique per user_id, got 5 again for user 2 "
        "(first rated on line 5)"
    )
    assert (info.value.file, info.value.line, info.value.field) == ("u.data", 12, "item_id")


def test_non_numeric_value_and_unknown_movie(tmp_path):
    lines = ["\t".join(map(str, r)) for r in RATINGS]
    lines[1] = "1\t2\tfive\t881250950"
    write_ml100k(tmp_path, data_lines=lines)
    with pytest.raises(
        DataValidationError, match=r"^u.data line 2: field 'rating' must be an integer, got 'five'$"
    ):
        load(tmp_path)

    lines[1] = "1\t99\t3\t881250950"
    write_ml100k(tmp_path, data_lines=lines)
    with pytest.raises(
        DataValidationError,
        match=r"line 2: field 'item_id' must be a movie listed in u.item, got 99",
    ):
        load(tmp_path)


def test_bad_user_fields(tmp_path):
    users = list(USERS)
    users[2] = "3|23|X|writer|32067"
    write_ml100k(tmp_path, user_lines=users)
    with pytest.raises(DataValidationError) as info:
        load(tmp_path)
    assert str(info.value) == "u.user line 3: field 'gender' must be one of 'M', 'F', got 'X'"

    users[2] = "3|23|M|astronaut|32067"
    write_ml100k(tmp_path, user_lines=users)
    with pytest.raises(
        DataValidationError,
        match=r"u.user line 3: field 'occupation' must be one of technician, .*, got 'astronaut'",
    ):
        load(tmp_path)


def test_every_failing_row_is_counted(tmp_path):
    lines = ["\t".join(map(str, r)) for r in RATINGS]
    lines[3] = "2\t1\t7\t881250952"
    lines[5] = "2\t6\t0\t881250954"
    write_ml100k(tmp_path, data_lines=lines)
    with pytest.raises(DataValidationError, match=r"line 4: .* got 7 \(1 more rows fail\)"):
        load(tmp_path)


def test_rating_scale_is_configurable(tmp_path):
    lines = ["\t".join(map(str, r)) for r in RATINGS]
    lines[3] = "2\t1\t7\t881250952"
    write_ml100k(tmp_path, data_lines=lines)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        dataset = load_movielens_100k(tmp_path, rating_scale=(1, 10))
    assert dataset.ratings["rating"].max() == 7


@pytest.mark.realdata
def test_real_movielens_100k(ml100k):
    assert ml100k.version.rows == {"ratings": 100_000, "users": 943, "movies": 1682, "watch_log": 0}
    assert ml100k.movies["movie_id"].is_unique
    assert ml100k.ratings["movie_id"].isin(ml100k.movies["movie_id"]).all()
    assert ml100k.movies["title"].isna().sum() == 1
    assert (ml100k.users["gender"] == "F").sum() == 273
    assert ml100k.version.source["md5"]["u.data"] == "6e47046882bad158b0efbb84cd5cb987"
