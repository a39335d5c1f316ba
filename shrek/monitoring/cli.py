"""``shrek online-eval``, ``shrek ab-report``, ``shrek drift``, ``shrek monitor`` and
``shrek closed-loop``.

The log is either a Kafka topic (read from the beginning with the records' provenance
headers; ``SHREK_KAFKA_BOOTSTRAP_SERVERS`` or ``--bootstrap-servers``) or a text file of
stream lines, each optionally followed by `` | variant=... model_version=...`` as in the
service's own request log (``--log``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import click

from shrek.stream.cli import runtime_option

logger = logging.getLogger(__name__)

log_options = [
    click.option(
        "--log",
        "log_file",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="A text file of stream lines instead of the topic.",
    ),
    click.option(
        "--bootstrap-servers",
        envvar="SHREK_KAFKA_BOOTSTRAP_SERVERS",
        help="Kafka host:port list (env SHREK_KAFKA_BOOTSTRAP_SERVERS).",
    ),
    click.option(
        "--topic", default="shrek-events", show_default=True, help="Topic of the event stream."
    ),
    click.option(
        "--window",
        default="1h",
        show_default=True,
        help="How long after a request a watch still counts (pandas duration: 30min, 1D).",
    ),
    click.option(
        "--count-rates",
        is_flag=True,
        help="Count rate events of a recommended movie as starting it, besides watch events.",
    ),
]


def _with_log_options(command):  # noqa: ANN001, ANN202 - click decorator plumbing
    for option in reversed(log_options):
        command = option(command)
    return command


def _joined(log_file, bootstrap_servers, topic, window, count_rates):  # noqa: ANN001, ANN202
    from shrek.monitoring.logs import load_log
    from shrek.monitoring.online import join_outcomes

    try:
        log = load_log(log_file=log_file, bootstrap_servers=bootstrap_servers, topic=topic)
    except ValueError as err:
        raise click.UsageError(f"{err}: pass --log FILE or --bootstrap-servers") from None
    kinds = ("watch", "rate") if count_rates else ("watch",)
    return join_outcomes(log.requests, log.events, window=window, kinds=kinds)


@click.command("online-eval")
@_with_log_options
@click.option("--freq", help="Also split by time period (pandas frequency: 1h, 1D).")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the table as CSV here.",
)
def online_eval_command(
    log_file: Path | None,
    bootstrap_servers: str | None,
    topic: str,
    window: str,
    count_rates: bool,
    freq: str | None,
    output: Path | None,
) -> None:
    """Watch-through, hit position and personalization per variant and model version."""
    from shrek.monitoring.online import online_metrics

    joined = _joined(log_file, bootstrap_servers, topic, window, count_rates)
    table = online_metrics(joined, freq=freq)
    if output:
        table.to_csv(output, index=False)
    click.echo(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))


@click.command("ab-report")
@_with_log_options
@click.option("--control", default="stable", show_default=True, help="Control variant.")
@click.option("--treatment", default="candidate", show_default=True, help="Treatment variant.")
@click.option(
    "--share",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.5,
    show_default=True,
    help="Configured share of traffic on the treatment (for the sample-ratio check).",
)
@click.option("--alpha", type=float, default=0.05, show_default=True)
@click.option(
    "--mde",
    type=float,
    default=0.02,
    show_default=True,
    help="Minimum detectable watch-through difference (absolute) for the power analysis.",
)
@click.option("--power", type=float, default=0.8, show_default=True)
@click.option("--one-per-user", is_flag=True, help="Use only each user's first request.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def ab_report_command(
    log_file: Path | None,
    bootstrap_servers: str | None,
    topic: str,
    window: str,
    count_rates: bool,
    control: str,
    treatment: str,
    share: float,
    alpha: float,
    mde: float,
    power: float,
    one_per_user: bool,
    as_json: bool,
) -> None:
    """z-test, bootstrap interval, sample-ratio check, power analysis and a verdict."""
    from shrek.monitoring.ab import ab_report

    joined = _joined(log_file, bootstrap_servers, topic, window, count_rates)
    report = ab_report(
        joined,
        control=control,
        treatment=treatment,
        one_per_user=one_per_user,
        expected_treatment_share=share,
        alpha=alpha,
        mde=mde,
        power=power,
    )
    click.echo(json.dumps(report.to_dict(), indent=2) if as_json else str(report))


@click.command("drift")
@click.option(
    "--reference",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    required=True,
    help="The training data: a dataset folder (Dataset.save; a run's data/ folder).",
)
@click.option(
    "--current",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    required=True,
    help="The collected data: a dataset folder (a collector folder's dataset/).",
)
@click.option(
    "--window",
    default="7D",
    show_default=True,
    help="Compare only the latest window of the current ratings (pandas duration).",
)
@click.option(
    "--collector-folder",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="A collector folder: its counters give the quarantine rate.",
)
@click.option(
    "--topic",
    default="shrek-events",
    show_default=True,
    help="The topic whose offsets the collector folder records.",
)
def drift_command(
    reference: Path, current: Path, window: str, collector_folder: Path | None, topic: str
) -> None:
    """PSI of ratings, popularity shift, new users and movies, quarantine rate."""
    from shrek.data.dataset import Dataset
    from shrek.monitoring.drift import drift_report, latest_window
    from shrek.monitoring.metrics import read_collector_state

    reference_ratings = Dataset.load(reference).ratings
    current_ratings = latest_window(Dataset.load(current).ratings, window=window)
    counters = {"quarantined": 0, "accepted": None}
    if collector_folder is not None:
        state = read_collector_state(collector_folder, topic=topic)
        if state is not None:
            counters = {"quarantined": state["quarantined"], "accepted": state["accepted"]}
    report = drift_report(reference_ratings, current_ratings, **counters)
    click.echo(json.dumps(report.to_dict(), indent=2))


@click.command("monitor")
@click.option(
    "--bootstrap-servers",
    envvar="SHREK_KAFKA_BOOTSTRAP_SERVERS",
    help="Kafka host:port list (env SHREK_KAFKA_BOOTSTRAP_SERVERS).",
)
@click.option("--topic", default="shrek-events", show_default=True)
@click.option("--port", type=int, default=9108, show_default=True, help="0 picks a free port.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option(
    "--reference",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Training dataset folder, for the drift gauges.",
)
@click.option(
    "--collector-folder",
    type=click.Path(file_okay=False, path_type=Path),
    help="The collector's folder, for its counters and lag.",
)
@click.option("--interval", type=float, default=15.0, show_default=True, help="Seconds.")
@click.option("--window", default="1h", show_default=True, help="Online evaluation window.")
@click.option("--drift-window", default="7D", show_default=True)
@click.option(
    "--complete-only/--include-open",
    default=True,
    show_default=True,
    help="Gauges over requests whose window has ended only, or also over those still open "
    "(counted as misses so far). The counters always count completed requests.",
)
def monitor_command(
    bootstrap_servers: str | None,
    topic: str,
    port: int,
    host: str,
    reference: Path | None,
    collector_folder: Path | None,
    interval: float,
    window: str,
    drift_window: str,
    complete_only: bool,
) -> None:
    """Serve Shrek's Prometheus metrics (online, drift, collector) until Ctrl-C."""
    from shrek.data.dataset import Dataset
    from shrek.monitoring.metrics import Monitor
    from shrek.stream.cli import _settings

    monitor = Monitor(
        _settings(bootstrap_servers),
        topic,
        reference=Dataset.load(reference).ratings if reference else None,
        collector_folder=collector_folder,
        window=window,
        drift_window=drift_window,
        complete_only=complete_only,
    )
    bound = monitor.serve(port=port, host=host)
    click.echo(f"Shrek metrics on http://{host}:{bound}/metrics; Ctrl-C stops")
    try:
        monitor.run(interval=interval)
    except KeyboardInterrupt:
        pass
    finally:
        monitor.stop()


@click.command("closed-loop")
@click.option("--service-url", default="http://127.0.0.1:3000", show_default=True)
@click.option(
    "--bootstrap-servers",
    envvar="SHREK_KAFKA_BOOTSTRAP_SERVERS",
    help="Kafka host:port list; the service must log to the same topic.",
)
@click.option("--topic", default="shrek-events", show_default=True)
@click.option(
    "--dataset",
    "dataset_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="A dataset folder (Dataset.save); MovieLens 100K when omitted.",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder holding ml-100k/ (default: $SHREK_DATA_DIR).",
)
@click.option(
    "--start",
    required=True,
    help="Dataset time where the simulation starts (the end of the training window).",
)
@click.option("--horizon", default="7D", show_default=True, help="Events replayed per turn.")
@click.option("--max-users", type=int, help="Sample this many users (seeded).")
@click.option(
    "--watch-fraction",
    type=click.FloatRange(0, 1),
    default=1.0,
    show_default=True,
    help="Share of ratings preceded by SIMULATED watch events.",
)
@runtime_option
@click.option(
    "--speedup",
    type=float,
    default=1.0,
    show_default=True,
    help="Dataset seconds per wall-clock second in the events' stamps (1440: a day per "
    "minute; divide the evaluation window by the same factor).",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed of the user sample and watches."
)
@click.option("--progress/--no-progress", default=True, show_default=True)
def closed_loop_command(
    service_url: str,
    bootstrap_servers: str | None,
    topic: str,
    dataset_dir: Path | None,
    data_dir: Path | None,
    start: str,
    horizon: str,
    max_users: int | None,
    watch_fraction: float,
    runtime_minutes: int,
    speedup: float,
    seed: int,
    progress: bool,
) -> None:
    """SIMULATION: ask the service at each user's turn, then replay the user's later events."""
    from shrek.monitoring.closed_loop import plan_turns, run_closed_loop
    from shrek.stream.cli import _load_dataset, _settings
    from shrek.stream.replay import WatchModel

    dataset = _load_dataset(dataset_dir, data_dir)
    turns = plan_turns(
        dataset.ratings,
        start=start,
        horizon=horizon,
        max_users=max_users,
        watch_model=WatchModel(
            watch_fraction=watch_fraction, runtime_minutes=runtime_minutes, seed=seed
        ),
        seed=seed,
    )
    stats = run_closed_loop(
        turns,
        service_url=service_url,
        settings=_settings(bootstrap_servers),
        topic=topic,
        speedup=speedup,
        show_progress=progress,
    )
    click.echo(
        f"closed loop (simulation): {stats.turns} turns, {stats.answered} answered, "
        f"{stats.failed} failed, {stats.events} events to {topic} in {stats.seconds:.1f} s"
    )


COMMANDS = (
    online_eval_command,
    ab_report_command,
    drift_command,
    monitor_command,
    closed_loop_command,
)
