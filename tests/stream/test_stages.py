"""The stream side of :mod:`shrek.pipeline.stages`: restoring the source order, and reporting
on a run's collector folder without disturbing it."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from shrek.data.dataset import Dataset
from shrek.pipeline import stages
from shrek.pipeline.stages import SourceOrderWarning, in_source_order
from shrek.stream.collector import Collector
from shrek.stream.replay import produce_lines


def test_in_source_order_restores_the_files_order(small_dataset):
    ratings = small_dataset.ratings
    shuffled = ratings.sample(frac=1.0, random_state=0).reset_index(drop=True)
    pd.testing.assert_frame_equal(in_source_order(shuffled, ratings), ratings)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda r: r.iloc[1:], "the stream gave 299 rows with columns"),
        (
            lambda r: r.assign(rating=[r["rating"][0] % 5 + 1, *r["rating"][1:]]),
            r"1 collected rows have \['user_id', 'movie_id', 'rating', 'timestamp'\] the files",
        ),
        (lambda r: pd.concat([r.iloc[:1], r.iloc[:-1]]), "some rows differ between the stream"),
    ],
)
def test_in_source_order_warns_when_it_keeps_the_collected_order(small_dataset, change, reason):
    """Regression: the fallback to the collected order was silent, and the stratified split
    then no longer followed the Recommenders protocol without anyone knowing."""
    ratings = small_dataset.ratings
    collected = change(ratings).reset_index(drop=True)
    with pytest.warns(SourceOrderWarning, match=f"ratings collected from the stream kept in the "
                      f"collected order: {reason}"):  # fmt: skip
        kept = in_source_order(collected, ratings, name="ratings")
    assert kept is collected


def test_in_source_order_warns_when_only_values_differ(small_dataset):
    users = small_dataset.users
    collected = users.assign(age=users["age"] + 1)
    with pytest.warns(SourceOrderWarning, match="some rows differ between the stream"):
        in_source_order(collected, users, keys=["user_id"], name="users")


@pytest.fixture
def run_dir(tmp_path, topic):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"data": {"topic": topic}}))
    return tmp_path


def test_collection_summary_reads_a_running_collectors_folder(
    kafka_settings, topic, metadata_server, run_dir
):
    """Regression: the report took the folder's lock (failing while a collector ran) and
    deleted files of a batch in progress; it also lacked the lag."""
    lines = [
        b"2023-11-15T10:00:00,1,GET /rate/movie+0+1990=4",
        b"2023-11-15T10:00:00,1,GET /rate/movie+0+1990=4",  # duplicate
        b"2023-11-15T10:00:00,999,GET /rate/movie+0+1990=3",  # unknown user
        b"junk",
    ]
    produce_lines(kafka_settings, topic, lines, keys=[b"k"] * len(lines))
    folder = run_dir / "stream"
    with Collector(folder, settings=kafka_settings, topic=topic, assign=True,
                   metadata_url=metadata_server.url) as collector:  # fmt: skip
        stats = collector.run(stop_at_end=True, until_idle_seconds=None)
        orphan = folder / "parts" / "rates" / "month=2023-11" / "b99999999.parquet.tmp"
        orphan.write_bytes(b"a batch being written")

        summary = stages.collection_summary(run_dir).set_index("counter")["value"]
        reasons = stages.quarantine_reasons(run_dir).set_index("reason")["lines"]

        assert orphan.exists()
        quarantine = collector.quarantine()
    assert summary[["accepted", "quarantined", "duplicates", "lag"]].tolist() == [
        stats.accepted, stats.quarantined, stats.duplicates, stats.lag
    ]  # fmt: skip
    assert summary[["accepted", "quarantined", "duplicates", "lag"]].tolist() == [1, 2, 1, 0]
    assert summary.filter(like="next offset").sum() == len(lines)
    assert reasons.sum() == len(quarantine) == stats.quarantined + stats.duplicates
    assert reasons[reasons.index.str.startswith("unknown user id 999")].tolist() == [1]


def test_collection_summary_of_a_run_that_read_the_files(tmp_path):
    assert "read the files directly" in stages.collection_summary(tmp_path)["note"][0]
    assert stages.quarantine_reasons(tmp_path).empty


def test_collect_stream_keeps_the_order_warning_in_the_data_version(
    kafka_settings, topic, small_dataset, run_dir, monkeypatch
):
    """The fallback is visible in the run: warned, and noted in data_version.json (which
    metrics.json copies)."""
    monkeypatch.setenv("SHREK_KAFKA_BOOTSTRAP_SERVERS", kafka_settings.bootstrap_servers)
    monkeypatch.setenv("SHREK_KAFKA_SESSION_TIMEOUT_MS", "2000")
    (run_dir / "config.yaml").write_text(
        yaml.safe_dump({"data": {"topic": topic, "watch_fraction": 0.0}})
    )
    users = small_dataset.users
    lurker = users.iloc[:1].assign(user_id=users["user_id"].max() + 1)  # rates nothing
    tables = {**small_dataset.tables(), "users": pd.concat([users, lurker], ignore_index=True)}
    source = Dataset.from_tables(**tables, source={"kind": "synthetic"})

    with pytest.warns(SourceOrderWarning, match="users collected from the stream kept in"):
        dataset = stages.collect_stream(run_dir, source)

    pd.testing.assert_frame_equal(dataset.ratings, source.ratings)  # restored
    (note,) = dataset.version.source["notes"]
    assert note.startswith(f"users collected from the stream kept in the collected order: the "
                           f"stream gave {len(users)} rows")  # fmt: skip
