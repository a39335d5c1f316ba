"""Export into the model store and the in-process pieces: ids, gate, router, request log."""

from __future__ import annotations

import bentoml
import numpy as np
import pytest
from click.testing import CliRunner

from shrek.serve.canary import (
    CanaryConfig,
    CanaryRouter,
    SplitFileError,
    bucket,
    write_canary_config,
)
from shrek.serve.cli import export_command, serve_config_command
from shrek.serve.export import FairnessGateError, export_run, exported_table
from shrek.serve.model import ServedModel, parse_user_id
from shrek.serve.request_log import RequestLog
from shrek.stream.broker import KafkaSettings, free_port


def test_export_records_provenance(exported):  # also: the store is the temporary BENTOML_HOME
    stored = bentoml.models.get(exported["als"].tag)
    meta = stored.info.metadata

    assert stored.info.labels["run_id"] == "run-serve"
    assert stored.info.labels["fairness"] == "PASS"
    assert stored.info.labels["training_data"] == "all"
    assert stored.info.labels["fairness_of"] == "als_temporal"
    assert meta["fairness_gate"]["verdict_is_of_this_fit"] is False
    assert meta["data"]["source"]["offsets"] == {"0": 812, "1": 790}  # the Kafka offsets
    assert meta["evaluation"]["splits"]["stratified"]["ndcg@10"] == 0.31
    assert meta["params"]["factors"] == 8
    assert meta["n_users"] == 80  # refitted on every rating of the run
    assert {"trained_at", "fit_seconds", "code_version", "fairness_gate"} <= set(meta)


def test_exported_table_shows_each_version_and_what_its_verdict_is_of(exported):
    table = exported_table([exported["als"], exported["lightfm"]])

    assert table.index.tolist() == [exported["als"].tag, exported["lightfm"].tag]
    assert table["fairness"].tolist() == ["PASS", "INCONCLUSIVE"]
    assert table["fairness_of"].tolist() == ["als_temporal", "lightfm_temporal"]
    assert table["training_data"].tolist() == ["all", "all"]


def test_served_model_cold_starts(exported):
    als = ServedModel.from_store(exported["als"].tag)
    lightfm = ServedModel.from_store(exported["lightfm"].tag)

    assert als.recommend(3).cold_start == "none"
    assert als.recommend(90).cold_start == "popularity"
    assert lightfm.recommend(90).cold_start == "metadata"
    assert lightfm.recommend(5000).cold_start == "popularity"
    assert len(lightfm.recommend(5000, N=20).movie_ids) == 20


def test_export_refuses_models_the_gate_did_not_pass(make_run, passing_gate):
    gate = {
        **passing_gate,
        "eligible": {"als": False, "lightfm": True},
        "verdicts": {"als": "FAIL"},
    }
    run_dir = make_run("run-fail", gate)

    with pytest.raises(FairnessGateError, match="model 'als' is not eligible under the fairness"):
        export_run(run_dir, models=["als"])


def test_export_refuses_runs_without_a_gate_unless_forced(make_run, bentoml_home):
    run_dir = make_run("run-nogate", None)

    with pytest.raises(FairnessGateError, match="fairness.json does not exist"):
        export_run(run_dir)
    result = CliRunner().invoke(export_command, [str(run_dir), "--model", "als", "--force"])
    assert result.exit_code == 0, result.output
    assert '"fairness": "overridden"' in result.output
    assert '"fairness_of": "none"' in result.output


# "1٢٣" and "٤٢": digits of other scripts, which int() reads (regression, issue 5).
@pytest.mark.parametrize(
    "bad", ["abc", "0", "-1", "1e3", " 7", "", "1" * 19, 2.5, True, "1٢٣", "٤٢", "１２"]
)
def test_parse_user_id_names_what_it_accepts(bad):
    with pytest.raises(ValueError, match=r"^user_id must be a positive integer \(1 to 18 digits"):
        parse_user_id(bad)


def test_bucket_is_uniform_and_salted():
    buckets = np.array([bucket(u, "shrek") for u in range(1, 20_001)])

    assert abs((buckets < 0.3).mean() - 0.3) < 0.02
    assert bucket(42, "shrek") == bucket(42, "shrek") != bucket(42, "other")


def test_raising_the_share_only_moves_users_to_the_candidate():
    low, high = CanaryConfig(share=0.1), CanaryConfig(share=0.4)

    moved_back = [u for u in range(1, 5001) if low.variant(u) == "candidate" != high.variant(u)]
    assert moved_back == []


def test_canary_config_rejects_bad_values_and_types():
    with pytest.raises(ValueError, match="share must be a number 0–1, got 1.5"):
        CanaryConfig(share=1.5)
    with pytest.raises(TypeError, match=r"share must be a number 0–1, got '0.3' \(str\)"):
        CanaryConfig(share="0.3")
    with pytest.raises(TypeError, match=r"salt must be a non-empty string, got 7 \(int\)"):
        CanaryConfig(salt=7)
    with pytest.raises(ValueError, match="salt must be a non-empty string, got ''"):
        CanaryConfig(salt="")


def test_router_update_names_an_unwritable_file_and_keeps_the_split(tmp_path):
    # Regression (issue 5): a read-only split file (a Kubernetes ConfigMap) failed the admin
    # call with an OSError (HTTP 500). Root may write anywhere: a directory stands in for it.
    path = tmp_path / "canary.yaml"
    path.mkdir()
    router = CanaryRouter(path, default=CanaryConfig(share=0.1), poll_seconds=0)

    with pytest.raises(SplitFileError, match=f"cannot write the canary split file {path}: "):
        router.update(share=0.5)
    assert router.config == CanaryConfig(share=0.1)
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_router_follows_its_file_and_keeps_the_last_good_split(tmp_path):
    path = tmp_path / "canary.yaml"
    router = CanaryRouter(path, default=CanaryConfig(share=0.2), poll_seconds=0)

    assert router.config.share == 0.2
    write_canary_config(path, CanaryConfig(share=0.7, salt="b"))
    assert router.config == CanaryConfig(share=0.7, salt="b")
    path.write_text("share: 9\n")
    assert router.config.share == 0.7


def test_serve_config_command_writes_the_watched_file(tmp_path):
    path = tmp_path / "canary.yaml"

    result = CliRunner().invoke(serve_config_command, [str(path), "--share", "0.25"])

    assert result.exit_code == 0, result.output
    assert CanaryRouter(path).config.share == 0.25


def test_request_log_never_blocks_when_kafka_is_down():
    settings = KafkaSettings(bootstrap_servers=f"127.0.0.1:{free_port()}")
    log = RequestLog(settings, retry_seconds=0.05, max_queue=3)
    try:
        for user in range(10):  # returns at once: queued, or dropped when the queue is full
            log.log(f"line {user}", user_id=user + 1, provenance={"variant": "stable"})
        queued_or_dropped = log.dropped + log._queue.qsize()
    finally:
        log.close(timeout=1)

    assert log.sent == 0
    assert log.dropped >= 7 and queued_or_dropped >= 9


def test_request_log_without_kafka_keeps_only_the_service_log(caplog):
    log = RequestLog(KafkaSettings())
    with caplog.at_level("INFO", logger="shrek.serve.requests"):
        log.log("2026-03-01T18:00:02,1,x", user_id=1, provenance={"variant": "candidate"})

    assert "variant=candidate" in caplog.text
    assert log.dropped == 0
