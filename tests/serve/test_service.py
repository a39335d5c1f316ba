"""The service body in process: answers, the event loop, and the models a bento names."""

from __future__ import annotations

import asyncio
import threading

import bentoml
import pytest

from shrek.serve.service import ModelNotInStoreError, RecommendationService, model_ref


@pytest.fixture
def in_process(exported, monkeypatch, tmp_path):
    """The canary service body (ALS stable, LightFM candidate for every user), in this process."""
    monkeypatch.setenv("SHREK_CANARY_CONFIG", str(tmp_path / "canary.yaml"))
    monkeypatch.setenv("SHREK_CANARY_SHARE", "1")
    for name in ("SHREK_ROUTING_FILE", "SHREK_METADATA_URL", "SHREK_KAFKA_BOOTSTRAP_SERVERS"):
        monkeypatch.delenv(name, raising=False)

    class InProcess(RecommendationService):
        stable_model = bentoml.models.get(exported["als"].tag)
        candidate_model = bentoml.models.get(exported["lightfm"].tag)

    service = InProcess()
    yield service
    service.request_log.close(timeout=1)


def test_metadata_lookup_runs_off_the_event_loop(in_process):
    # Regression (issue 5): the async endpoints called the LightFM metadata lookup (an HTTP call
    # with a 0.3 s timeout) on the event loop, so one unknown user stalled the whole worker.
    asked, release = threading.Event(), threading.Event()

    def slow_lookup(user_id: int) -> None:
        asked.set()
        release.wait(10)  # bounded: a blocked loop fails the test instead of hanging it

    in_process.variants["candidate"].user_lookup = slow_lookup

    async def scenario() -> tuple[dict, bool, dict]:
        unknown = asyncio.create_task(in_process.answer_async(5000))
        while not asked.is_set():
            await asyncio.sleep(0.01)
        known = await in_process.answer_async(7)
        still_waiting = not unknown.done()
        release.set()
        return known, still_waiting, await unknown

    known, still_waiting, unknown = asyncio.run(scenario())

    assert still_waiting  # user 7 was answered while user 5000's lookup was still waiting
    assert (known["variant"], known["answer"].cold_start) == ("candidate", "none")
    assert unknown["answer"].cold_start == "popularity"
    assert len(unknown["answer"].movie_ids) == 20


def test_answer_and_answer_async_agree(in_process):
    for user_id in (7, 90, 5000):
        direct = in_process.answer(user_id, n=5)
        awaited = asyncio.run(in_process.answer_async(str(user_id), n=5))

        assert direct["answer"] == awaited["answer"]
        assert direct["headers"] == awaited["headers"]


def test_model_ref_says_how_to_get_a_missing_model(bentoml_home, monkeypatch):
    # Regression (issue 5): with LightFM blocked by the fairness gate, `make serve` failed with
    # BentoML's "could not be found locally and failed to fetch from remote".
    monkeypatch.delenv("SHREK_CANDIDATE_MODEL", raising=False)

    with pytest.raises(ModelNotInStoreError) as caught:
        model_ref("SHREK_CANDIDATE_MODEL", "shrek-missing:latest")

    message = str(caught.value)
    assert message.startswith(
        "SHREK_CANDIDATE_MODEL: model shrek-missing:latest is not in the BentoML model store ("
    )
    assert "`shrek export`" in message and "bentos.als.service:ShrekALS" in message
