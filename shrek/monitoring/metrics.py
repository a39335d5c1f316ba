"""Shrek's own Prometheus metrics: online watch-through, drift and the collector, over HTTP.

The service exports its request metrics itself (:mod:`shrek.serve.metrics`, BentoML's
``/metrics``). This exporter (``shrek monitor``) reads the event topic, recomputes the online
metrics and drift every ``interval`` seconds, reads the collector folder's ledger, and serves:

=========================================  ===================================================
metric                                     meaning
=========================================  ===================================================
``shrek_online_completed_requests_total``  requests whose window ended, by ``variant``,
                                           ``model_version`` (each counted once)
``shrek_online_hits_total``                those of them after which the user started a
                                           recommended movie within the window
``shrek_online_requests``                  evaluated requests in memory (the last
                                           ``lookback``), by ``variant``, ``model_version``
``shrek_online_watch_through``             their watch-through rate, by ``variant``,
                                           ``model_version``
``shrek_online_hit_position``              mean 1-based rank of the movie started
``shrek_online_personalization``           share of distinct lists, by ``variant``,
                                           ``model_version``
``shrek_drift_rating_psi``                 PSI of ratings, latest window vs training
``shrek_drift_popularity_shift``           total variation distance of movie popularity
``shrek_drift_top_overlap``                Jaccard overlap of the most rated movies
``shrek_drift_new_users_share``            share of the window's users unknown in training
``shrek_drift_new_movies_share``           share of the window's movies unknown in training
``shrek_stream_quarantine_rate``           share of topic lines failing validation
``shrek_collector_events_total``           collector counters, by ``topic`` and ``outcome``
                                           (accepted, quarantined, duplicates)
``shrek_collector_quarantine_rate``        quarantined / (accepted + quarantined)
``shrek_collector_lag``                    records on the topic not yet committed by the
                                           collector, by ``topic``
``shrek_monitor_records_total``            topic records read by the exporter
``shrek_monitor_last_update_seconds``      Unix time of the last successful refresh
``shrek_monitor_refresh_errors_total``     refreshes that failed
=========================================  ===================================================

The watch-through over any period is the ratio of the two counters' rates, e.g.
``rate(shrek_online_hits_total[1h]) / rate(shrek_online_completed_requests_total[1h])``: the
alert rules use it. The gauges describe the requests in memory; by default (``complete_only``)
only those whose window has ended, so a request still open is never counted as a miss.

Notes
-----
The exporter's clock is the stream's: a request's window has ended once the log holds a line
stamped at least ``window`` after it. A watch that reaches the exporter after that (a slow
partition) is not counted. The counters restart from what is in memory when the exporter
restarts; ``rate`` treats that as a counter reset.

The collector folder is read through its SQLite ledger in read-only mode (the running
collector holds the folder's lock). The lag is the topic's high watermark, as seen by the
exporter's own reader, minus the ledger's next offset, summed over partitions.
The exporter keeps the parsed events of the last ``lookback`` in memory.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from shrek.monitoring.drift import DriftReport, drift_report, latest_window
from shrek.monitoring.online import (
    OnlineLog,
    check_window,
    join_outcomes,
    online_metrics,
    parse_log,
)
from shrek.stream.broker import KafkaSettings

logger = logging.getLogger(__name__)

DEFAULT_PORT = 9108
DRIFT_GAUGES: dict[str, tuple[str, str]] = {
    "rating_psi": ("shrek_drift_rating_psi", "PSI of the rating distribution vs training."),
    "popularity_shift": (
        "shrek_drift_popularity_shift",
        "Total variation distance of movie popularity vs training.",
    ),
    "top_overlap": ("shrek_drift_top_overlap", "Jaccard overlap of the most rated movies."),
    "new_user_share": ("shrek_drift_new_users_share", "Share of users unknown in training."),
    "new_movie_share": ("shrek_drift_new_movies_share", "Share of movies unknown in training."),
}


@dataclass
class Snapshot:
    """What the exporter serves; replaced as a whole on each refresh."""

    online: pd.DataFrame | None = None
    completed: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)
    drift: DriftReport | None = None
    stream_quarantine_rate: float | None = None
    collector: dict[str, Any] | None = None
    records: int = 0
    updated: float | None = None
    errors: int = 0


class ShrekMetrics(Collector):
    """A ``prometheus_client`` collector that renders the current :class:`Snapshot`."""

    def __init__(self) -> None:
        self.snapshot = Snapshot()

    def collect(self) -> Iterator[Any]:
        snap = self.snapshot
        yield from self._online(snap)
        if snap.drift is not None:
            for attribute, (name, documentation) in DRIFT_GAUGES.items():
                yield GaugeMetricFamily(name, documentation, value=getattr(snap.drift, attribute))
        if snap.stream_quarantine_rate is not None:
            yield GaugeMetricFamily(
                "shrek_stream_quarantine_rate",
                "Share of topic lines that fail validation.",
                value=snap.stream_quarantine_rate,
            )
        if snap.collector is not None:
            yield from self._collector(snap.collector)
        yield CounterMetricFamily(
            "shrek_monitor_records", "Topic records read by the exporter.", value=snap.records
        )
        yield CounterMetricFamily(
            "shrek_monitor_refresh_errors", "Refreshes that failed.", value=snap.errors
        )
        if snap.updated is not None:
            yield GaugeMetricFamily(
                "shrek_monitor_last_update_seconds",
                "Unix time of the last successful refresh.",
                value=snap.updated,
            )

    @staticmethod
    def _online(snap: Snapshot) -> Iterator[Any]:
        labels = ["variant", "model_version"]
        completed = CounterMetricFamily(
            "shrek_online_completed_requests",
            "Evaluated requests whose watch window ended.",
            labels=labels,
        )
        hits = CounterMetricFamily(
            "shrek_online_hits",
            "Completed requests after which the user started a recommended movie in the window.",
            labels=labels,
        )
        for key, (n_requests, n_hits) in sorted(snap.completed.items()):
            completed.add_metric(list(key), n_requests)
            hits.add_metric(list(key), n_hits)
        yield from (completed, hits)
        families = {
            "requests": GaugeMetricFamily(
                "shrek_online_requests", "Evaluated recommendation requests.", labels=labels
            ),
            "watch_through": GaugeMetricFamily(
                "shrek_online_watch_through",
                "Share of requests after which the user started a recommended movie.",
                labels=labels,
            ),
            "mean_hit_position": GaugeMetricFamily(
                "shrek_online_hit_position",
                "Mean 1-based rank of the recommended movie started.",
                labels=labels,
            ),
            "personalization": GaugeMetricFamily(
                "shrek_online_personalization",
                "Share of distinct recommendation lists among users.",
                labels=labels,
            ),
        }
        if snap.online is not None:
            for row in snap.online.itertuples(index=False):
                for column, family in families.items():
                    family.add_metric([row.variant, row.model_version], float(getattr(row, column)))
        yield from families.values()

    @staticmethod
    def _collector(state: dict[str, Any]) -> Iterator[Any]:
        topic = state["topic"]
        events = CounterMetricFamily(
            "shrek_collector_events",
            "Lines the collector handled, by outcome.",
            labels=["topic", "outcome"],
        )
        for outcome in ("accepted", "quarantined", "duplicates"):
            events.add_metric([topic, outcome], state[outcome])
        yield events
        seen = state["accepted"] + state["quarantined"]
        rate = GaugeMetricFamily(
            "shrek_collector_quarantine_rate",
            "Quarantined / (accepted + quarantined) lines.",
            labels=["topic"],
        )
        rate.add_metric([topic], state["quarantined"] / seen if seen else 0.0)
        yield rate
        if state.get("lag") is not None:
            lag = GaugeMetricFamily(
                "shrek_collector_lag",
                "Records on the topic the collector has not committed yet.",
                labels=["topic"],
            )
            lag.add_metric([topic], state["lag"])
            yield lag


def read_collector_state(folder: str | Path, *, topic: str) -> dict[str, Any] | None:
    """Counters and next offsets of a collector folder, read-only; None if it has no ledger.

    Returns
    -------
    dict or None
        ``topic``, ``accepted``, ``quarantined``, ``duplicates`` (int, as the collector
        reports them: events whose user or movie the metadata API reports unknown count as
        quarantined) and ``offsets`` (partition -> next offset).
    """
    from shrek.stream import tables
    from shrek.stream.store import CollectorStore

    if not (Path(folder) / "state.sqlite").is_file():
        return None
    try:
        store = CollectorStore(folder, topic=topic, read_only=True)
    except sqlite3.OperationalError as err:  # tables not created yet
        logger.debug("collector ledger in %s not readable yet: %s", folder, err)
        return None
    try:
        counters = tables.report_counters(store, tables.unknown_ids(store))
        offsets = store.next_offsets()
    except sqlite3.OperationalError as err:
        logger.debug("collector ledger in %s not readable yet: %s", folder, err)
        return None
    finally:
        store.close()
    return {"topic": topic, **counters, "offsets": offsets}


class Monitor:
    """Reads the event topic and keeps :class:`ShrekMetrics` up to date.

    Parameters
    ----------
    settings : KafkaSettings
        Where the broker is.
    topic : str
        The event stream: requests (with provenance headers), watch and rate events.
    reference : pandas.DataFrame, optional
        Training ratings (user_id, movie_id, rating, timestamp) for the drift gauges.
    collector_folder : str or Path, optional
        A collector folder (``shrek collect --out``) for the collector gauges.
    window : str, default "1h"
        Online evaluation window after each request.
    drift_window : str, default "7D"
        The latest collection window compared with ``reference``.
    lookback : str, default "30D"
        Events older than this (before the newest one) are dropped from memory; at least
        ``window``.
    complete_only : bool, default True
        The gauges evaluate only requests whose whole window has been observed (the counters
        always do).

    Raises
    ------
    ValueError
        If ``window`` or ``lookback`` is not a positive duration, or ``lookback < window``.
    """

    def __init__(
        self,
        settings: KafkaSettings,
        topic: str,
        *,
        reference: pd.DataFrame | None = None,
        collector_folder: str | Path | None = None,
        window: str = "1h",
        drift_window: str = "7D",
        lookback: str = "30D",
        complete_only: bool = True,
    ) -> None:
        from shrek.monitoring.logs import TopicReader

        self.topic = topic
        self.reference = reference
        self.collector_folder = Path(collector_folder) if collector_folder else None
        self.window = check_window(window)
        self.drift_window = drift_window
        self.lookback = check_window(lookback, name="lookback")
        if self.lookback < self.window:
            raise ValueError(
                f"lookback must be at least the window ({window}), got {lookback!r}: requests "
                "would leave memory before their window ends"
            )
        self.complete_only = complete_only
        self._completed: dict[tuple[str, str], tuple[int, int]] = {}
        self._counted: set[tuple] = set()
        self.metrics = ShrekMetrics()
        self.registry = CollectorRegistry()
        self.registry.register(self.metrics)
        self.reader = TopicReader(settings, topic)
        self.log = parse_log([])
        self._lines = 0
        self._rejected = 0
        self._stop = threading.Event()
        self._server: Any = None

    def refresh(self) -> Snapshot:
        """Read what arrived, recompute every gauge, and publish the new snapshot."""
        started = time.perf_counter()
        lines, headers = self.reader.read_available(timeout=5.0, idle_seconds=0.5)
        new = parse_log(lines, headers=headers)
        self._lines += len(lines)
        self._rejected += len(new.rejected)
        self.log = _trim(_append(self.log, new), self.lookback)

        snap = Snapshot(records=self._lines, errors=self.metrics.snapshot.errors)
        snap.stream_quarantine_rate = self._rejected / self._lines if self._lines else None
        requests, events = self.log.requests, self.log.events
        if not requests.empty:
            clock = requests["timestamp"].max()
            if not events.empty:
                clock = max(clock, events["timestamp"].max())
            complete = join_outcomes(requests, events, window=self.window, observed_until=clock)
            self._count_completed(complete, start=clock - self.lookback)
            joined = (
                complete
                if self.complete_only
                else join_outcomes(requests, events, window=self.window)
            )
            if not joined.empty:
                snap.online = online_metrics(joined)
        snap.completed = dict(self._completed)
        rates = events[events["kind"] == "rate"].rename(columns={"value": "rating"})
        current = latest_window(rates, window=self.drift_window)
        if self.reference is not None and not current.empty:
            snap.drift = drift_report(self.reference, current)
        snap.collector = self._collector_state()
        snap.updated = time.time()
        self.metrics.snapshot = snap
        logger.debug(
            "monitor refresh: %d new records in %.3f s", len(lines), time.perf_counter() - started
        )
        return snap

    def _count_completed(self, complete: pd.DataFrame, *, start: pd.Timestamp) -> None:
        """Add the completed requests not counted yet to the counters (each request once)."""
        keys = list(
            zip(
                complete["timestamp"],
                complete["user_id"],
                complete["variant"],
                complete["model_version"],
                complete["list_key"],
                strict=True,
            )
        )
        new = np.fromiter((key not in self._counted for key in keys), bool, len(keys))
        fresh = complete[new]
        counts = fresh.groupby(["variant", "model_version"])["hit"].agg(["size", "sum"])
        for (variant, version), row in counts.iterrows():
            n_requests, n_hits = self._completed.get((variant, version), (0, 0))
            self._completed[(variant, version)] = (
                n_requests + int(row["size"]),
                n_hits + int(row["sum"]),
            )
        self._counted.update(key for key, is_new in zip(keys, new, strict=True) if is_new)
        self._counted = {key for key in self._counted if key[0] >= start}

    def _collector_state(self) -> dict[str, Any] | None:
        if self.collector_folder is None:
            return None
        state = read_collector_state(self.collector_folder, topic=self.topic)
        if state is None:
            return None
        marks = self.reader.high_watermarks()
        if all(mark is not None for mark in marks.values()):
            state["lag"] = sum(
                max(0, mark - state["offsets"].get(p, 0)) for p, mark in marks.items()
            )
        return state

    def serve(self, *, port: int = DEFAULT_PORT, host: str = "127.0.0.1") -> int:
        """Serve ``/metrics`` on ``host:port`` from a background thread; return the port."""
        self._server, _ = start_http_server(port, addr=host, registry=self.registry)
        port = self._server.server_port
        logger.info("Shrek metrics on http://%s:%d/metrics", host, port)
        return port

    def run(self, *, interval: float = 15.0, max_seconds: float | None = None) -> None:
        """Refresh every ``interval`` seconds until :meth:`stop` (or ``max_seconds``)."""
        started = time.monotonic()
        while not self._stop.is_set():
            try:
                self.refresh()
            except Exception:  # noqa: BLE001 - keep serving the last snapshot, count the error
                logger.exception("monitor refresh failed")
                self.metrics.snapshot.errors += 1
            if max_seconds is not None and time.monotonic() - started >= max_seconds:
                break
            self._stop.wait(interval)

    def start(self, *, interval: float = 15.0) -> threading.Thread:
        """:meth:`run` in a daemon thread."""
        thread = threading.Thread(
            target=self.run, kwargs={"interval": interval}, name="shrek-monitor", daemon=True
        )
        thread.start()
        return thread

    def stop(self) -> None:
        """Stop refreshing, stop serving, close the topic reader."""
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self.reader.close()


def _append(log: OnlineLog, new: OnlineLog) -> OnlineLog:
    def cat(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
        if b.empty:
            return a
        return b if a.empty else pd.concat([a, b], ignore_index=True)

    return OnlineLog(
        requests=cat(log.requests, new.requests),
        events=cat(log.events, new.events),
        rejected=new.rejected,
    )


def _trim(log: OnlineLog, lookback: pd.Timedelta) -> OnlineLog:
    stamps = pd.concat([log.requests["timestamp"], log.events["timestamp"]])
    if stamps.empty:
        return log
    start = stamps.max() - lookback
    return OnlineLog(
        requests=log.requests[log.requests["timestamp"] >= start].reset_index(drop=True),
        events=log.events[log.events["timestamp"] >= start].reset_index(drop=True),
        rejected=log.rejected,
    )
