"""The watched routing file: which model versions a running service answers with.

The file is JSON, ``{"stable": "shrek-als:abc", "candidate": "shrek-lightfm:def"}``, with an
optional ``"canary_config"`` (the watched split file to follow from then on); other keys are
ignored, so the lifecycle's ``serving/routing.json`` is a routing file as it is. A service started
with ``$SHREK_ROUTING_FILE`` polls it, loads versions it has not loaded from the BentoML store in
the background and swaps the new pair in at once: requests in flight finish on the old pair,
the next ones get the new one, and none fails.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Routing:
    """The model versions to serve.

    Parameters
    ----------
    stable : str
        Store tag of the model answering users outside the canary share.
    candidate : str, optional
        Store tag of the canary model; None serves ``stable`` only.
    canary_config : str, optional
        The watched split file of this pair; None keeps the current one.
    """

    stable: str
    candidate: str | None = None
    canary_config: str | None = None


def read_routing(path: str | Path) -> Routing:
    """Read a :class:`Routing` from a JSON file.

    Raises
    ------
    ValueError
        Naming the file, the field, what is accepted and what was found.
    """
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not JSON: {err}") from None
    if not isinstance(raw, dict):
        raise ValueError(f'{path} must hold an object like {{"stable": "<tag>"}}, got {raw!r}')
    for key, required in (("stable", True), ("candidate", False), ("canary_config", False)):
        value = raw.get(key)
        if (value is None and required) or (value is not None and not isinstance(value, str)):
            raise ValueError(f"{path}: {key} must be a model tag string, got {value!r}")
    return Routing(raw["stable"], raw.get("candidate"), raw.get("canary_config"))


class RoutingWatcher:
    """Polls a routing file in a daemon thread and calls ``apply`` with each new routing.

    Parameters
    ----------
    path : str or Path
        The watched file; while it is missing nothing happens.
    apply : callable
        ``Routing -> None``; loads and swaps. An exception is logged and the routing is not
        retried until the file changes again (the service keeps its current models).
    poll_seconds : float, default 1.0
        How often the file's modification time is checked.
    """

    def __init__(
        self,
        path: str | Path,
        apply: Callable[[Routing], None],
        *,
        poll_seconds: float = 1.0,
    ) -> None:
        self.path = Path(path)
        self.apply = apply
        self.poll_seconds = poll_seconds
        self._stamp: tuple[int, int] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self) -> bool:
        """Apply the file if it changed since the last check; True when it was applied."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return False
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            routing = read_routing(self.path)
            self.apply(routing)
        except Exception as err:  # noqa: BLE001 - a bad file must not stop the service
            logger.warning("ignoring routing file %s: %s", self.path, err)
            return False
        return True

    def start(self) -> RoutingWatcher:
        """Start polling in a daemon thread."""
        self._thread = threading.Thread(target=self._run, name="shrek-routing", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            self.check()
