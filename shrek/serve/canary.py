"""The canary router: a stable salted hash of the user id picks the variant.

A user lands on the candidate when ``bucket(user_id, salt) < share``, where the bucket is the
first 8 bytes of BLAKE2b over ``"<salt>:<user_id>"`` scaled to [0, 1). The same user always
gets the same variant for a given salt and share; raising the share only moves users from
stable to candidate, never back. A new salt draws a new sample of users.

The share and salt live in a small YAML file (``share: 0.1`` / ``salt: shrek``) that the router
re-reads when it changes (checked at most once per ``poll_seconds``), so an operator, a
Kubernetes ConfigMap or the service's admin endpoint can change the split without a restart.
Without a file of its own (``$SHREK_CANARY_CONFIG``) a service uses
:func:`default_split_path`, one file shared by the workers of one ``bentoml serve``, so an admin
call that one worker answers reaches the others at their next poll.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import yaml

from shrek.errors import ShrekError

logger = logging.getLogger(__name__)

VARIANTS: tuple[str, ...] = ("stable", "candidate")


class SplitFileError(ShrekError):
    """The canary split file cannot be written (e.g. a read-only Kubernetes ConfigMap)."""


def default_split_path() -> Path:
    """The split file shared by the workers of the ``bentoml serve`` that runs this process.

    BentoML's workers are children of one ``bentoml serve`` process: the file is named after
    that parent's pid and start time, in the temporary directory, so the workers of one serve
    share it and a later serve (even with a reused pid) starts from the configured default.

    Returns
    -------
    Path
        ``<tmp>/shrek-serve-<ppid>-<start>/canary.yaml``; neither the folder nor the file exists
        until the split is first changed.

    Notes
    -----
    The folder is not removed when the service stops (no worker knows it is the last one); it
    holds one small file and lives in the temporary directory.
    """
    import psutil  # BentoML's dependency: a bento always has it

    parent = psutil.Process(os.getppid())
    started = int(parent.create_time() * 1000)
    return Path(tempfile.gettempdir()) / f"shrek-serve-{parent.pid}-{started}" / "canary.yaml"


def bucket(user_id: int, salt: str) -> float:
    """The user's position in [0, 1), uniform over users and stable for a salt."""
    digest = hashlib.blake2b(f"{salt}:{user_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


@dataclass(frozen=True)
class CanaryConfig:
    """The traffic split.

    Parameters
    ----------
    share : float, default 0.0
        Fraction of users sent to the candidate, 0–1.
    salt : str, default "shrek"
        Salt of the hash; change it to draw a different set of canary users.
    """

    share: float = 0.0
    salt: str = "shrek"

    def __post_init__(self) -> None:
        share, salt = self.share, self.salt
        if isinstance(share, bool) or not isinstance(share, int | float):
            raise TypeError(f"share must be a number 0–1, got {share!r} ({type(share).__name__})")
        if not 0 <= share <= 1:
            raise ValueError(f"share must be a number 0–1, got {share!r}")
        if not isinstance(salt, str):
            raise TypeError(
                f"salt must be a non-empty string, got {salt!r} ({type(salt).__name__})"
            )
        if not salt:
            raise ValueError(f"salt must be a non-empty string, got {salt!r}")
        object.__setattr__(self, "share", float(share))

    def variant(self, user_id: int) -> str:
        """``"candidate"`` or ``"stable"`` for ``user_id``."""
        return "candidate" if bucket(user_id, self.salt) < self.share else "stable"

    def to_dict(self) -> dict[str, float | str]:
        return asdict(self)


def read_canary_config(path: str | Path) -> CanaryConfig:
    """Read a :class:`CanaryConfig` from YAML.

    Raises
    ------
    ValueError
        Naming the file and the bad or unknown key.
    """
    path = Path(path)
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{path} must hold a mapping like 'share: 0.1', got {raw!r}")
    unknown = sorted(set(raw) - {"share", "salt"})
    if unknown:
        raise ValueError(f"{path}: unknown keys {unknown}; accepted: share, salt")
    try:
        return CanaryConfig(**raw)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: {err}") from None


def write_canary_config(path: str | Path, config: CanaryConfig) -> Path:
    """Write ``config`` to ``path`` atomically (a reader never sees half a file).

    Raises
    ------
    OSError
        If the folder or the file cannot be written; no temporary file is left behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "# Canary traffic split (shrek serve-config); read by the running service.\n"
    text += yaml.safe_dump(config.to_dict(), sort_keys=False)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as file:
        file.write(text)
    try:
        os.replace(file.name, path)
    except OSError:
        Path(file.name).unlink(missing_ok=True)
        raise
    return path


class CanaryRouter:
    """Routes users to ``stable`` or ``candidate`` from a config that may change at run time.

    Parameters
    ----------
    path : str or Path, optional
        The watched YAML file; when absent or missing, ``default`` applies until it appears.
    default : CanaryConfig, optional
        The split before any file is read.
    poll_seconds : float, default 1.0
        How often, at most, the file's modification time is checked.

    Notes
    -----
    A file that cannot be read or holds bad values is logged and ignored: the router keeps the
    last good split rather than failing requests.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        default: CanaryConfig | None = None,
        poll_seconds: float = 1.0,
    ) -> None:
        self.path = Path(path) if path else None
        self.poll_seconds = poll_seconds
        self._config = default or CanaryConfig()
        self._stamp: tuple[int, int] | None = None
        self._checked = -float("inf")
        self._lock = threading.Lock()
        self.refresh(force=True)

    @property
    def config(self) -> CanaryConfig:
        self.refresh()
        return self._config

    def route(self, user_id: int) -> str:
        """The variant of ``user_id`` under the current split."""
        return self.config.variant(user_id)

    def refresh(self, *, force: bool = False) -> CanaryConfig:
        """Re-read the file if it changed since the last read (or ``force``)."""
        now = time.monotonic()
        if self.path is None or (not force and now - self._checked < self.poll_seconds):
            return self._config
        with self._lock:
            self._checked = now
            try:
                stat = self.path.stat()
            except FileNotFoundError:
                return self._config
            except OSError as err:
                if self._stamp != (-1, -1):
                    logger.warning("ignoring canary config %s: %s", self.path, err)
                self._stamp = (-1, -1)
                return self._config
            stamp = (stat.st_mtime_ns, stat.st_size)
            if stamp == self._stamp and not force:
                return self._config
            try:
                config = read_canary_config(self.path)
            except (OSError, ValueError, yaml.YAMLError) as err:
                logger.warning("ignoring canary config %s: %s", self.path, err)
                self._stamp = stamp
                return self._config
            if config != self._config:
                logger.info("canary split now %s (from %s)", config, self.path)
            self._config, self._stamp = config, stamp
            return config

    def update(self, *, share: float | None = None, salt: str | None = None) -> CanaryConfig:
        """Change the split now; written to the watched file so every worker follows.

        Raises
        ------
        TypeError, ValueError
            For a share or salt :class:`CanaryConfig` does not accept.
        SplitFileError
            If the watched file cannot be written (a read-only Kubernetes ConfigMap, say); the
            split is left as it was.
        """
        changes = {k: v for k, v in (("share", share), ("salt", salt)) if v is not None}
        current = self.refresh(force=True)  # another worker may have changed the file just now
        config = replace(current, **changes)
        with self._lock:
            if self.path is not None:
                try:
                    write_canary_config(self.path, config)
                except OSError as err:
                    raise SplitFileError(
                        f"cannot write the canary split file {self.path}: "
                        f"{err.strerror or err}; the split stays {self._config.to_dict()}. "
                        "Change the file itself (on Kubernetes: the ConfigMap mounted there)"
                    ) from err
                stat = self.path.stat()
                self._stamp = (stat.st_mtime_ns, stat.st_size)
            self._config = config
        logger.info("canary split set to %s", config)
        return config
