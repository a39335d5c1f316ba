"""Finding the dataset, downloading it into the cache and verifying checksums."""

from __future__ import annotations

import hashlib
import io
import socket
import threading
import zipfile
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
from ml100k_files import write_ml100k

from shrek.data.download import locate_ml100k
from shrek.errors import DatasetNotFoundError, DownloadError


@pytest.fixture
def archive_server(tmp_path):
    """Serve a zip of the tiny ml-100k folder over HTTP on loopback."""
    source = write_ml100k(tmp_path / "src")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in source.iterdir():
            archive.write(path, f"ml-100k/{path.name}")
    served = tmp_path / "served"
    served.mkdir()
    (served / "ml-100k.zip").write_bytes(buffer.getvalue())
    checksums = {
        name: hashlib.md5((source / name).read_bytes()).hexdigest()
        for name in ("u.data", "u.item", "u.user")
    }
    handler = partial(SimpleHTTPRequestHandler, directory=str(served))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/ml-100k.zip", checksums
    server.shutdown()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_data_dir_is_used_as_is(tiny_root):
    assert locate_ml100k(tiny_root) == (tiny_root / "ml-100k").resolve()


def test_data_dir_without_files_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("SHREK_DATA_DIR", str(tmp_path))
    with pytest.raises(DatasetNotFoundError, match=r"SHREK_DATA_DIR=.* must hold ml-100k/u.data"):
        locate_ml100k()


def test_data_dir_given_without_files_names_the_folder_not_the_variable(tmp_path, monkeypatch):
    """Regression (newcomer trial): --data-dir /tmp/nowhere was blamed on SHREK_DATA_DIR."""
    monkeypatch.setenv("SHREK_DATA_DIR", "/somewhere/else")
    with pytest.raises(DatasetNotFoundError, match=r"^the data folder .* must hold ml-100k/u.data"):
        locate_ml100k(tmp_path)


def test_download_once_into_the_cache(archive_server, tmp_path, monkeypatch):
    monkeypatch.delenv("SHREK_DATA_DIR", raising=False)
    url, checksums = archive_server
    cache = tmp_path / "cache"
    folder = locate_ml100k(cache_dir=cache, url=url, checksums=checksums)
    assert folder == cache / "ml-100k"
    assert (folder / "u.data").is_file()
    # A second call finds the verified copy and does not download again.
    again = locate_ml100k(cache_dir=cache, url="http://127.0.0.1:1/never", checksums=checksums)
    assert again == folder


def test_checksum_mismatch_discards_the_download(archive_server, tmp_path, monkeypatch):
    monkeypatch.delenv("SHREK_DATA_DIR", raising=False)
    url, checksums = archive_server
    wrong = checksums | {"u.data": "0" * 32}
    with pytest.raises(DownloadError, match=r"ml-100k/u.data from .* failed its checksum"):
        locate_ml100k(cache_dir=tmp_path / "cache", url=url, checksums=wrong)
    assert not (tmp_path / "cache" / "ml-100k").exists()


def test_no_network_says_so_and_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("SHREK_DATA_DIR", raising=False)
    url = f"http://127.0.0.1:{closed_port()}/ml-100k.zip"
    with pytest.raises(DownloadError) as info:
        locate_ml100k(cache_dir=tmp_path / "cache", url=url)
    message = str(info.value)
    assert message.startswith(f"could not download MovieLens 100K from {url}")
    assert (
        "may have no network access; set SHREK_DATA_DIR to a folder that holds ml-100k/" in message
    )


def test_cache_without_download_is_an_error(tmp_path, monkeypatch):
    monkeypatch.delenv("SHREK_DATA_DIR", raising=False)
    with pytest.raises(DatasetNotFoundError, match="downloading is off; set SHREK_DATA_DIR"):
        locate_ml100k(cache_dir=tmp_path / "empty", download=False)
