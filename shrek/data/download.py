"""Find MovieLens 100K on disk, or download it once from GroupLens and verify its checksums."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from tenacity import (
    retry,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from shrek.errors import DatasetNotFoundError, DownloadError

logger = logging.getLogger(__name__)

DATA_DIR_VARIABLE = "SHREK_DATA_DIR"
CACHE_DIR_VARIABLE = "SHREK_CACHE_DIR"
ML100K_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"

#: MD5 of the files Shrek reads, as published in the GroupLens archive.
ML100K_FILES = {
    "u.data": "6e47046882bad158b0efbb84cd5cb987",
    "u.genre": "a7578bdb37758741ae9429d2c736af18",
    "u.info": "6cae0afd8c0341aff31b631a192e57e6",
    "u.item": "c9e7f390115d79079537301d5204f3f7",
    "u.occupation": "035abaa2165f35cebce4b91e03481e0a",
    "u.user": "1b53539edc13caad0282c8500608a319",
}
REQUIRED_FILES = ("u.data", "u.item", "u.user")


def default_cache_dir() -> Path:
    """``$SHREK_CACHE_DIR``, else ``$XDG_CACHE_HOME/shrek``, else ``~/.cache/shrek``."""
    if os.environ.get(CACHE_DIR_VARIABLE):
        return Path(os.environ[CACHE_DIR_VARIABLE]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "shrek"


def locate_ml100k(
    data_dir: str | Path | None = None,
    *,
    download: bool = True,
    cache_dir: str | Path | None = None,
    url: str = ML100K_URL,
    checksums: dict[str, str] | None = None,
) -> Path:
    """Return the ``ml-100k`` folder to read, downloading it into the cache when needed.

    Parameters
    ----------
    data_dir : str or Path, optional
        A folder that holds ``ml-100k/``; defaults to ``$SHREK_DATA_DIR``. When set, Shrek
        reads from it and never downloads.
    download : bool, default True
        Whether to download the archive when no data directory is set and the cache is empty.
    cache_dir : str or Path, optional
        Where downloads are kept (:func:`default_cache_dir`).
    url : str
        The archive's address.
    checksums : dict of str to str, optional
        MD5 per file that a download must match; defaults to :data:`ML100K_FILES`.

    Raises
    ------
    DatasetNotFoundError
        ``data_dir`` is set but holds no ``ml-100k`` files, or the cache is empty and
        ``download`` is False.
    DownloadError
        The download failed (no network, for instance) or a file failed its checksum.
    """
    named = f"the data folder {data_dir}" if data_dir else None
    if not data_dir and os.environ.get(DATA_DIR_VARIABLE):
        data_dir = os.environ[DATA_DIR_VARIABLE]
        named = f"{DATA_DIR_VARIABLE}={data_dir}"
    if data_dir:
        folder = Path(data_dir).expanduser().resolve() / "ml-100k"
        missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
        if missing:
            raise DatasetNotFoundError(
                f"{named} must hold ml-100k/{', ml-100k/'.join(missing)}; {folder} lacks them. "
                f"Point {DATA_DIR_VARIABLE} (or --data-dir) at the folder that contains "
                "ml-100k/, or unset it to download the archive from GroupLens."
            )
        return folder

    checksums = checksums or ML100K_FILES
    folder = Path(cache_dir or default_cache_dir()) / "ml-100k"
    if _verified(folder, checksums):
        return folder
    if not download:
        raise DatasetNotFoundError(
            f"MovieLens 100K is not in the cache {folder} and downloading is off; set "
            f"{DATA_DIR_VARIABLE} to a folder that holds ml-100k/."
        )
    return download_ml100k(folder.parent, url=url, checksums=checksums)


def download_ml100k(
    cache_dir: str | Path, *, url: str = ML100K_URL, checksums: dict[str, str] | None = None
) -> Path:
    """Download and unpack the archive into ``cache_dir/ml-100k``, verifying every checksum."""
    checksums = checksums or ML100K_FILES
    cache_dir = Path(cache_dir)
    logger.info("downloading MovieLens 100K from %s", url)
    try:
        payload = _fetch(url)
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise DownloadError(
            f"could not download MovieLens 100K from {url}: {reason}. This machine may have no "
            f"network access; set {DATA_DIR_VARIABLE} to a folder that holds ml-100k/ "
            "(u.data, u.item, u.user, ...) to use a local copy."
        ) from None

    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir) as scratch:
        try:
            zipfile.ZipFile(io.BytesIO(payload)).extractall(scratch)
        except zipfile.BadZipFile:
            raise DownloadError(f"{url} did not return a zip archive") from None
        unpacked = Path(scratch) / "ml-100k"
        for name, expected in checksums.items():
            actual = _md5(unpacked / name) if (unpacked / name).exists() else "missing"
            if actual != expected:
                raise DownloadError(
                    f"ml-100k/{name} from {url} failed its checksum: expected MD5 {expected}, "
                    f"got {actual}. The download is discarded; try again or set "
                    f"{DATA_DIR_VARIABLE} to a verified local copy."
                )
        target = cache_dir / "ml-100k"
        if target.exists():
            shutil.rmtree(target)
        unpacked.rename(target)
    return target


@retry(
    retry=retry_if_exception_type(urllib.error.URLError),
    stop=stop_after_attempt(3),
    wait=wait_exponential(multiplier=0.5, max=4),
    reraise=True,
)
def _fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read()


def _verified(folder: Path, checksums: dict[str, str]) -> bool:
    return all(
        (folder / name).is_file() and _md5(folder / name) == expected
        for name, expected in checksums.items()
    )


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()
