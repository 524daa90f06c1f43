"""Quotas through the REST API, with the real worker handlers answering behind a fake
producer: 429 with the quota's numbers, Retry-After for daily quotas, Admin-only changes,
bad limits refused, and a 202 when no worker answers in time."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.auth import Role
from core.topics import DEFAULTS_KEY, Topics
from schemas.quotas import QuotaUpdate
from schemas.requests import SEED_CODE_GENERATION_EXAMPLE
from streams.testing import fake_worker
from tests.unit.conftest import FakeMessageSink, WorkerBehind, api_client, auth

TOPICS = Topics("unit")
QUOTAS = "/api/v1/bulk-operations/quotas"
LIMITS = {
    "quota_max_concurrent_operations": 3,
    "quota_max_operations_per_day": 10,
    "quota_max_items_per_day": 50_000,
    "max_items_per_operation": 5000,
}


@pytest.fixture
def limited(sink: FakeMessageSink) -> Iterator[TestClient]:
    """The API and a worker behind it, both with the seed's quotas."""
    with api_client(sink, **LIMITS) as client:
        sink.on_written = WorkerBehind(client, fake_worker(**LIMITS))
        yield client


def codes(quantity: int = 100, **fields: Any) -> dict[str, Any]:
    body = copy.deepcopy(SEED_CODE_GENERATION_EXAMPLE)
    body.update(quantity=quantity, **fields)
    body["processing"]["batchSize"] = 50
    body.pop("batches", None)
    return body


def submit(client: TestClient, body: dict[str, Any], **headers: str) -> Any:
    return client.post(
        "/api/v1/bulk-operations/generate-codes", json=body, headers={**auth(), **headers}
    )


def admin() -> dict[str, str]:
    return auth(None, Role.ADMIN)


def test_the_fourth_concurrent_operation_is_refused_with_the_numbers(limited: TestClient) -> None:
    answers = [submit(limited, codes()) for _ in range(4)]
    assert [a.status_code for a in answers] == [202, 202, 202, 429]
    assert answers[0].json()["data"]["status"] == "Processing"  # the worker's verdict
    refused = answers[3].json()
    assert refused["success"] is False and refused["error"] == "QUOTA_EXCEEDED"
    details = refused["details"]
    assert details["quota"] == "maxConcurrentOperations"
    assert (details["current"], details["limit"], details["requested"]) == (3, 3, 1)
    assert details["operationId"].startswith("codegen_")
    assert "retry-after" not in answers[3].headers  # frees up when an operation ends
    status = limited.get(f"/api/v1/bulk-operations/status/{details['operationId']}", headers=auth())
    assert status.json()["data"]["status"] == "Failed"
    use = limited.get(QUOTAS, headers=auth()).json()["data"]["use"]
    assert (use["concurrentOperations"], use["operationsToday"], use["itemsToday"]) == (3, 3, 300)


def test_a_daily_quota_says_when_it_resets(limited: TestClient) -> None:
    assert submit(limited, codes(5000)).status_code == 202
    change = {"bulkOperationLimits": {"maxItemsPerDay": 6000}}
    assert limited.put(f"{QUOTAS}/7", json=change, headers=admin()).status_code == 200
    answer = submit(limited, codes(1001))
    assert answer.status_code == 429
    assert answer.json()["details"]["quota"] == "maxItemsPerDay"
    assert 1 <= int(answer.headers["retry-after"]) <= 86_400


def test_too_many_items_for_one_operation_is_refused_before_queueing(
    limited: TestClient, sink: FakeMessageSink
) -> None:
    change = {"bulkOperationLimits": {"maxItemsPerOperation": 100}}
    assert limited.put(f"{QUOTAS}/7", json=change, headers=admin()).status_code == 200
    sent = len(sink.sent)
    answer = submit(limited, codes(101))
    assert answer.status_code == 429
    assert answer.json()["details"]["quota"] == "maxItemsPerOperation"
    assert len(sink.sent) == sent  # nothing went to Kafka
    assert submit(limited, codes(100)).status_code == 202


def test_an_admin_submitting_for_a_sponsor_is_counted_not_refused(limited: TestClient) -> None:
    for _ in range(4):
        answer = limited.post(
            "/api/v1/bulk-operations/generate-codes",
            json=codes(sponsorId=7),
            headers=admin(),
        )
        assert answer.status_code == 202
    assert submit(limited, codes()).status_code == 429
    assert limited.get(QUOTAS, headers=auth()).json()["data"]["use"]["concurrentOperations"] == 4


def test_quotas_are_read_by_their_sponsor_and_by_admins(limited: TestClient) -> None:
    own = limited.get(QUOTAS, headers=auth()).json()["data"]
    assert own["sponsorId"] == 7
    assert own["bulkOperationLimits"] == {
        "maxConcurrentOperations": 3,
        "maxItemsPerOperation": 5000,
        "maxOperationsPerDay": 10,
        "maxItemsPerDay": 50000,
    }
    assert limited.get(QUOTAS, params={"sponsorId": 8}, headers=auth()).status_code == 403
    assert limited.get(QUOTAS).status_code == 401
    defaults = limited.get(QUOTAS, headers=admin()).json()["data"]
    assert defaults["sponsorId"] is None and defaults["use"] is None
    other = limited.get(QUOTAS, params={"sponsorId": 8}, headers=admin()).json()["data"]
    assert other["sponsorId"] == 8 and other["use"]["concurrentOperations"] == 0


def test_default_changes_go_to_every_partition_and_apply_to_every_sponsor(
    limited: TestClient, sink: FakeMessageSink
) -> None:
    change = {"bulkOperationLimits": {"maxConcurrentOperations": 1, "maxItemsPerDay": None}}
    answer = limited.put(f"{QUOTAS}/defaults", json=change, headers=admin())
    assert answer.status_code == 200
    data = answer.json()["data"]
    assert data["bulkOperationLimits"]["maxConcurrentOperations"] == 1
    assert data["bulkOperationLimits"]["maxItemsPerDay"] is None
    assert data["overrides"] == {"maxConcurrentOperations": 1, "maxItemsPerDay": None}
    updates = [(key, p) for (topic, key, _), p in zip(sink.sent, sink.partitions, strict=True)]
    assert updates == [(DEFAULTS_KEY, p) for p in range(8)]
    assert [submit(limited, codes()).status_code for _ in range(2)] == [202, 429]


@pytest.mark.parametrize(
    ("limits", "field"),
    [
        ({"maxConcurrentOperations": -1}, "maxConcurrentOperations"),
        ({"maxConcurrentOperations": 10_001}, "maxConcurrentOperations"),
        ({"maxItemsPerDay": 10**13}, "maxItemsPerDay"),
        ({"maxOperationsPerDay": "3"}, "maxOperationsPerDay"),
        ({"maxOperationsPerDay": 2.0}, "maxOperationsPerDay"),
        ({"maxItemsPerOperation": 5001}, "maxItemsPerOperation"),
        ({"maxConcurentOperations": 3}, "maxConcurentOperations"),
    ],
)
def test_bad_limits_are_refused_with_the_field(
    limited: TestClient, limits: dict[str, Any], field: str
) -> None:
    answer = limited.put(f"{QUOTAS}/7", json={"bulkOperationLimits": limits}, headers=admin())
    assert answer.status_code == 422
    assert answer.json()["details"]["errors"][0]["field"].endswith(field)


def test_only_an_admin_changes_quotas(limited: TestClient, sink: FakeMessageSink) -> None:
    change = {"bulkOperationLimits": {"maxConcurrentOperations": 100}}
    for path in (f"{QUOTAS}/7", f"{QUOTAS}/defaults"):
        assert limited.put(path, json=change, headers=auth()).status_code == 403
        assert limited.put(path, json=change).status_code == 401
    assert limited.put(f"{QUOTAS}/0", json=change, headers=admin()).status_code == 422
    assert sink.sent == []


def test_without_a_worker_the_submit_is_accepted_after_the_verdict_timeout(
    sink: FakeMessageSink,
) -> None:
    with api_client(sink, quota_verdict_timeout_seconds=0.2, **LIMITS) as client:
        answer = submit(client, codes())
        assert answer.status_code == 202
        assert answer.json()["data"]["status"] == "Queued"
        change = {"bulkOperationLimits": {"maxConcurrentOperations": 5}}
        assert client.put(f"{QUOTAS}/7", json=change, headers=admin()).status_code == 202
    update = QuotaUpdate.model_validate_json(sink.sent[-1][2])
    assert update.sponsor_id == 7 and update.overrides == {"max_concurrent_operations": 5}
