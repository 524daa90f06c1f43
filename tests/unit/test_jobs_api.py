"""Submitting job operations through the REST API on the fake producer: what is queued (the
type copied into the header, items in whole-batch chunks), who may run which type, and bad
input refused with every bad item named."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.auth import Role
from schemas.common import OperationType
from schemas.jobs import SEED_JOB_EXAMPLE, SEED_JOB_TYPE_EXAMPLE
from schemas.messages import JobItemsChunk, OperationRequested
from schemas.requests import SEED_CODE_GENERATION_EXAMPLE
from tests.unit.conftest import (
    FakeMessageSink,
    api_client,
    auth,
    job_types_client,
    operations_sent,
)

TYPES = "/api/v1/bulk-operations/job-types"
JOBS = "/api/v1/bulk-operations/jobs"


@pytest.fixture
def client(sink: FakeMessageSink) -> Iterator[TestClient]:
    with job_types_client(sink) as client:
        yield client


def admin() -> dict[str, str]:
    return auth(None, Role.ADMIN)


def register(client: TestClient, **changes: Any) -> None:
    spec = copy.deepcopy(SEED_JOB_TYPE_EXAMPLE) | {"batchSize": 2} | changes
    answer = client.post(TYPES, json=spec, headers=admin())
    assert answer.status_code in (200, 201), answer.text


def job(**changes: Any) -> dict[str, Any]:
    return copy.deepcopy(SEED_JOB_EXAMPLE) | changes


def test_the_seed_job_is_queued_with_its_type_and_items_in_chunks(
    client: TestClient, sink: FakeMessageSink
) -> None:
    register(client, maxConcurrency=4, rateLimitPerSecond=50)
    answer = client.post(JOBS, json=job(), headers=auth(7))
    assert answer.status_code == 202, answer.text
    data = answer.json()["data"]
    assert (data["operationType"], data["jobType"], data["totalItems"]) == (
        "BulkJob",
        "ticket:update_status",
        3,
    )
    assert data["operationId"].startswith("job_") and data["status"] == "Queued"
    header, *chunks = operations_sent(sink)
    assert isinstance(header, OperationRequested)
    assert header.operation_type is OperationType.JOB and header.sponsor_id == 7
    assert header.job is not None
    assert (header.job.job_type, header.job.type_version, header.job.batch_size) == (
        "ticket:update_status",
        1,
        2,
    )
    assert (header.job.max_concurrency, header.job.rate_limit_per_second) == (4, 50)
    assert header.job.data == {"status": "closed"}
    assert header.metadata == {"requestedFrom": "support-console"} and header.priority == 5
    assert all(isinstance(c, JobItemsChunk) for c in chunks)
    items = [item for c in chunks for item in c.items]
    assert [(i.index, i.payload) for i in items] == [
        (0, {"ticketId": 1}),
        (1, {"ticketId": 2}),
        (2, {"ticketId": 3}),
    ]
    assert items[1].item_id == f"{data['operationId']}:1"
    status = client.get(data["statusUrl"], headers=auth(7)).json()["data"]
    assert (status["operationType"], status["jobType"]) == ("BulkJob", "ticket:update_status")


def test_a_caller_narrows_batch_size_and_concurrency_but_never_widens(
    client: TestClient, sink: FakeMessageSink
) -> None:
    register(client, maxConcurrency=4)
    answer = client.post(
        JOBS, json=job(processing={"batchSize": 1, "maxConcurrency": 99}), headers=auth(7)
    )
    assert answer.status_code == 202, answer.text
    header = operations_sent(sink)[0]
    assert header.job.batch_size == 1 and header.job.max_concurrency == 4


def test_every_bad_item_is_named_at_once_and_nothing_is_queued(
    client: TestClient, sink: FakeMessageSink
) -> None:
    register(client)
    items = [{"ticketId": 1}, {"ticketId": 0}, {"ticket": 3}, {"ticketId": "4"}]
    answer = client.post(JOBS, json=job(items=items, data={"status": "gone"}), headers=auth(7))
    assert answer.status_code == 422
    body = answer.json()
    assert body["error"] == "VALIDATION_FAILED" and body["details"]["errorCount"] == 5
    fields = [(e["field"], e.get("index")) for e in body["details"]["errors"]]
    assert ("data.status", None) in fields
    assert ("items.1.ticketId", 1) in fields
    assert ("items.2", 2) in fields  # missing ticketId, and an unknown property
    assert ("items.3.ticketId", 3) in fields
    assert operations_sent(sink) == []


def test_only_the_first_hundred_errors_are_listed_all_are_counted(client: TestClient) -> None:
    register(client)
    answer = client.post(JOBS, json=job(items=[{"ticketId": 0}] * 150), headers=auth(7))
    assert answer.status_code == 422
    details = answer.json()["details"]
    assert (details["errorCount"], len(details["errors"])) == (150, 100)


@pytest.mark.parametrize(
    ("items", "field"),
    [([], "items"), ([1, 2], "items.0"), ([{"ticketId": 1}] * 5001, "items")],
)
def test_empty_non_object_or_too_many_items_are_refused(
    client: TestClient, items: list[Any], field: str
) -> None:
    register(client)
    answer = client.post(JOBS, json=job(items=items), headers=auth(7))
    assert answer.status_code == 422, answer.text
    assert answer.json()["details"]["errors"][0]["field"] == field


def test_a_batch_that_cannot_fit_a_kafka_message_is_refused(client: TestClient) -> None:
    register(client, batchSize=100, itemSchema={"type": "object"})
    items = [{"blob": "x" * 10_000} for _ in range(100)]  # 1 MB in one batch
    answer = client.post(JOBS, json=job(items=items), headers=auth(7))
    assert answer.status_code == 422, answer.text
    assert answer.json()["details"]["errors"][0]["field"] == "processing.batchSize"
    smaller = client.post(
        JOBS, json=job(items=items, processing={"batchSize": 50}), headers=auth(7)
    )
    assert smaller.status_code == 202, smaller.text


def test_a_body_over_the_jobs_limit_is_refused_before_it_is_read(sink: FakeMessageSink) -> None:
    with api_client(sink, max_job_body_bytes=100_000) as client:
        items = [{"ticketId": i} for i in range(20_000)]
        answer = client.post(JOBS, json=job(items=items), headers=auth(7))
        assert (answer.status_code, answer.json()["error"]) == (413, "PAYLOAD_TOO_LARGE")
    assert sink.sent == []


def test_unknown_disabled_and_closed_types(client: TestClient) -> None:
    answer = client.post(JOBS, json=job(operationType="ticket:nothing"), headers=auth(7))
    assert (answer.status_code, answer.json()["error"]) == (404, "JOB_TYPE_NOT_FOUND")

    register(client, allowedSponsors=[8])
    answer = client.post(JOBS, json=job(), headers=auth(7))
    assert (answer.status_code, answer.json()["error"]) == (404, "JOB_TYPE_NOT_FOUND")
    for_seven = job(sponsorId=7)
    answer = client.post(JOBS, json=for_seven, headers=admin())
    assert (answer.status_code, answer.json()["error"]) == (403, "JOB_TYPE_FORBIDDEN")
    assert client.post(JOBS, json=job(), headers=auth(8)).status_code == 202

    assert client.post(f"{TYPES}/ticket:update_status/disable", headers=admin()).status_code == 200
    answer = client.post(JOBS, json=job(), headers=auth(8))
    assert (answer.status_code, answer.json()["error"]) == (404, "JOB_TYPE_NOT_FOUND")
    answer = client.post(JOBS, json=job(sponsorId=8), headers=admin())
    assert (answer.status_code, answer.json()["error"]) == (409, "JOB_TYPE_DISABLED")


def test_unauthenticated_or_another_sponsors_submit_is_refused(client: TestClient) -> None:
    register(client)
    assert client.post(JOBS, json=job()).status_code == 401
    answer = client.post(JOBS, json=job(sponsorId=8), headers=auth(7))
    assert answer.status_code == 403
    assert client.post(JOBS, json=job(), headers=admin()).status_code == 422  # which sponsor?


def test_a_repeated_submit_with_its_idempotency_key_runs_once(
    client: TestClient, sink: FakeMessageSink
) -> None:
    register(client)
    headers = auth(7) | {"Idempotency-Key": "close-batch-1"}
    first = client.post(JOBS, json=job(), headers=headers)
    again = client.post(JOBS, json=job(), headers=headers)
    assert first.status_code == 202 and again.status_code == 202
    assert first.json()["data"]["operationId"] == again.json()["data"]["operationId"]
    assert len([m for m in operations_sent(sink) if isinstance(m, OperationRequested)]) == 1
    other = client.post(JOBS, json=job(data={"status": "open"}), headers=headers)
    assert (other.status_code, other.json()["error"]) == (422, "IDEMPOTENCY_KEY_REUSED")


def test_malformed_bodies_are_refused_with_the_field(client: TestClient) -> None:
    register(client)
    for body, field in [
        (job(operationType="Ticket Update"), "operationType"),
        (job(priority=11), "priority"),
        (job(data={"k": "v" * 9000}), "data"),
        (job(unknown=1), "unknown"),
    ]:
        answer = client.post(JOBS, json=body, headers=auth(7))
        assert answer.status_code == 422, body
        assert answer.json()["details"]["errors"][0]["field"] == field
    answer = client.post(
        JOBS, content=b"{not json", headers=auth(7) | {"Content-Type": "application/json"}
    )
    assert answer.status_code == 422


def test_a_dry_run_checks_and_plans_without_queueing(
    client: TestClient, sink: FakeMessageSink
) -> None:
    register(client)
    answer = client.post(JOBS, params={"dryRun": "true"}, json=job(), headers=auth(7))
    assert answer.status_code == 200, answer.text
    data = answer.json()["data"]
    assert (data["dryRun"], data["operationType"], data["totalItems"], data["batches"]) == (
        True,
        "BulkJob",
        3,
        2,
    )
    bad = client.post(
        JOBS, params={"dryRun": "true"}, json=job(items=[{"ticketId": 0}]), headers=auth(7)
    )
    assert bad.status_code == 422
    assert operations_sent(sink) == []


def test_the_jobs_view_is_only_for_job_operations_the_caller_may_see(client: TestClient) -> None:
    codes = client.post(
        "/api/v1/bulk-operations/generate-codes", json=SEED_CODE_GENERATION_EXAMPLE, headers=auth(7)
    )
    operation_id = codes.json()["data"]["operationId"]
    answer = client.get(f"{JOBS}/{operation_id}", headers=auth(7))
    assert (answer.status_code, answer.json()["error"]) == (409, "NOT_A_JOB_OPERATION")
    assert client.get(f"{JOBS}/{operation_id}", headers=auth(8)).status_code == 404
    assert client.get(f"{JOBS}/{operation_id}").status_code == 401
    malformed = client.get(f"{JOBS}/{operation_id}", params={"status": "done"}, headers=auth(7))
    assert malformed.status_code == 422 and malformed.json()["details"]["errors"][0]["field"] == (
        "status"
    )
    assert client.get(f"{JOBS}/job_{'0' * 32}", headers=auth(7)).status_code == 404
