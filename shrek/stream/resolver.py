"""Which users and movies of the stream have metadata: ask the metadata API about new ids.

The collector calls :meth:`MetadataResolver.resolve` once per batch with the ids the batch
mentions; the answers are recorded in the batch's SQLite transaction
(:mod:`shrek.stream.store`). When the API is down the events are stored anyway and their ids
stay "pending" until a later batch, :meth:`shrek.stream.collector.Collector.resolve_pending`
or :meth:`shrek.stream.collector.Collector.to_dataset` reaches the API again.
"""

from __future__ import annotations

import json
import logging
import time

from shrek.stream.metadata_api import MetadataClient, MetadataUnavailableError

logger = logging.getLogger(__name__)

MetadataRow = tuple[str, str, str, str | None]


class MetadataResolver:
    """Which users and movies have metadata, asking the API for new ids.

    Keeps ``(kind, id) -> status`` in memory ("found", "unknown" or "pending"); this grows with
    the catalogue (users and movies), not with the stream. Documents stay in the store.
    After the API fails it is left alone for ``retry_seconds``, so a down API costs one
    timeout per interval, not one per id.

    Parameters
    ----------
    client : MetadataClient, optional
        Without one nothing is ever fetched.
    status : dict
        The store's entries, ``(kind, id) -> (status, document)``.
    retry_seconds : float, default 2.0
        Pause after a failed request before the API is asked again.
    """

    def __init__(
        self, client: MetadataClient | None, status: dict, *, retry_seconds: float = 2.0
    ) -> None:
        self.client = client
        self.status: dict[tuple[str, str], str] = {key: s for key, (s, _) in status.items()}
        self.retry_seconds = retry_seconds
        self._down_until = 0.0

    @property
    def pending(self) -> list[tuple[str, str]]:
        """The ``(kind, id)`` still waiting for an answer of the API."""
        return [key for key, status in self.status.items() if status == "pending"]

    def retry_now(self) -> None:
        """Forget the pause after the last failure: the next :meth:`resolve` asks the API."""
        self._down_until = 0.0

    def resolve(self, wanted: set[tuple[str, str]]) -> list[MetadataRow]:
        """Ask about new ids in ``wanted`` (and pending ones when the API may be back).

        Returns
        -------
        list of (kind, id, status, document JSON or None)
            The entries whose status changed, to record in the store.
        """
        if self.client is None:
            return []
        new = [key for key in sorted(wanted) if key not in self.status]
        if time.monotonic() >= self._down_until:
            new += self.pending
        answers: dict = {}
        if new and time.monotonic() >= self._down_until:
            try:
                answers = self.client.get_many(new)
            except MetadataUnavailableError as err:
                logger.warning("%s; will retry in %.1f s", err, self.retry_seconds)
                self._down_until = time.monotonic() + self.retry_seconds
                answers = {key: self.client.get(*key) for key in new if self.client.cached(key)}

        rows = []
        for key in new:
            status, document = "pending", None
            if key in answers:
                document = answers[key]
                status = "unknown" if document is None else "found"
            if self.status.get(key) != status:
                self.status[key] = status
                rows.append((*key, status, None if document is None else _json(document)))
        return rows

    def unknown_ids(self) -> tuple[set[int], set[str]]:
        """User ids and movie ids the API reported as unknown."""
        unknown = [key for key, s in self.status.items() if s == "unknown"]
        users = {int(i) for kind, i in unknown if kind == "user"}
        movies = {i for kind, i in unknown if kind == "movie"}
        return users, movies


def _json(document: dict) -> str:
    return json.dumps(document, sort_keys=True)
