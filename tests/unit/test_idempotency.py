"""Idempotency-Key on every creating POST: the first answer replayed (marked), a reused key
with another request refused, keys per sponsor, and an answer lost before it was stored
rebuilt from the operation's status."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient

from api.auth import Role
from core.topics import Topics
from schemas.common import OperationStatus, OperationType
from schemas.messages import OperationRequested
from schemas.requests import SEED_CODE_GENERATION_EXAMPLE, SEED_LINK_SEND_EXAMPLE
from schemas.status import OperationSnapshot
from tests.unit.conftest import FakeMessageSink, auth
from tests.unit.test_dealer_api import rows, upload
from tests.unit.test_workbook import xlsx

OPERATIONS = Topics("unit").operations.name


def requests_sent(sink: FakeMessageSink) -> list[OperationRequested]:
    return [
        OperationRequested.model_validate_json(value)
        for topic, _, value in sink.sent
        if topic == OPERATIONS and b'"recipients"' not in value[:40]
    ]


def codes(**fields: Any) -> dict[str, Any]:
    return {**copy.deepcopy(SEED_CODE_GENERATION_EXAMPLE), **fields}


def post(client: TestClient, path: str, body: Any, key: str | None, sponsor: int | None = 7) -> Any:
    headers = auth(sponsor) if sponsor else auth(None, Role.ADMIN)
    if key is not None:
        headers["Idempotency-Key"] = key
    return client.post(f"/api/v1/bulk-operations/{path}", json=body, headers=headers)


def test_the_same_request_again_gets_the_first_answer(
    client: TestClient, sink: FakeMessageSink
) -> None:
    first = post(client, "generate-codes", codes(), "campaign-2025-11/attempt")
    again = post(client, "generate-codes", codes(), "campaign-2025-11/attempt")
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert len(requests_sent(sink)) == 1
    assert requests_sent(sink)[0].request_hash


def test_the_same_key_with_another_request_is_refused(
    client: TestClient, sink: FakeMessageSink
) -> None:
    assert post(client, "generate-codes", codes(), "k1").status_code == 202
    other = post(client, "generate-codes", codes(operationName="another campaign"), "k1")
    assert other.status_code == 422
    assert other.json()["error"] == "IDEMPOTENCY_KEY_REUSED"
    assert other.json()["details"]["idempotencyKey"] == "k1"
    assert len(requests_sent(sink)) == 1


def test_keys_belong_to_a_sponsor(client: TestClient) -> None:
    mine = post(client, "generate-codes", codes(), "shared-key").json()["data"]
    theirs = post(client, "generate-codes", codes(), "shared-key", sponsor=8)
    assert theirs.status_code == 202
    assert "idempotent-replayed" not in theirs.headers
    assert theirs.json()["data"]["operationId"] != mine["operationId"]


def test_keys_belong_to_a_route(client: TestClient) -> None:
    codes_answer = post(client, "generate-codes", codes(), "one-key")
    links_answer = post(client, "send-links", copy.deepcopy(SEED_LINK_SEND_EXAMPLE), "one-key")
    assert codes_answer.status_code == links_answer.status_code == 202
    assert "idempotent-replayed" not in links_answer.headers


def test_an_answer_not_stored_is_rebuilt_from_the_operation(
    client: TestClient, sink: FakeMessageSink
) -> None:
    first = post(client, "generate-codes", codes(), "lost-answer").json()["data"]
    client.app.state.store.idempotency.answers.clear()  # type: ignore[attr-defined]
    again = post(client, "generate-codes", codes(), "lost-answer")
    assert again.status_code == 202
    assert again.json()["data"]["operationId"] == first["operationId"]
    assert again.headers["idempotent-replayed"] == "true"
    assert len(requests_sent(sink)) == 1
    client.app.state.store.idempotency.answers.clear()  # type: ignore[attr-defined]
    changed = post(client, "generate-codes", codes(operationName="changed"), "lost-answer")
    assert changed.status_code == 422
    assert changed.json()["details"]["operationId"] == first["operationId"]


def test_a_refused_request_is_not_remembered(client: TestClient, sink: FakeMessageSink) -> None:
    sink.fail = True
    assert post(client, "generate-codes", codes(), "after-503").status_code == 503
    sink.fail = False
    retried = post(client, "generate-codes", codes(), "after-503")
    assert retried.status_code == 202
    assert "idempotent-replayed" not in retried.headers


def test_a_quota_refused_operation_is_judged_afresh(client: TestClient) -> None:
    first = post(client, "generate-codes", codes(), "over-quota").json()["data"]
    view = client.app.state.status_view  # type: ignore[attr-defined]
    now = datetime.now(UTC)
    view.apply(
        OperationSnapshot(
            operation_id=first["operationId"],
            sponsor_id=7,
            operation_type=OperationType.CODE_GENERATION,
            operation_name="x",
            requested_by="u",
            status=OperationStatus.FAILED,
            total_items=1,
            created_at=now,
            last_updated=now,
            current_phase="Refused",
            status_message="quota",
            stop_reason="QUOTA_EXCEEDED",
            version=5,
        )
    )
    client.app.state.store.idempotency.answers.clear()  # type: ignore[attr-defined]
    again = post(client, "generate-codes", codes(), "over-quota")
    assert again.status_code == 202
    assert "idempotent-replayed" not in again.headers


def test_dry_runs_are_not_remembered(client: TestClient, sink: FakeMessageSink) -> None:
    path = "generate-codes?dryRun=true"
    dry = post(client, path, codes(), "dry-then-real")
    assert dry.status_code == 200 and dry.json()["data"]["dryRun"] is True
    real = post(client, "generate-codes", codes(), "dry-then-real")
    assert real.status_code == 202
    assert len(requests_sent(sink)) == 1


def test_dealer_uploads_replay_and_refuse_another_file(
    client: TestClient, sink: FakeMessageSink
) -> None:
    key = {**auth(), "Idempotency-Key": "dealers-2026-11"}
    sheet = xlsx(rows(3))  # the same bytes, as a client retrying sends them
    first = upload(client, sheet, headers=key)
    again = upload(client, sheet, headers=key)
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    other = upload(client, xlsx(rows(4)), headers=key)
    assert other.status_code == 422 and other.json()["error"] == "IDEMPOTENCY_KEY_REUSED"
    assert len(requests_sent(sink)) == 1


def test_templates_replay_and_refuse_another_body(client: TestClient) -> None:
    template = {"name": "welcome", "channel": "SMS", "message": "Merhaba {name}: {link}"}
    headers = {**auth(), "Idempotency-Key": "template-1"}
    path = "/api/v1/bulk-operations/templates"
    first = client.post(path, json=template, headers=headers)
    again = client.post(path, json=template, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    other = client.post(path, json={**template, "message": "Selam {name}"}, headers=headers)
    assert other.status_code == 422 and other.json()["error"] == "IDEMPOTENCY_KEY_REUSED"
