"""The embedded Tansu broker and the Kafka settings."""

from __future__ import annotations

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from shrek.stream.broker import EmbeddedBroker, KafkaSettings


def test_settings_from_env_reads_every_variable():
    settings = KafkaSettings.from_env(
        {
            "SHREK_KAFKA_BOOTSTRAP_SERVERS": "k1:9093,k2:9093",
            "SHREK_KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
            "SHREK_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "SHREK_KAFKA_SASL_USERNAME": "shrek",
            "SHREK_KAFKA_SASL_PASSWORD": "swamp",
            "SHREK_KAFKA_SSL_CAFILE": "/etc/ca.pem",
        }
    )
    config = settings.client_config()
    assert config == {
        "bootstrap_servers": ["k1:9093", "k2:9093"],
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "shrek",
        "sasl_plain_password": "swamp",
        "ssl_check_hostname": True,
        "ssl_cafile": "/etc/ca.pem",
    }
    assert "swamp" not in repr(settings)
    assert "session_timeout_ms" not in settings.consumer_config("g")
    assert settings.topic_replication_factor == -1  # the cluster's default.replication.factor


def test_settings_from_env_map_mutual_tls_and_the_replication_factor():
    settings = KafkaSettings.from_env(
        {
            "SHREK_KAFKA_BOOTSTRAP_SERVERS": "k1:9093",
            "SHREK_KAFKA_SECURITY_PROTOCOL": "ssl",
            "SHREK_KAFKA_SSL_CAFILE": "/etc/ca.pem",
            "SHREK_KAFKA_SSL_CERTFILE": "/etc/client.pem",
            "SHREK_KAFKA_SSL_KEYFILE": "/etc/client.key",
            "SHREK_KAFKA_SSL_PASSWORD": "onion",
            "SHREK_KAFKA_SSL_CHECK_HOSTNAME": "false",
            "SHREK_KAFKA_REPLICATION_FACTOR": "3",
        }
    )
    assert settings.client_config() == {
        "bootstrap_servers": ["k1:9093"],
        "security_protocol": "SSL",
        "ssl_check_hostname": False,
        "ssl_cafile": "/etc/ca.pem",
        "ssl_certfile": "/etc/client.pem",
        "ssl_keyfile": "/etc/client.key",
        "ssl_password": "onion",
    }
    assert "onion" not in repr(settings)
    assert settings.topic_replication_factor == 3


def test_embedded_broker_ignores_the_configured_security_and_replication():
    """The embedded Tansu speaks PLAINTEXT on one node, whatever SHREK_KAFKA_* say."""
    configured = KafkaSettings.from_env(
        {
            "SHREK_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "SHREK_KAFKA_SASL_MECHANISM": "PLAIN",
            "SHREK_KAFKA_SSL_CERTFILE": "/etc/client.pem",
            "SHREK_KAFKA_REPLICATION_FACTOR": "3",
            "SHREK_KAFKA_SESSION_TIMEOUT_MS": "3000",
        }
    )
    settings = EmbeddedBroker(port=1).settings(configured)
    assert settings.client_config() == {
        "bootstrap_servers": ["127.0.0.1:1"],
        "security_protocol": "PLAINTEXT",
    }
    assert settings.topic_replication_factor == 1
    assert settings.consumer_config("g")["session_timeout_ms"] == 3000


def test_no_bootstrap_servers_means_embedded():
    assert not KafkaSettings.from_env({}).configured


def test_settings_errors_name_the_variable():
    with pytest.raises(
        ValueError,
        match="security_protocol must be one of PLAINTEXT, SSL, "
        "SASL_PLAINTEXT, SASL_SSL, got 'TLS' \\(set SHREK_KAFKA_SECURITY_PROTOCOL\\)",
    ):
        KafkaSettings.from_env({"SHREK_KAFKA_SECURITY_PROTOCOL": "tls"})
    with pytest.raises(ValueError, match="needs a SASL mechanism"):
        KafkaSettings(bootstrap_servers="k:1", security_protocol="SASL_SSL")
    with pytest.raises(
        ValueError,
        match=r"a client certificate \(ssl_certfile\) needs security_protocol SSL or SASL_SSL, "
        r"got 'PLAINTEXT' \(set SHREK_KAFKA_SECURITY_PROTOCOL\)",
    ):
        KafkaSettings.from_env({"SHREK_KAFKA_SSL_CERTFILE": "/etc/client.pem"})
    with pytest.raises(ValueError, match="ssl_keyfile needs the client certificate"):
        KafkaSettings(security_protocol="SSL", ssl_keyfile="/etc/client.key")
    with pytest.raises(
        ValueError, match="SHREK_KAFKA_SSL_CHECK_HOSTNAME must be true or false, got 'maybe'"
    ):
        KafkaSettings.from_env({"SHREK_KAFKA_SSL_CHECK_HOSTNAME": "maybe"})
    with pytest.raises(
        ValueError, match="SHREK_KAFKA_REPLICATION_FACTOR must be an integer, got 'three'"
    ):
        KafkaSettings.from_env({"SHREK_KAFKA_REPLICATION_FACTOR": "three"})
    with pytest.raises(ValueError, match="replication_factor must be ≥ 1, got 0"):
        KafkaSettings.from_env({"SHREK_KAFKA_REPLICATION_FACTOR": "0"})


def test_embedded_broker_round_trips_a_message_through_a_consumer_group(kafka_settings, topic):
    producer = KafkaProducer(**kafka_settings.producer_config())
    producer.send(topic, b"hello", partition=1)
    producer.flush()
    producer.close()
    consumer = KafkaConsumer(topic, **kafka_settings.consumer_config("g-roundtrip"))
    values = []
    for _ in range(100):
        for records in consumer.poll(timeout_ms=100).values():
            values += [r.value for r in records]
        if values:
            break
    consumer.commit()
    assert values == [b"hello"]
    assert consumer.committed(TopicPartition(topic, 1)) == 1
    consumer.close()


def test_embedded_broker_stops_its_process():
    broker = EmbeddedBroker().start()
    process = broker._process
    assert process.poll() is None
    broker.stop()
    assert process.poll() is not None
