"""The monitoring commands on a log file (the topic path is covered by the other tests)."""

from __future__ import annotations

import json

from click.testing import CliRunner

from shrek.monitoring.cli import ab_report_command, drift_command, online_eval_command


def test_online_eval_prints_the_table_and_writes_csv(tmp_path, hand_log_lines):
    log = tmp_path / "requests.log"
    log.write_text("\n".join(hand_log_lines) + "\n")

    result = CliRunner().invoke(
        online_eval_command, ["--log", str(log), "--output", str(tmp_path / "online.csv")]
    )

    assert result.exit_code == 0, result.output
    assert "watch_through" in result.output
    assert (tmp_path / "online.csv").read_text().count("\n") == 3


def test_ab_report_as_json(tmp_path, hand_log_lines):
    log = tmp_path / "requests.log"
    log.write_text("\n".join(hand_log_lines) + "\n")

    result = CliRunner().invoke(ab_report_command, ["--log", str(log), "--json"])

    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["control"]["hits"] == 3 and report["treatment"]["hits"] == 0


def test_without_log_or_servers_the_command_says_what_to_pass(monkeypatch):
    monkeypatch.delenv("SHREK_KAFKA_BOOTSTRAP_SERVERS", raising=False)

    result = CliRunner().invoke(online_eval_command, [])

    assert result.exit_code == 2
    assert "pass --log FILE or --bootstrap-servers" in result.output


def test_drift_compares_two_dataset_folders(tmp_path, stack):
    stack.synthetic_dataset(seed=1).save(tmp_path / "reference")
    stack.synthetic_dataset(seed=2).save(tmp_path / "current")

    result = CliRunner().invoke(
        drift_command,
        ["--reference", str(tmp_path / "reference"), "--current", str(tmp_path / "current")],
    )

    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["rating_drift"] == "stable"
    assert report["new_user_share"] == 0.0
