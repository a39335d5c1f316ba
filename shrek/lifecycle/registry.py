"""The model registry: every exported model version, its status and every decision about it.

The state is one SQLite file (``registry.sqlite`` in the lifecycle folder). Every change is one
transaction: a status change, the decision that explains it and the serving deployment it
implies are committed together or not at all, so a process killed at any moment leaves the
registry as it was before the change or after it, never in between.

Tables
------
``models``
    One row per exported model version (the BentoML store tag): model, run, data version,
    offline metrics, fairness verdict, training time, size, latency and status.
``decisions``
    Append-only: what was decided (register, canary, promote, reject, rollback, run_failed,
    ...), about which version and run, the status change and the reason in words.
``runs``
    One row per scheduled run: when it was due, the data cut-off, its status
    (running, succeeded, failed) and why it failed.
``deployment``
    The serving deployment the registry wants: the stable and candidate model versions the
    canary service loads and the candidate's share of users. ``id`` grows when the pair of
    models changes; a share change keeps the id.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from shrek.errors import ShrekError

logger = logging.getLogger(__name__)

REGISTRY_FILE = "registry.sqlite"
STATUSES: tuple[str, ...] = ("candidate", "canary", "production", "retired")
RUN_STATUSES: tuple[str, ...] = ("running", "succeeded", "failed")
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "candidate": ("canary", "production", "retired"),
    "canary": ("production", "retired"),
    "production": ("retired",),
    "retired": ("production",),
}
_SCHEMA = """
CREATE TABLE IF NOT EXISTS models (
    version TEXT PRIMARY KEY, model TEXT NOT NULL, run_id TEXT, data_version TEXT,
    created_at TEXT NOT NULL, status TEXT NOT NULL, ndcg REAL, metrics TEXT NOT NULL,
    fairness TEXT, fit_seconds REAL, size_bytes INTEGER, latency_ms REAL, cutoff TEXT
);
CREATE TABLE IF NOT EXISTS decisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, run_id TEXT, version TEXT,
    action TEXT NOT NULL, from_status TEXT, to_status TEXT, reason TEXT NOT NULL, details TEXT
);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, scheduled_for TEXT, cutoff TEXT, started_at TEXT NOT NULL,
    finished_at TEXT, status TEXT NOT NULL, pid INTEGER, data_version TEXT, run_dir TEXT,
    error TEXT
);
CREATE TABLE IF NOT EXISTS deployment (
    slot INTEGER PRIMARY KEY CHECK (slot = 1), id INTEGER NOT NULL, stable TEXT NOT NULL,
    candidate TEXT NOT NULL, share REAL NOT NULL, updated_at TEXT NOT NULL
);
"""


class RegistryError(ShrekError):
    """A registry change that the lifecycle does not allow (e.g. retired -> canary)."""


@dataclass(frozen=True)
class ModelVersion:
    """One exported model version as the registry records it.

    Attributes
    ----------
    version : str
        The model store tag, e.g. ``shrek-als:abc123``.
    ndcg : float or None
        Offline nDCG@k of the run's temporal split.
    metrics : dict
        Every offline metric of the run, by split.
    fairness : str
        The fairness verdict (PASS, FAIL, INCONCLUSIVE, overridden, missing).
    size_bytes : int or None
        Size of the model's folder in the store.
    latency_ms : float or None
        Median in-process time of one request (one user, 20 movies).
    """

    version: str
    model: str
    run_id: str | None
    data_version: str | None
    created_at: str
    status: str
    ndcg: float | None
    metrics: dict[str, Any]
    fairness: str | None
    fit_seconds: float | None
    size_bytes: int | None
    latency_ms: float | None
    cutoff: str | None


@dataclass(frozen=True)
class Deployment:
    """What the canary service should load and how it splits traffic.

    ``share`` of users (by the router's salted hash) go to ``candidate``, the rest to
    ``stable``. ``id`` changes only with the pair of models.
    """

    id: int
    stable: str
    candidate: str
    share: float

    def serving(self) -> str:
        """The version that answers every user when the share is 0 or 1."""
        return self.candidate if self.share >= 1 else self.stable


def now_iso() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return datetime.now(UTC).isoformat(timespec="seconds")


class Registry:
    """The model registry in ``<folder>/registry.sqlite``.

    Parameters
    ----------
    folder : str or Path
        The lifecycle folder; created when missing.

    Notes
    -----
    Each call opens its own connection, so a registry can be shared by threads and processes
    (SQLite serialises writers; a writer waits up to 30 s for another).
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / REGISTRY_FILE
        db = sqlite3.connect(self.path, timeout=30)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)
        finally:
            db.close()

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """A connection for plain reads: no write lock (WAL readers never wait for writers)."""
        db = sqlite3.connect(self.path, timeout=30)
        db.row_factory = sqlite3.Row
        try:
            yield db
        finally:
            db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        try:
            db.execute("PRAGMA synchronous=FULL")
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        finally:
            db.close()

    # --- model versions ----------------------------------------------------------------------

    def register(
        self,
        version: str,
        *,
        model: str,
        run_id: str | None = None,
        data_version: str | None = None,
        ndcg: float | None = None,
        metrics: dict[str, Any] | None = None,
        fairness: str | None = None,
        fit_seconds: float | None = None,
        size_bytes: int | None = None,
        latency_ms: float | None = None,
        cutoff: str | None = None,
        reason: str = "exported by a pipeline run",
    ) -> ModelVersion:
        """Record a newly exported model version as a ``candidate``.

        Raises
        ------
        RegistryError
            If ``version`` is already registered.
        """
        with self._transaction() as db:
            if _row(db, version) is not None:
                raise RegistryError(f"version {version!r} is already registered")
            identity = (version, model, run_id, data_version, now_iso(), "candidate")
            scores = (ndcg, json.dumps(metrics or {}, default=str), fairness, fit_seconds)
            cost = (size_bytes, latency_ms, cutoff)
            db.execute(
                "INSERT INTO models VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", identity + scores + cost
            )
            _decide(db, "register", reason, version=version, run_id=run_id, to_status="candidate")
        logger.info("registered %s (%s) as candidate", version, model)
        return self.get(version)

    def get(self, version: str) -> ModelVersion:
        """The registered ``version``.

        Raises
        ------
        KeyError
            If no such version is registered.
        """
        with self._reading() as db:
            row = _row(db, version)
        if row is None:
            raise KeyError(f"model version {version!r} is not in the registry {self.path}")
        return _version(row)

    def versions(self, *, status: str | None = None) -> list[ModelVersion]:
        """Every registered version, oldest first, optionally only those with ``status``."""
        if status is not None and status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
        query = "SELECT * FROM models" + (" WHERE status = ?" if status else "")
        with self._reading() as db:
            rows = db.execute(query + " ORDER BY rowid", (status,) if status else ()).fetchall()
        return [_version(row) for row in rows]

    def production(self) -> ModelVersion | None:
        """The production version, if any."""
        found = self.versions(status="production")
        return found[0] if found else None

    def canary(self) -> ModelVersion | None:
        """The version in canary, if any."""
        found = self.versions(status="canary")
        return found[0] if found else None

    def transition(
        self,
        changes: Sequence[tuple[str, str] | tuple[str, str, str]],
        *,
        action: str,
        reason: str,
        run_id: str | None = None,
        details: dict[str, Any] | None = None,
        deployment: tuple[str, str, float] | None = None,
    ) -> None:
        """Change statuses, record why and set the deployment, in one transaction.

        Parameters
        ----------
        changes : sequence of (version, status) or (version, status, reason)
            The new status of each version; a third item replaces ``reason`` for it.
        action : str
            What was decided (``canary``, ``promote``, ``reject``, ``rollback`` ...).
        reason : str
            Why, in words; recorded for every change.
        run_id : str, optional
            The scheduled run that made the decision.
        details : dict, optional
            Numbers behind the decision (metrics compared, the A/B report ...).
        deployment : tuple of (stable, candidate, share), optional
            The serving deployment after the change.

        Raises
        ------
        RegistryError
            If a change is not an allowed transition, or two versions would be in production
            or canary at once.
        """
        with self._transaction() as db:
            for version, status, *own in changes:
                row = _row(db, version)
                if row is None:
                    raise KeyError(f"model version {version!r} is not in the registry")
                allowed = TRANSITIONS[row["status"]]
                if status not in allowed:
                    raise RegistryError(
                        f"{version} is {row['status']}; it may become {', '.join(allowed)}, "
                        f"not {status!r}"
                    )
                db.execute("UPDATE models SET status = ? WHERE version = ?", (status, version))
                _decide(
                    db,
                    action,
                    own[0] if own else reason,
                    version=version,
                    run_id=run_id,
                    from_status=row["status"],
                    to_status=status,
                    details=details,
                )
            for status in ("production", "canary"):
                (count,) = db.execute(
                    "SELECT COUNT(*) FROM models WHERE status = ?", (status,)
                ).fetchone()
                if count > 1:
                    raise RegistryError(f"{count} versions would be {status}; at most one may be")
            if deployment is not None:
                _set_deployment(db, *deployment)
        logger.info("%s: %s (%s)", action, changes, reason)

    def record(
        self,
        action: str,
        reason: str,
        *,
        version: str | None = None,
        run_id: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Record a decision that changes no status (a failed run, a held candidate ...)."""
        with self._transaction() as db:
            _decide(db, action, reason, version=version, run_id=run_id, details=details)
        logger.info("%s: %s", action, reason)

    def decisions(self, *, version: str | None = None) -> pd.DataFrame:
        """Every decision, oldest first: at, run_id, version, action, statuses, reason."""
        query = "SELECT * FROM decisions" + (" WHERE version = ?" if version else "")
        with self._reading() as db:
            rows = db.execute(query + " ORDER BY id", (version,) if version else ()).fetchall()
        columns = ["id", "at", "run_id", "version", "action", "from_status", "to_status"]
        frame = pd.DataFrame([dict(row) for row in rows], columns=[*columns, "reason", "details"])
        frame["details"] = frame["details"].map(
            lambda text: json.loads(text) if isinstance(text, str) else {}
        )
        return frame.set_index("id")

    # --- serving deployment --------------------------------------------------------------------

    def deployment(self) -> Deployment | None:
        """The deployment the registry wants served, if a model was ever deployed."""
        with self._reading() as db:
            row = db.execute("SELECT * FROM deployment WHERE slot = 1").fetchone()
        if row is None:
            return None
        return Deployment(row["id"], row["stable"], row["candidate"], row["share"])

    # --- scheduled runs ------------------------------------------------------------------------

    def start_run(
        self,
        run_id: str,
        *,
        scheduled_for: str | None = None,
        cutoff: str | None = None,
        pid: int | None = None,
    ) -> None:
        """Record that scheduled run ``run_id`` started (status ``running``)."""
        with self._transaction() as db:
            db.execute(
                "INSERT INTO runs (run_id, scheduled_for, cutoff, started_at, status, pid) "
                "VALUES (?,?,?,?,?,?)",
                (run_id, scheduled_for, cutoff, now_iso(), "running", pid or os.getpid()),
            )

    def finish_run(
        self,
        run_id: str,
        *,
        status: str,
        error: str | None = None,
        data_version: str | None = None,
        run_dir: str | None = None,
    ) -> None:
        """Record the end of run ``run_id``: ``succeeded`` or ``failed`` (with ``error``)."""
        if status not in RUN_STATUSES[1:]:
            raise ValueError(f"status must be succeeded or failed, got {status!r}")
        with self._transaction() as db:
            db.execute(
                "UPDATE runs SET status = ?, finished_at = ?, error = ?, "
                "data_version = COALESCE(?, data_version), run_dir = COALESCE(?, run_dir) "
                "WHERE run_id = ?",
                (status, now_iso(), error, data_version, run_dir, run_id),
            )
            if status == "failed":
                _decide(db, "run_failed", error or "unknown error", run_id=run_id)

    def runs(self) -> pd.DataFrame:
        """Every scheduled run, oldest first."""
        with self._reading() as db:
            rows = db.execute("SELECT * FROM runs ORDER BY started_at, rowid").fetchall()
        columns = ["run_id", "scheduled_for", "cutoff", "started_at", "finished_at", "status"]
        columns += ["pid", "data_version", "run_dir", "error"]
        return pd.DataFrame([dict(row) for row in rows], columns=columns)

    def recover_interrupted(self) -> list[str]:
        """Mark runs left ``running`` by a process that no longer exists as ``failed``.

        Returns
        -------
        list of str
            The run ids marked failed.
        """
        running = self.runs().query("status == 'running'")
        stale = [row.run_id for row in running.itertuples() if not _alive(int(row.pid or 0))]
        error = (
            "interrupted: the process running it died before it finished (killed or crashed); "
            "only the decisions it had committed took effect"
        )
        for run_id in stale:
            self.finish_run(run_id, status="failed", error=error)
        return stale

    def table(self) -> pd.DataFrame:
        """``shrek models``: one row per version with its latest decision's reason."""
        rows = [vars(version) for version in self.versions()]
        frame = pd.DataFrame(rows)
        if frame.empty:
            return frame
        decisions = self.decisions()
        last = decisions.dropna(subset=["version"]).groupby("version")["reason"].last()
        frame["reason"] = frame["version"].map(last)
        columns = ["version", "status", "run_id", "data_version", "cutoff", "ndcg", "fairness"]
        columns += ["fit_seconds", "size_bytes", "latency_ms", "reason"]
        return frame[columns].set_index("version")


def _row(db: sqlite3.Connection, version: str) -> sqlite3.Row | None:
    return db.execute("SELECT * FROM models WHERE version = ?", (version,)).fetchone()


def _version(row: sqlite3.Row) -> ModelVersion:
    document = dict(row)
    document["metrics"] = json.loads(document["metrics"])
    return ModelVersion(**document)


def _decide(
    db: sqlite3.Connection,
    action: str,
    reason: str,
    *,
    version: str | None = None,
    run_id: str | None = None,
    from_status: str | None = None,
    to_status: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    document = json.dumps(details, default=str) if details else None
    db.execute(
        "INSERT INTO decisions (at, run_id, version, action, from_status, to_status, reason, "
        "details) VALUES (?,?,?,?,?,?,?,?)",
        (now_iso(), run_id, version, action, from_status, to_status, reason, document),
    )


def _set_deployment(db: sqlite3.Connection, stable: str, candidate: str, share: float) -> None:
    if not 0 <= share <= 1:
        raise ValueError(f"share must be 0–1, got {share!r}")
    row = db.execute("SELECT * FROM deployment WHERE slot = 1").fetchone()
    same_pair = row is not None and (row["stable"], row["candidate"]) == (stable, candidate)
    deployment_id = 1 if row is None else row["id"] if same_pair else row["id"] + 1
    db.execute(
        "INSERT OR REPLACE INTO deployment VALUES (1, ?, ?, ?, ?, ?)",
        (deployment_id, stable, candidate, float(share), now_iso()),
    )


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (killed, not yet reaped) is dead for our purpose
        with open(f"/proc/{pid}/stat") as file:
            return file.read().split(") ")[-1][:1] != "Z"
    except OSError:
        return True
