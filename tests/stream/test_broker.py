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
        "ssl_cafile": "/etc/ca.pem",
    }
    assert "swamp" not in repr(settings)
    assert "session_timeout_ms" not in settings.consumer_config("g")


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
