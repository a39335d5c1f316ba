"""``shrek broker``, ``shrek metadata-api``, ``shrek replay`` and ``shrek collect``.

Every command reads the Kafka settings from ``SHREK_KAFKA_*`` environment variables (see
:class:`shrek.stream.broker.KafkaSettings`); ``--bootstrap-servers`` overrides the servers.
"""

from __future__ import annotations

import logging
from pathlib import Path

import click

from shrek.stream.broker import EmbeddedBroker, KafkaSettings

logger = logging.getLogger(__name__)

RATING_SCALES = {"1-5": (1, 5), "1-10": (1, 10)}

bootstrap_option = click.option(
    "--bootstrap-servers",
    envvar="SHREK_KAFKA_BOOTSTRAP_SERVERS",
    help="Kafka host:port list (env SHREK_KAFKA_BOOTSTRAP_SERVERS). Start one with "
    "`shrek broker` when you have no cluster.",
)
topic_option = click.option(
    "--topic", default="shrek-events", show_default=True, help="Topic of the event stream."
)
scale_option = click.option(
    "--rating-scale",
    type=click.Choice(sorted(RATING_SCALES)),
    default="1-5",
    show_default=True,
    help="Accepted ratings.",
)
runtime_option = click.option(
    "--runtime-minutes",
    type=int,
    default=100,
    show_default=True,
    help="Assumed length of every movie for the simulated watch events.",
)
dataset_options = [
    click.option(
        "--dataset",
        "dataset_dir",
        type=click.Path(exists=True, file_okay=False, path_type=Path),
        help="A folder written by Dataset.save; MovieLens 100K when omitted.",
    ),
    click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        help="Folder holding ml-100k/ (default: $SHREK_DATA_DIR).",
    ),
]


def _with_dataset_options(command):  # noqa: ANN001, ANN202 - click decorator plumbing
    for option in reversed(dataset_options):
        command = option(command)
    return command


def _load_dataset(dataset_dir: Path | None, data_dir: Path | None):  # noqa: ANN202
    from shrek.data.dataset import Dataset
    from shrek.data.movielens import load_movielens_100k

    return Dataset.load(dataset_dir) if dataset_dir else load_movielens_100k(data_dir)


def _settings(bootstrap_servers: str | None) -> KafkaSettings:
    settings = KafkaSettings.from_env()
    if bootstrap_servers:
        settings = settings.with_bootstrap(bootstrap_servers, embedded=False)
    if not settings.configured:
        raise click.UsageError(
            "no Kafka broker: run `shrek broker` in another terminal and export the "
            "SHREK_KAFKA_BOOTSTRAP_SERVERS it prints, or pass --bootstrap-servers"
        )
    return settings


@click.command("broker")
@click.option("--port", type=int, default=9092, show_default=True, help="0 picks a free port.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Loopback address.")
def broker_command(port: int, host: str) -> None:
    """Run the embedded Tansu broker (in memory) until Ctrl-C."""
    broker = EmbeddedBroker(port=port or None, host=host).start()
    click.echo(f"export SHREK_KAFKA_BOOTSTRAP_SERVERS={broker.bootstrap_servers}")
    click.echo("export SHREK_KAFKA_SESSION_TIMEOUT_MS=2000  # consumers join in ~1 s, not ~23 s")
    click.echo("In-memory Kafka-compatible broker running; Ctrl-C stops it (data is lost).")
    broker.serve_forever()


@click.command("metadata-api")
@_with_dataset_options
@click.option("--port", type=int, default=8081, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
def metadata_api_command(
    dataset_dir: Path | None, data_dir: Path | None, port: int, host: str
) -> None:
    """Serve GET /user/<id> and GET /movie/<id> from a dataset until Ctrl-C."""
    from shrek.stream.metadata_api import MetadataServer

    server = MetadataServer(_load_dataset(dataset_dir, data_dir), host=host, port=port).start()
    click.echo(f"metadata API on {server.url} (try {server.url}/user/1); Ctrl-C stops it")
    server.serve_forever()


@click.command("replay")
@_with_dataset_options
@bootstrap_option
@topic_option
@scale_option
@click.option("--rate", type=float, help="Events per second (default: as fast as possible).")
@click.option(
    "--watch-fraction",
    type=click.FloatRange(0, 1),
    default=0.1,
    show_default=True,
    help="Share of ratings preceded by SIMULATED watch events (0 for none).",
)
@runtime_option
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed of the watch simulation."
)
@click.option(
    "--partitions",
    type=int,
    default=3,
    show_default=True,
    help="Partitions of the topic when the replay creates it.",
)
@click.option("--progress/--no-progress", default=True, show_default=True)
def replay_command(
    dataset_dir: Path | None,
    data_dir: Path | None,
    bootstrap_servers: str | None,
    topic: str,
    rating_scale: str,
    rate: float | None,
    watch_fraction: float,
    runtime_minutes: int,
    seed: int,
    partitions: int,
    progress: bool,
) -> None:
    """Produce a dataset's ratings, and simulated watch events, to TOPIC by time."""
    from shrek.stream.replay import WatchModel, replay

    stats = replay(
        _load_dataset(dataset_dir, data_dir),
        topic,
        settings=_settings(bootstrap_servers),
        watch_model=WatchModel(
            watch_fraction=watch_fraction, runtime_minutes=runtime_minutes, seed=seed
        ),
        rate=rate,
        partitions=partitions,
        rating_scale=RATING_SCALES[rating_scale],
        show_progress=progress,
    )
    click.echo(
        f"replayed {stats.rates} rate and {stats.watches} simulated watch events to {topic} "
        f"in {stats.seconds:.1f} s"
    )


@click.command("collect")
@bootstrap_option
@topic_option
@scale_option
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("data/collected"),
    show_default=True,
    help="Collector folder; a rerun continues where the last one stopped.",
)
@click.option("--group-id", default="shrek-collector", show_default=True)
@click.option("--metadata-url", help="Base URL of the metadata API, e.g. http://127.0.0.1:8081.")
@click.option("--batch-size", type=int, default=20_000, show_default=True)
@click.option(
    "--until-idle",
    type=float,
    default=5.0,
    show_default=True,
    help="Stop after this many seconds without events (0: never).",
)
@click.option("--stop-at-end", is_flag=True, help="Stop at the end offsets seen on start.")
@click.option("--assign", is_flag=True, help="Assign all partitions instead of joining.")
@click.option("--dead-letter-topic", help="Also send quarantined lines to this topic.")
@click.option("--progress/--no-progress", default=True, show_default=True)
def collect_command(
    bootstrap_servers: str | None,
    topic: str,
    rating_scale: str,
    out: Path,
    group_id: str,
    metadata_url: str | None,
    batch_size: int,
    until_idle: float,
    stop_at_end: bool,
    assign: bool,
    dead_letter_topic: str | None,
    progress: bool,
) -> None:
    """Consume TOPIC into partitioned Parquet under --out and build the four tables."""
    from shrek.stream.collector import collect

    dataset = collect(
        out,
        settings=_settings(bootstrap_servers),
        topic=topic,
        group_id=group_id,
        metadata_url=metadata_url,
        rating_scale=RATING_SCALES[rating_scale],
        batch_size=batch_size,
        until_idle_seconds=until_idle or None,
        stop_at_end=stop_at_end,
        assign=assign,
        dead_letter_topic=dead_letter_topic,
        show_progress=progress,
        handle_signals=True,
    )
    counters = dataset.version.source["counters"]
    late = counters["unknown_id_events"]
    in_files = counters["quarantined"] - late + counters["duplicates"]
    rows = ", ".join(f"{name} {n:,}" for name, n in dataset.version.rows.items())
    click.echo(
        f"{out}: {counters['accepted']:,} events accepted, {counters['quarantined']:,} "
        f"quarantined ({in_files:,} lines with their reason in {out}/quarantine/, duplicates "
        f"included; {late:,} events whose user or movie the metadata API does not know), "
        f"{counters['duplicates']:,} duplicates dropped, lag {counters['lag']}\n"
        f"tables in {out}/dataset: {rows}; data version {dataset.version.hash}"
    )
    if not metadata_url:
        click.echo(
            "no --metadata-url: the users and movies tables are empty (run `shrek metadata-api` "
            "and collect again with --metadata-url to fill them)",
            err=True,
        )


@click.group("stream")
def stream_commands() -> None:
    """Broker, metadata API, replay and collector."""


for _command in (broker_command, metadata_api_command, replay_command, collect_command):
    stream_commands.add_command(_command)

COMMANDS = (broker_command, metadata_api_command, replay_command, collect_command)
