"""Bad input at the REST edge, with a fake producer that implements the real interface."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.auth import Role
from api.status_view import StatusView
from core.topics import Topics
from schemas.messages import OperationRequested
from schemas.requests import SEED_CODE_GENERATION_EXAMPLE
from schemas.status import OperationSnapshot
from tests.unit.conftest import FakeMessageSink, auth


def post(client: TestClient, body: Any, headers: dict[str, str] | None = None) -> Any:
    return client.post(
        "/api/v1/bulk-operations/generate-codes",
        json=body,
        headers=auth() if headers is None else headers,
    )


def seed() -> dict[str, Any]:
    return copy.deepcopy(SEED_CODE_GENERATION_EXAMPLE)


def test_accepted_request_is_produced_keyed_by_sponsor(
    client: TestClient, sink: FakeMessageSink
) -> None:
    response = post(client, seed())
    assert response.status_code == 202
    data = response.json()["data"]
    topics = Topics("unit")
    operations = [m for m in sink.sent if m[0] == topics.operations.name]
    assert len(operations) == 1
    _, key, value = operations[0]
    assert key == b"7"
    message = OperationRequested.model_validate_json(value)
    assert message.operation_id == data["operationId"]
    assert message.code_generation is not None and message.code_generation.sponsor_id == 7
    assert message.priority == 5
    assert post(client, {**seed(), "priority": 2}).status_code == 202
    operations = [m for m in sink.sent if m[0] == topics.operations.name]
    assert OperationRequested.model_validate_json(operations[-1][2]).priority == 2
    status = client.get(f"/api/v1/bulk-operations/status/{data['operationId']}", headers=auth())
    assert status.json()["data"]["status"] == "Queued"


def assert_invalid(response: Any, field: str, status: int = 422) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False
    assert body["error"] == "VALIDATION_FAILED"
    assert field in [e["field"] for e in body["details"]["errors"]], body


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"unknownField": 1}, "unknownField"),
        ({"quantity": 0, "batches": []}, "quantity"),
        ({"quantity": -3, "batches": []}, "quantity"),
        ({"quantity": 5001, "batches": []}, "quantity"),
        ({"quantity": 600}, "batches"),
        ({"codePrefix": "bad prefix"}, "codePrefix"),
        ({"codePrefix": "X" * 21}, "codePrefix"),
        ({"subscriptionTierId": "three"}, "subscriptionTierId"),
        ({"processing": {"batchSize": 0}}, "processing.batchSize"),
        ({"processing": {"batchSize": 6000}}, "processing.batchSize"),
        ({"quantity": 5000, "batches": [], "processing": {"batchSize": 4}}, "processing.batchSize"),
        ({"priority": 0}, "priority"),
        ({"priority": 5.5}, "priority"),
    ],
)
def test_bad_bodies_name_the_field_and_create_nothing(
    client: TestClient, sink: FakeMessageSink, change: dict[str, Any], field: str
) -> None:
    assert_invalid(post(client, {**seed(), **change}), field)
    assert sink.sent == []


def test_malformed_json(client: TestClient, sink: FakeMessageSink) -> None:
    response = client.post(
        "/api/v1/bulk-operations/generate-codes",
        content=b'{"quantity": ',
        headers={**auth(), "Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["error"] == "VALIDATION_FAILED"
    assert sink.sent == []


def test_oversized_body_is_413(client: TestClient, sink: FakeMessageSink) -> None:
    body = {**seed(), "operationName": "x" * 100_000}
    response = post(client, body)
    assert response.status_code == 413
    assert response.json()["error"] == "PAYLOAD_TOO_LARGE"
    assert sink.sent == []


def test_oversized_chunked_body_is_413(client: TestClient, sink: FakeMessageSink) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"operationName": "'
        for _ in range(100):
            yield b"x" * 1024
        yield b'"}'

    response = client.post(
        "/api/v1/bulk-operations/generate-codes",
        content=chunks(),
        headers={**auth(), "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert sink.sent == []


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer nonsense"}, {"Authorization": "Basic dTpw"}]
)
def test_missing_or_bad_tokens_are_401(
    client: TestClient, sink: FakeMessageSink, headers: dict[str, str]
) -> None:
    response = post(client, seed(), headers=headers)
    assert response.status_code == 401
    assert response.json()["error"] == "UNAUTHORIZED"
    assert response.headers["www-authenticate"] == "Bearer"
    assert sink.sent == []


def test_sponsor_cannot_submit_for_another_sponsor(
    client: TestClient, sink: FakeMessageSink
) -> None:
    response = post(client, {**seed(), "sponsorId": 8})
    assert response.status_code == 403
    assert sink.sent == []


def test_admin_must_name_the_sponsor(client: TestClient, sink: FakeMessageSink) -> None:
    assert_invalid(post(client, seed(), headers=auth(None, Role.ADMIN)), "sponsorId")
    assert (
        post(client, {**seed(), "sponsorId": 9}, headers=auth(None, Role.ADMIN)).status_code == 202
    )
    assert sink.sent[0][1] == b"9"


def test_broker_down_is_503_not_queued_and_nothing_is_visible(
    client: TestClient, sink: FakeMessageSink
) -> None:
    sink.stall = True  # messages wait in the local queue, as with the broker down
    response = post(client, seed())
    assert response.status_code == 503
    body = response.json()
    assert body["error"] == "SYSTEM_ERROR"
    assert body["details"]["outcome"] == "not_queued"
    assert body["details"]["operationId"].startswith("codegen_")
    assert "will not run" in body["message"]
    assert sink.purges == 1, "what was still queued is purged, so it can never be sent later"
    assert client.app.state.status_view._snapshots == {}  # type: ignore[attr-defined]


def test_an_unconfirmed_message_is_503_unknown(client: TestClient, sink: FakeMessageSink) -> None:
    sink.fail = True  # timed out in flight: it may have been written
    response = post(client, seed())
    assert response.status_code == 503
    details = response.json()["details"]
    assert details["outcome"] == "unknown"
    assert "Idempotency-Key" in response.json()["message"]
    assert "_MSG_TIMED_OUT" in details["reason"]


def test_a_retry_after_an_unknown_outcome_keeps_the_operation_id(
    client: TestClient, sink: FakeMessageSink
) -> None:
    key = {"Idempotency-Key": "retry-me"}
    sink.fail = True
    lost = post(client, seed(), headers={**auth(), **key})
    assert lost.status_code == 503
    sink.fail = False
    retried = post(client, seed(), headers={**auth(), **key})
    assert retried.status_code == 202
    operation_id = retried.json()["data"]["operationId"]
    assert operation_id == lost.json()["details"]["operationId"]
    request = OperationRequested.model_validate_json(sink.sent[0][2])
    assert request.operation_id == operation_id
    assert request.submission_id, "each attempt is stamped, so the worker runs only one"


@pytest.mark.parametrize("key", [b"", b"x" * 256, "café".encode(), b"two words"])
def test_malformed_idempotency_keys_are_422(
    client: TestClient, sink: FakeMessageSink, key: bytes
) -> None:
    response = client.post(
        "/api/v1/bulk-operations/generate-codes",
        json=seed(),
        headers={**auth(), "Idempotency-Key": key},  # type: ignore[dict-item]
    )
    assert response.status_code == 422
    assert response.json()["details"]["errors"][0]["field"] == "Idempotency-Key"
    assert sink.sent == []


def test_duplicate_submissions_are_distinct_operations(
    client: TestClient, sink: FakeMessageSink
) -> None:
    first = post(client, seed()).json()["data"]["operationId"]
    second = post(client, seed()).json()["data"]["operationId"]
    assert first != second


def test_status_of_foreign_unknown_or_malformed_ids(client: TestClient) -> None:
    operation_id = post(client, seed()).json()["data"]["operationId"]
    url = "/api/v1/bulk-operations/status/"
    assert client.get(url + operation_id, headers=auth(8)).status_code == 404
    assert client.get(url + "codegen_" + "f" * 32, headers=auth()).status_code == 404
    assert client.get(url + "../../etc", headers=auth()).status_code in (404, 422)
    assert client.get(url + "x" * 300, headers=auth()).status_code == 422
    assert client.get(url + operation_id, headers=auth(None, Role.ADMIN)).status_code == 200


def test_status_view_keeps_the_newest_snapshot() -> None:
    view = StatusView()
    base: dict[str, Any] = {
        "operationId": "codegen_" + "b" * 32,
        "sponsorId": 1,
        "operationType": "BulkCodeGeneration",
        "operationName": "n",
        "requestedBy": "u",
        "totalItems": 10,
        "createdAt": "2026-01-01T00:00:00Z",
        "currentPhase": "p",
        "statusMessage": "m",
    }
    newer = OperationSnapshot.model_validate(
        {**base, "status": "Completed", "version": 5, "lastUpdated": "2026-01-01T00:00:05Z"}
    )
    older = OperationSnapshot.model_validate(
        {**base, "status": "Queued", "version": 0, "lastUpdated": "2026-01-01T00:00:09Z"}
    )
    view.apply(newer)
    view.apply(older)
    snapshot = view.get(newer.operation_id)
    assert snapshot is not None and snapshot.status == "Completed"


def test_openapi_documents_the_seed_example(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    operation = spec["paths"]["/api/v1/bulk-operations/generate-codes"]["post"]
    examples = operation["requestBody"]["content"]["application/json"]["examples"]
    assert examples["seed"]["value"]["quantity"] == 1000
    assert "202" in operation["responses"] and "422" in operation["responses"]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://10.1.2.3/hook",
        "http://[::1]/hook",
        "http://169.254.169.254/",
    ],
)
def test_callback_urls_into_private_networks_are_refused(
    client: TestClient, sink: FakeMessageSink, url: str
) -> None:
    body = {**seed(), "processing": {"callbackUrl": url}}
    assert_invalid(post(client, body), "processing.callbackUrl")
    assert sink.sent == []


def test_webhook_secret_is_per_sponsor_and_the_operators_have_their_own(
    client: TestClient,
) -> None:
    url = "/api/v1/bulk-operations/webhook-secret"
    seven = client.get(url, headers=auth(7)).json()["data"]
    eight = client.get(url, headers=auth(8)).json()["data"]
    assert len(seven["secret"]) == 64 and seven["secret"] != eight["secret"]
    assert seven["usedFor"] == "operation webhooks"
    operators = client.get(url, headers=auth(None, Role.ADMIN)).json()["data"]
    assert operators["usedFor"] == "operation_alert webhooks"
    assert operators["secret"] not in (seven["secret"], eight["secret"])
    assert client.get(url).status_code == 401


@pytest.mark.parametrize(
    ("change", "field"),
    [
        # numbers beyond 64 bits used to reach orjson and answer 500 (found by fuzzing)
        ({"processing": {"processingSettings": {"n": [2**70]}}}, "processing.processingSettings"),
        ({"batches": [{"batchName": "a", "quantity": 2**70}]}, "batches.0.quantity"),
        ({"quantity": 370097661029.0, "batches": []}, "quantity"),
        # booleans are not numbers, and numbers not booleans
        ({"processing": {"retryAttempts": False}}, "processing.retryAttempts"),
        ({"validityDays": True}, "validityDays"),
        ({"processing": {"stopOnFirstError": 1}}, "processing.stopOnFirstError"),
        ({"subscriptionTierId": "3"}, "subscriptionTierId"),
    ],
)
def test_numbers_are_strict_and_bounded(
    client: TestClient, sink: FakeMessageSink, change: dict[str, Any], field: str
) -> None:
    assert_invalid(post(client, {**seed(), **change}), field)
    assert sink.sent == []


def test_template_retry_attempts_must_be_a_number(client: TestClient) -> None:
    body = {"name": "x", "message": "Merhaba {link}", "processingOptions": {"retryAttempts": False}}
    response = client.post("/api/v1/bulk-operations/templates", json=body, headers=auth())
    assert_invalid(response, "processingOptions.retryAttempts")


@pytest.mark.parametrize(
    "query",
    [
        "pagesize=500",
        "=",
        "page=1&pageSize=5&extra=1",
        "status=Failed&status=Paused",  # found by fuzzing: the last one used to win
        "search=a&search=b",
    ],
)
def test_unknown_or_repeated_query_parameters_are_refused(client: TestClient, query: str) -> None:
    response = client.get(f"/api/v1/bulk-operations/history?{query}", headers=auth())
    assert response.status_code == 422, response.text
    assert response.json()["details"]["errors"][0]["field"].startswith("query.")


def test_websocket_routes_pass_the_query_guard(client: TestClient) -> None:
    """The unknown-query guard runs on every route; on a WebSocket it must let it through."""
    url = "/ws/bulk-operations/codegen_" + "a" * 32
    with client.websocket_connect(url, headers=auth()) as websocket:
        message = websocket.receive_json()
    assert message["type"] == "error" and message["error"] == "OPERATION_NOT_FOUND"
