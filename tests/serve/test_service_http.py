"""The canary bento over HTTP, against a real `bentoml serve` (issue 5, "Must show")."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from shrek.serve.canary import CanaryConfig, write_canary_config
from shrek.stream.broker import free_port

ADMIN_TOKEN = "test-admin-token"  # what `Served.set_share` sends

PROVENANCE_HEADERS = (
    "X-Shrek-Variant",
    "X-Shrek-Model-Version",
    "X-Shrek-Data-Version",
    "X-Shrek-Run-Id",
    "X-Shrek-Code-Version",
    "X-Shrek-Cold-Start",
)


@pytest.fixture
def stable_only(canary_service):
    assert canary_service.set_share(0.0).status_code == 200
    return canary_service


@pytest.fixture
def candidate_only(canary_service):
    assert canary_service.set_share(1.0).status_code == 200
    yield canary_service
    canary_service.set_share(0.0)


def test_known_user_gets_20_ids_as_plain_text(stable_only, exported):
    response = stable_only.get("/recommend/7")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    ids = response.text.split(",")
    assert len(ids) == 20 and len(set(ids)) == 20
    assert all(id_.startswith("movie+") for id_ in ids)
    assert response.headers["X-Shrek-Variant"] == "stable"
    assert response.headers["X-Shrek-Model-Version"] == exported["als"].tag
    assert response.headers["X-Shrek-Data-Version"] == exported["als"].labels["data_version"]
    assert response.headers["X-Shrek-Cold-Start"] == "none"


def test_unknown_user_gets_popularity_from_als(stable_only):
    response = stable_only.get("/recommend/123456")

    assert response.status_code == 200
    assert len(response.text.split(",")) == 20
    assert response.headers["X-Shrek-Cold-Start"] == "popularity"


def test_lightfm_answers_unknown_user_from_metadata(candidate_only, exported):
    with_metadata = candidate_only.get("/recommend/90")  # in users, no ratings
    without = candidate_only.get("/recommend/123456")

    assert with_metadata.headers["X-Shrek-Model-Version"] == exported["lightfm"].tag
    assert with_metadata.headers["X-Shrek-Cold-Start"] == "metadata"
    assert len(with_metadata.text.split(",")) == 20
    assert without.headers["X-Shrek-Cold-Start"] == "popularity"


# 1%D9%A2%D9%A3 is "1٢٣" (Arabic-Indic digits), which `\d` and int() accept (regression, issue 5).
@pytest.mark.parametrize(
    "bad", ["abc", "0", "-4", "1.5", "12345678901234567890", "%20", "1%D9%A2%D9%A3"]
)
def test_malformed_user_id_is_400_with_a_clear_message(canary_service, bad):
    response = canary_service.get(f"/recommend/{bad}")

    assert response.status_code == 400
    assert response.text.startswith("user_id must be a positive integer (1 to 18 digits), got")
    assert "X-Shrek-Service" in response.headers


def test_json_endpoint_has_ids_scores_variant_and_provenance(stable_only, exported):
    response = stable_only.post("/recommendations", {"user_id": "7", "n": 5})

    assert response.status_code == 200
    body = response.json()
    assert len(body["movie_ids"]) == len(body["scores"]) == 5
    assert body["scores"] == sorted(body["scores"], reverse=True)
    assert body["variant"] == "stable"
    assert body["provenance"]["model_version"] == exported["als"].tag
    assert body["provenance"]["run_id"] == "run-serve"
    assert body["movie_ids"] == stable_only.get("/recommend/7").text.split(",")[:5]
    assert all(name in response.headers for name in PROVENANCE_HEADERS)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"user_id": "x1"}, "user_id must be a positive integer (1 to 18 digits), got 'x1'"),
        ({"user_id": 0}, "user_id must be a positive integer (1 to 18 digits), got '0'"),
        ({"user_id": [7]}, "user_id must be a positive integer (1 to 18 digits), got [7] (list)"),
        ({}, "user_id must be a positive integer (1 to 18 digits), got None (NoneType)"),
        ({"user_id": 3, "n": 0}, "n must be an integer 1–100, got 0"),
        ({"user_id": 3, "n": "many"}, "n must be an integer 1–100, got 'many'"),
    ],
)
def test_json_endpoint_rejects_bad_input_with_a_clean_400(canary_service, body, message):
    # Regression (issue 5): BentoML answered a list body and logged a traceback at ERROR.
    response = canary_service.post("/recommendations", body)

    assert response.status_code == 400
    assert response.json() == {"error": message}
    assert "X-Shrek-Service" in response.headers
    log = canary_service.log_file.read_text(errors="replace")
    assert "Exception on /recommendations" not in log
    assert "Traceback" not in log


def test_http_metrics_are_labelled_by_route_not_by_user(canary_service):
    # Regression (issue 5): one `endpoint` series per user made /metrics grow without bound.
    for user in range(5000, 5300):
        assert canary_service.get(f"/recommend/{user}").status_code == 200
    canary_service.get("/recommend/abc")

    metrics = canary_service.get("/metrics").text
    series = [
        line
        for line in metrics.splitlines()
        if line.startswith("bentoml_service_request") and 'endpoint="/recommend/' in line
    ]
    endpoints = {re.search(r'endpoint="([^"]*)"', line).group(1) for line in series}

    assert endpoints == {"/recommend/{user_id}"}
    assert len(series) < 100  # histogram buckets x response codes, not users
    assert any('http_response_code="400"' in line for line in series)


def test_health_and_metrics(stable_only):
    stable_only.get("/recommend/3")
    stable_only.get("/recommend/999999")

    assert stable_only.get("/livez").status_code == 200
    assert stable_only.get("/readyz").status_code == 200
    metrics = stable_only.get("/metrics")
    assert metrics.status_code == 200
    for name in (
        "shrek_recommendations_total",
        "shrek_cold_start_share",
        "shrek_bad_requests_total",
        "shrek_canary_share",
        "bentoml_service_request_total",
    ):
        assert name in metrics.text
    assert 'cold_start="popularity"' in metrics.text
    assert metrics.headers["X-Shrek-Stable-Model"].startswith("shrek-als:")


def test_admin_endpoint_is_protected(canary_service):
    anonymous = canary_service.post("/admin/canary", {"share": 0.5})
    wrong = canary_service.post("/admin/canary", {"share": 0.5}, Authorization="Bearer nope")
    auth = {"Authorization": f"Bearer {canary_service.admin_token}"}
    bad_share = canary_service.post("/admin/canary", {"share": 2}, **auth)
    text_share = canary_service.post("/admin/canary", {"share": "0.3"}, **auth)

    assert anonymous.status_code == wrong.status_code == 401
    assert bad_share.status_code == text_share.status_code == 400
    assert bad_share.json() == {"error": "share must be a number 0–1, got 2"}
    assert text_share.json() == {"error": "share must be a number 0–1, got '0.3' (str)"}


def variants_of(service, user_ids) -> dict[int, str]:
    return {u: service.get(f"/recommend/{u}").headers["X-Shrek-Variant"] for u in user_ids}


def test_canary_share_changes_at_run_time_and_users_stay_put(canary_service):
    users = range(1, 1001)
    measured = {}

    canary_service.set_share(0.0)  # through the protected admin call
    measured[0.0] = variants_of(canary_service, users)
    canary_service.set_share(1.0)
    measured[1.0] = variants_of(canary_service, users)
    write_canary_config(canary_service.canary_file, CanaryConfig(share=0.3))  # the watched file
    time.sleep(1.5)
    measured[0.3] = variants_of(canary_service, users)
    again = variants_of(canary_service, users)
    canary_service.set_share(0.0)

    for share, variants in measured.items():
        candidate = sum(v == "candidate" for v in variants.values()) / len(variants)
        assert abs(candidate - share) <= 0.05, (share, candidate)
    assert again == measured[0.3]
    expected = CanaryConfig(share=0.3)
    assert all(measured[0.3][u] == expected.variant(u) for u in users)


def test_service_keeps_serving_when_kafka_is_down(exported, serve):
    env = {
        "SHREK_STABLE_MODEL": exported["als"].tag,
        "SHREK_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",  # nothing listens
    }
    served = serve("bentos.als.service:ShrekALS", env)

    answers = [served.get(f"/recommend/{u}") for u in range(1, 31)]
    admin = served.post("/admin/canary", {"share": 0.5})

    assert all(a.status_code == 200 and len(a.text.split(",")) == 20 for a in answers)
    assert {a.headers["X-Shrek-Service"] for a in answers} == {"ShrekALS"}
    assert admin.status_code == 404


def variants_over_new_connections(service, user_ids) -> tuple[dict[int, str], set[str]]:
    """Each user's variant, one new connection per request so that every worker answers some;
    also the workers that answered (``X-Shrek-Worker``)."""

    def ask(user_id: int) -> tuple[int, str, str]:
        response = requests.get(
            f"{service.url}/recommend/{user_id}", headers={"Connection": "close"}, timeout=10
        )
        return user_id, response.headers["X-Shrek-Variant"], response.headers["X-Shrek-Worker"]

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(ask, user_ids))
    return {user: variant for user, variant, _ in answers}, {worker for *_, worker in answers}


def variants_once_every_worker_follows(service, user_ids, share: float) -> dict[int, str]:
    """Ask until every user gets the variant of ``share``: each worker polls the split file
    about once a second. Returns the last measurement (a wrong one after the timeout)."""
    expected = CanaryConfig(share=share)
    deadline = time.monotonic() + 30  # a timeout, not a measurement
    while True:
        variants, _ = variants_over_new_connections(service, user_ids)
        follows = all(variant == expected.variant(u) for u, variant in variants.items())
        if follows or time.monotonic() > deadline:
            return variants
        time.sleep(0.5)


def test_admin_change_reaches_every_worker_without_a_split_file(exported, serve):
    # Regression (issue 5): without SHREK_CANARY_CONFIG (as `make serve` runs) the admin call
    # changed the split of the one worker that answered it, and users flipped between variants.
    env = {
        "SHREK_STABLE_MODEL": exported["als"].tag,
        "SHREK_CANDIDATE_MODEL": exported["lightfm"].tag,
        "SHREK_ADMIN_TOKEN": ADMIN_TOKEN,
        "SHREK_SERVE_WORKERS": "2",
    }
    served = serve("bentos.canary.service:ShrekCanary", env)
    users = range(1, 1001)

    assert served.set_share(0.3).status_code == 200
    at_30 = variants_once_every_worker_follows(served, users, 0.3)
    again, workers = variants_over_new_connections(served, users)
    assert served.set_share(0.6).status_code == 200
    at_60 = variants_once_every_worker_follows(served, users, 0.6)

    assert workers == {"1", "2"}
    for share, variants in ((0.3, at_30), (0.6, at_60)):
        measured = sum(v == "candidate" for v in variants.values()) / len(variants)
        assert abs(measured - share) <= 0.05, (share, measured)
        expected = CanaryConfig(share=share)
        assert variants == {u: expected.variant(u) for u in users}
    assert again == at_30
    assert [u for u in users if at_30[u] == "candidate" != at_60[u]] == []


def test_admin_answers_409_when_the_split_file_cannot_be_written(exported, serve, tmp_path):
    # Regression (issue 5): on Kubernetes the split file is a read-only ConfigMap and the admin
    # call answered 500. Root may write anywhere, so a directory stands in for the file here.
    unwritable = tmp_path / "canary.yaml"
    unwritable.mkdir()
    env = {
        "SHREK_STABLE_MODEL": exported["als"].tag,
        "SHREK_CANDIDATE_MODEL": exported["lightfm"].tag,
        "SHREK_CANARY_CONFIG": str(unwritable),
        "SHREK_CANARY_SHARE": "0.2",
        "SHREK_ADMIN_TOKEN": ADMIN_TOKEN,
        "SHREK_SERVE_WORKERS": "1",
    }
    served = serve("bentos.canary.service:ShrekCanary", env)

    refused = served.set_share(0.5)
    shown = served.http.get(
        served.url + "/admin/canary", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )

    assert refused.status_code == 409
    message = refused.json()["error"]
    assert message.startswith(f"cannot write the canary split file {unwritable}: ")
    assert "the split stays {'share': 0.2, 'salt': 'shrek'}" in message
    assert shown.json() == {"share": 0.2, "salt": "shrek"}
    assert served.get("/recommend/3").status_code == 200
