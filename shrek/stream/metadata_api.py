"""The user and movie metadata service: an HTTP server over a dataset, and its client.

``GET /user/<id>`` returns ``{"user_id", "age", "gender", "occupation", "zip"}`` and
``GET /movie/<id>`` ``{"movie_id", "title", "year", "release_date", "genres", "imdb_url"}``
(``genres`` is a list; ``release_date`` ISO ``YYYY-MM-DD`` or null). Unknown ids answer 404 and
malformed ids 400, both with a JSON ``{"error": ...}`` that says which.

``POST /batch`` with ``{"user": [<id>, ...], "movie": [<id>, ...]}`` answers many ids in one
request: ``{"user": {"<id>": <document or null>}, "movie": {...}}`` (null for unknown ids; a
malformed id fails the whole request with 400). At most :data:`BATCH_LIMIT` ids per request.

The :class:`MetadataClient` retries connection failures, timeouts and 5xx answers with
exponential backoff (tenacity) and caches answers, 404s included. It raises
:class:`MetadataUnavailableError` when the service stays down, so the collector can store the
events and fetch the metadata later (see :class:`shrek.stream.resolver.MetadataResolver`).

Notes
-----
MovieLens gives no tmdb id, runtime or popularity; the API returns the fields the dataset has.
The server is the standard library's ``ThreadingHTTPServer``: enough for a local workbench and
the tests, not meant to face the internet.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import socket
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal

import pandas as pd
import requests
import tenacity

from shrek.data.dataset import Dataset
from shrek.data.schemas import SLUG_RE
from shrek.errors import ShrekError

logger = logging.getLogger(__name__)

Kind = Literal["user", "movie"]
KINDS: tuple[Kind, ...] = ("user", "movie")
_PATH_RE = re.compile(r"^/(user|movie)/([^/?#]*)$")
_USER_ID_RE = re.compile(r"[1-9]\d{0,17}")
BATCH_LIMIT = 2000


class MetadataUnavailableError(ShrekError):
    """The metadata API did not answer (down, timing out, or failing with 5xx)."""


def user_records(users: pd.DataFrame) -> dict[int, dict[str, Any]]:
    """The API's user documents keyed by user id, from a users table."""
    return {
        int(row.user_id): {
            "user_id": int(row.user_id),
            "age": int(row.age),
            "gender": str(row.gender),
            "occupation": str(row.occupation),
            "zip": str(row.zip),
        }
        for row in users.itertuples(index=False)
    }


def movie_records(movies: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """The API's movie documents keyed by movie id, from a movies table."""
    records = {}
    for row in movies.itertuples(index=False):
        records[str(row.movie_id)] = {
            "movie_id": str(row.movie_id),
            "title": None if pd.isna(row.title) else str(row.title),
            "year": None if pd.isna(row.year) else int(row.year),
            "release_date": None
            if pd.isna(row.release_date)
            else pd.Timestamp(row.release_date).strftime("%Y-%m-%d"),
            "genres": [g for g in str(row.genres).split("|") if g],
            "imdb_url": None if pd.isna(row.imdb_url) else str(row.imdb_url),
        }
    return records


class MetadataServer:
    """Serve a dataset's users and movies over HTTP in a background thread.

    Parameters
    ----------
    dataset : Dataset
        Supplies ``users`` and ``movies``.
    host : str, default "127.0.0.1"
    port : int, default 0
        0 picks a free port; read it back from :attr:`url`.
    """

    def __init__(self, dataset: Dataset, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.records: dict[Kind, dict[Any, dict]] = {
            "user": user_records(dataset.users),
            "movie": movie_records(dataset.movies),
        }
        self.host = host
        self.port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> MetadataServer:
        """Bind the port and serve in a daemon thread."""
        records = self.records

        class Handler(_Handler):
            store = records

        self._server = _Server((self.host, self.port), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metadata-api", daemon=True
        )
        self._thread.start()
        logger.info(
            "metadata API on %s: %d users, %d movies",
            self.url,
            len(records["user"]),
            len(records["movie"]),
        )
        return self

    def stop(self) -> None:
        """Stop serving and free the port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.close_connections()
            self._server.server_close()
            self._thread.join()
            self._server = self._thread = None
            logger.info("metadata API on %s stopped", self.url)

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted (the ``shrek metadata-api`` command)."""
        if self._server is None:
            self.start()
        try:
            self._thread.join()
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def __enter__(self) -> MetadataServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


class _Server(ThreadingHTTPServer):
    """Tracks open connections so that stopping also ends keep-alive connections (clients
    would otherwise still be answered by their connection's thread)."""

    daemon_threads = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    store: dict[Kind, dict[Any, dict]] = {}
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle's algorithm and delayed ACKs
    # every keep-alive request then waits ~40 ms (measured: 2,625 lookups took 105 s).
    disable_nagle_algorithm = True

    def do_GET(self) -> None:  # noqa: N802 - the http.server naming
        match = _PATH_RE.match(self.path)
        if self.path == "/health":
            self._send(HTTPStatus.OK, {"status": "ok"})
            return
        if not match:
            self._send(
                HTTPStatus.NOT_FOUND,
                {"error": f"no such endpoint {self.path!r}; use /user/<id> or /movie/<id>"},
            )
            return
        kind, raw = match.groups()
        try:
            key = _record_key(kind, raw)
        except ValueError as err:
            self._send(HTTPStatus.BAD_REQUEST, {"error": str(err)})
            return
        record = self.store[kind].get(key)
        if record is None:
            self._send(HTTPStatus.NOT_FOUND, {"error": f"unknown {kind} id {raw!r}"})
        else:
            self._send(HTTPStatus.OK, record)

    def do_POST(self) -> None:  # noqa: N802 - the http.server naming
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if self.path != "/batch":
            self._send(
                HTTPStatus.NOT_FOUND, {"error": f"no such endpoint {self.path!r}; use /batch"}
            )
            return
        try:
            wanted = _batch_request(body)
            answer = {
                kind: {str(raw): self.store[kind].get(_record_key(kind, str(raw))) for raw in ids}
                for kind, ids in wanted.items()
            }
        except ValueError as err:
            self._send(HTTPStatus.BAD_REQUEST, {"error": str(err)})
            return
        self._send(HTTPStatus.OK, answer)

    def _send(self, status: HTTPStatus, body: dict) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature of base
        logger.debug("metadata API: " + format, *args)


def _record_key(kind: str, raw: str) -> Any:
    """The store key of ``raw`` (an int for users); ValueError naming the id if malformed."""
    if kind == "user":
        if not _USER_ID_RE.fullmatch(raw):
            raise ValueError(f"user id must be a positive integer, got {raw!r}")
        return int(raw)
    if not SLUG_RE.fullmatch(raw):
        raise ValueError(f"movie id must be a slug like 'toy+story+1995', got {raw!r}")
    return raw


def _batch_request(body: bytes) -> dict[str, list]:
    """The ids of a ``POST /batch`` body; ValueError saying what is wrong with it."""
    try:
        wanted = json.loads(body)
    except ValueError:
        raise ValueError('body must be JSON like {"user": [1, 2], "movie": ["a+1995"]}') from None
    if not isinstance(wanted, dict) or not set(wanted) <= set(KINDS):
        raise ValueError(
            f"body must be an object with keys 'user' and/or 'movie', got {wanted!r:.80}"
        )
    if not all(isinstance(ids, list) for ids in wanted.values()):
        raise ValueError("body's 'user' and 'movie' must be lists of ids")
    n_ids = sum(len(ids) for ids in wanted.values())
    if n_ids > BATCH_LIMIT:
        raise ValueError(f"a batch may ask for at most {BATCH_LIMIT} ids, got {n_ids}")
    return wanted


class _Retryable(Exception):
    pass


class _NoBatchEndpoint(Exception):
    """The server predates ``POST /batch``."""


class MetadataClient:
    """Fetch user and movie documents, with timeouts, retries with backoff and a cache.

    Parameters
    ----------
    base_url : str
        Like ``http://127.0.0.1:8081``.
    timeout : float, default 2.0
        Seconds per attempt (connect and read).
    attempts : int, default 3
        Attempts per request before :class:`MetadataUnavailableError`.
    backoff : float, default 0.1
        First wait between attempts in seconds; doubles each time (max 2 s).
    cache_size : int, default 100_000
        Answers kept (least recently used dropped first); 404s are cached too.
    trust_env : bool, default False
        Whether requests reads proxy settings from the environment.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 2.0,
        attempts: int = 3,
        backoff: float = 0.1,
        cache_size: int = 100_000,
        trust_env: bool = False,
    ) -> None:
        if attempts < 1:
            raise ValueError(f"attempts must be ≥ 1, got {attempts}")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.attempts = attempts
        self.backoff = backoff
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple[str, str], dict | None] = OrderedDict()
        self._lock = threading.Lock()
        self._session = requests.Session()
        # Proxy settings from the environment cost ~1 ms per request to look up; pass
        # trust_env=True when the API must be reached through a proxy.
        self._session.trust_env = trust_env

    def get(self, kind: Kind, id_: int | str) -> dict[str, Any] | None:
        """The document of user or movie ``id_``; ``None`` if the API says it is unknown.

        Raises
        ------
        ValueError
            If ``kind`` is not "user" or "movie", or the API rejects the id as malformed.
        MetadataUnavailableError
            If every attempt failed to connect, timed out or got a 5xx answer.
        """
        if kind not in KINDS:
            raise ValueError(f"kind must be 'user' or 'movie', got {kind!r}")
        key = (kind, str(id_))
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        document = self._fetch(kind, str(id_))
        with self._lock:
            self._cache[key] = document
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return document

    def cached(self, key: tuple[Kind, str]) -> bool:
        """Whether ``(kind, id)`` has a cached answer."""
        with self._lock:
            return key in self._cache

    def get_many(
        self, keys: list[tuple[Kind, str]], *, workers: int = 8
    ) -> dict[tuple[Kind, str], dict[str, Any] | None]:
        """:meth:`get` for many ``(kind, id)`` at once: one ``POST /batch`` per
        :data:`BATCH_LIMIT` ids not cached (``workers`` concurrent ``GET`` requests against
        a server without that endpoint).

        Raises
        ------
        MetadataUnavailableError
            As soon as one request finds the API unavailable; answers already received stay
            in the cache.
        """
        for kind, _ in keys:
            if kind not in KINDS:
                raise ValueError(f"kind must be 'user' or 'movie', got {kind!r}")
        keys = [(kind, str(id_)) for kind, id_ in keys]
        answers: dict[tuple[Kind, str], dict[str, Any] | None] = {}
        with self._lock:
            for key in keys:
                if key in self._cache:
                    answers[key] = self._cache[key]
        missing = [key for key in dict.fromkeys(keys) if key not in answers]
        for start in range(0, len(missing), BATCH_LIMIT):
            try:
                fetched = self._fetch_batch(missing[start : start + BATCH_LIMIT])
            except _NoBatchEndpoint:
                return self._get_each(keys, workers=workers)
            answers.update(fetched)
            with self._lock:
                self._cache.update(fetched)
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return {key: answers[key] for key in keys}

    def _get_each(
        self, keys: list[tuple[Kind, str]], *, workers: int
    ) -> dict[tuple[Kind, str], dict[str, Any] | None]:
        if len(keys) <= 1:
            return {key: self.get(*key) for key in keys}
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = {key: pool.submit(self.get, *key) for key in keys}
            try:
                return {key: future.result() for key, future in futures.items()}
            except MetadataUnavailableError:
                for future in futures.values():
                    future.cancel()
                raise

    def _fetch_batch(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], dict | None]:
        body: dict[str, list[str]] = {}
        for kind, id_ in keys:
            body.setdefault(kind, []).append(id_)
        url = f"{self.base_url}/batch"
        answer = self._retrying(lambda: self._post_once(url, body))
        return {(kind, id_): answer[kind][id_] for kind, id_ in keys}

    def _post_once(self, url: str, body: dict) -> dict[str, Any]:
        try:
            response = self._session.post(url, json=body, timeout=self.timeout)
        except (requests.ConnectionError, requests.Timeout) as err:
            raise _Retryable(f"POST {url}: {type(err).__name__}") from None
        if response.status_code == HTTPStatus.NOT_FOUND:
            raise _NoBatchEndpoint(url)
        if response.status_code >= 500:
            raise _Retryable(f"POST {url}: HTTP {response.status_code}")
        if response.status_code == HTTPStatus.BAD_REQUEST:
            raise ValueError(f"metadata API rejected {url}: {response.text}")
        response.raise_for_status()
        return response.json()

    def _fetch(self, kind: str, id_: str) -> dict[str, Any] | None:
        url = f"{self.base_url}/{kind}/{id_}"
        return self._retrying(lambda: self._once(url))

    def _retrying(self, request: Any) -> Any:
        """``request()`` retried with backoff while it raises :class:`_Retryable`."""
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.attempts),
            wait=tenacity.wait_exponential(multiplier=self.backoff, max=2.0),
            retry=tenacity.retry_if_exception_type(_Retryable),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    return request()
        except _Retryable as err:
            raise MetadataUnavailableError(
                f"metadata API {self.base_url} unavailable after {self.attempts} attempts ({err})"
            ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _once(self, url: str) -> dict[str, Any] | None:
        try:
            response = self._session.get(url, timeout=self.timeout)
        except (requests.ConnectionError, requests.Timeout) as err:
            raise _Retryable(f"GET {url}: {type(err).__name__}") from None
        if response.status_code == HTTPStatus.NOT_FOUND:
            return None
        if response.status_code >= 500:
            raise _Retryable(f"GET {url}: HTTP {response.status_code}")
        if response.status_code == HTTPStatus.BAD_REQUEST:
            raise ValueError(f"metadata API rejected {url}: {response.text}")
        response.raise_for_status()
        return response.json()

    def close(self) -> None:
        self._session.close()
