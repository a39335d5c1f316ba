"""The metadata API over HTTP and its client."""

from __future__ import annotations

import pytest
import requests

from shrek.stream.broker import free_port
from shrek.stream.metadata_api import MetadataClient, MetadataServer, MetadataUnavailableError


def test_user_and_movie_documents(metadata_server, small_dataset):
    user = requests.get(f"{metadata_server.url}/user/1", timeout=5).json()
    row = small_dataset.users.iloc[0]
    assert user == {
        "user_id": 1,
        "age": int(row.age),
        "gender": row.gender,
        "occupation": row.occupation,
        "zip": row.zip,
    }
    movie = requests.get(f"{metadata_server.url}/movie/movie+0+1990", timeout=5).json()
    assert movie["title"] == "Movie 0"
    assert movie["year"] == 1990
    assert movie["release_date"] == "1990-01-01"


@pytest.mark.parametrize(
    ("path", "status", "error"),
    [
        ("/user/999", 404, "unknown user id '999'"),
        ("/movie/no+such+movie", 404, "unknown movie id 'no+such+movie'"),
        ("/user/abc", 400, "user id must be a positive integer, got 'abc'"),
        (
            "/movie/Toy%20Story",
            400,
            "movie id must be a slug like 'toy+story+1995', got 'Toy%20Story'",
        ),
        ("/film/1", 404, "no such endpoint '/film/1'; use /user/<id> or /movie/<id>"),
    ],
)
def test_errors_are_json_with_a_clear_message(metadata_server, path, status, error):
    response = requests.get(metadata_server.url + path, timeout=5)
    assert response.status_code == status
    assert response.json() == {"error": error}


def test_client_caches_answers_including_unknown_ids(metadata_server):
    client = MetadataClient(metadata_server.url)
    assert client.get("user", 2)["user_id"] == 2
    assert client.get("movie", "no+such+movie") is None
    metadata_server.stop()
    assert client.get("user", 2)["user_id"] == 2
    assert client.get("movie", "no+such+movie") is None


def test_client_retries_then_reports_the_api_unavailable():
    client = MetadataClient(
        f"http://127.0.0.1:{free_port()}", timeout=0.2, attempts=3, backoff=0.01
    )
    with pytest.raises(MetadataUnavailableError, match="unavailable after 3 attempts"):
        client.get("user", 1)


def test_client_reaches_a_server_that_comes_back(small_dataset):
    port = free_port()
    client = MetadataClient(f"http://127.0.0.1:{port}", timeout=0.2, attempts=1)
    with pytest.raises(MetadataUnavailableError):
        client.get("user", 1)
    with MetadataServer(small_dataset, port=port):
        assert client.get("user", 1)["user_id"] == 1


def test_client_rejects_unknown_kinds():
    with pytest.raises(ValueError, match="kind must be 'user' or 'movie', got 'genre'"):
        MetadataClient("http://127.0.0.1:1").get("genre", 1)


def test_batch_endpoint_answers_many_ids_in_one_request(metadata_server):
    response = requests.post(
        f"{metadata_server.url}/batch",
        json={"user": ["1", "2"], "movie": ["movie+0+1990", "no+such+movie"]},
        timeout=5,
    )
    answer = response.json()
    assert response.status_code == 200
    assert answer["user"]["1"] == requests.get(f"{metadata_server.url}/user/1", timeout=5).json()
    assert answer["user"]["2"]["user_id"] == 2
    assert answer["movie"]["movie+0+1990"]["movie_id"] == "movie+0+1990"
    assert answer["movie"]["no+such+movie"] is None


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"user": ["0"]}, "user id must be a positive integer, got '0'"),
        (
            {"movie": ["Toy Story"]},
            "movie id must be a slug like 'toy+story+1995', got 'Toy Story'",
        ),
        (
            {"genre": ["x"]},
            "body must be an object with keys 'user' and/or 'movie', got {'genre': ['x']}",
        ),
        ({"user": 1}, "body's 'user' and 'movie' must be lists of ids"),
    ],
)
def test_batch_endpoint_rejects_malformed_requests(metadata_server, body, error):
    response = requests.post(f"{metadata_server.url}/batch", json=body, timeout=5)
    assert response.status_code == 400
    assert response.json() == {"error": error}


def test_client_get_many_uses_one_batch_request_and_caches(metadata_server):
    client = MetadataClient(metadata_server.url)
    keys = [("user", "1"), ("user", "2"), ("movie", "movie+0+1990"), ("movie", "no+such+movie")]
    answers = client.get_many(keys)
    assert answers[("user", "2")]["user_id"] == 2
    assert answers[("movie", "no+such+movie")] is None
    metadata_server.stop()
    assert client.get_many(keys) == answers


def test_client_get_many_reports_the_api_unavailable():
    client = MetadataClient(
        f"http://127.0.0.1:{free_port()}", timeout=0.2, attempts=2, backoff=0.01
    )
    with pytest.raises(MetadataUnavailableError, match="unavailable after 2 attempts"):
        client.get_many([("user", "1"), ("user", "2")])
