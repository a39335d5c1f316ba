"""Provenance is checkable: a logged answer names a model version that reproduces it (issue 5)."""

from __future__ import annotations

import time

from kafka import KafkaConsumer

from shrek.serve.model import ServedModel
from shrek.stream.events import RecommendationRequest, parse_line


def logged_requests(broker, topic: str, user_id: int, timeout: float = 30.0) -> list:
    """(event, headers) of the request lines of ``user_id`` on ``topic``."""
    consumer = KafkaConsumer(
        topic, **broker.settings().consumer_config(None), consumer_timeout_ms=1000
    )
    found, deadline = [], time.monotonic() + timeout
    try:
        while not found and time.monotonic() < deadline:
            for record in consumer:
                event = parse_line(record.value)
                if isinstance(event, RecommendationRequest) and event.user_id == user_id:
                    found.append((event, {k: v.decode() for k, v in record.headers}))
    finally:
        consumer.close()
    return found


def test_logged_answer_is_reproduced_from_the_model_it_names(canary_service, broker, log_topic):
    canary_service.set_share(0.0)
    served = canary_service.get("/recommend/17").text.split(",")

    (event, headers), *_ = logged_requests(broker, log_topic, 17)
    model = ServedModel.from_store(headers["model_version"])
    recomputed = model.recommend(event.user_id, N=20)

    assert event.status == 200 and event.server.startswith("shrek-test:")
    assert headers["variant"] == "stable"
    assert headers["data_version"] == model.data_version
    assert len(event.movie_ids) == 20
    assert list(recomputed.movie_ids) == list(event.movie_ids) == served
