"""The ticket API of seed 003 on the fake producer: the seed's shapes and statuses, requests
turned into jobs of the ticket system's types, bad input named by the seed's fields, and the
example ticket service's store (its permissions, each change applied once)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.auth import Role
from api.services import tickets
from examples.tickets.service import type_spec
from examples.tickets.store import Change, Refused, TicketStore
from schemas.common import ErrorCategory, ItemError, OperationStatus, OperationType
from schemas.messages import JobItemsChunk, OperationRequested, RecentResult
from schemas.status import OperationSnapshot
from schemas.tickets import TicketStatus
from tests.unit.conftest import (
    FakeMessageSink,
    auth,
    job_types_client,
    operations_sent,
)

TICKETS = "/api/v1/tickets/bulk-operations"
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@pytest.fixture
def client(sink: FakeMessageSink) -> Iterator[TestClient]:
    with job_types_client(sink) as client:
        admin = auth(None, Role.ADMIN)
        for action in ("update_status", "add_comment"):
            answer = client.post(
                "/api/v1/bulk-operations/job-types", json=type_spec(action), headers=admin
            )
            assert answer.status_code == 201, answer.text
        yield client


def test_the_seed_request_becomes_a_job_of_the_ticket_systems_type(
    client: TestClient, sink: FakeMessageSink
) -> None:
    body = {
        "ticket_ids": [1, 2, 3, 4, 5],
        "operation_type": "update_status",
        "operation_data": {"status": "resolved"},
        "metadata": {"description": "Marking resolved tickets as closed"},
    }
    answer = client.post(TICKETS, json=body, headers=auth(7))
    assert answer.status_code == 202, answer.text
    data = answer.json()
    assert set(data) == {
        "operation_id",
        "status",
        "ticket_count",
        "created_at",
        "estimated_completion",
    }
    assert (data["status"], data["ticket_count"]) == ("pending", 5)
    header, chunk = operations_sent(sink)
    assert isinstance(header, OperationRequested) and isinstance(chunk, JobItemsChunk)
    assert header.operation_type is OperationType.JOB and header.job is not None
    assert (header.job.job_type, header.job.data) == (
        "ticket:update_status",
        {"status": "resolved"},
    )
    assert header.metadata == {"description": "Marking resolved tickets as closed"}
    assert [i.payload for i in chunk.items] == [{"ticketId": t} for t in range(1, 6)]
    assert chunk.items[2].item_id == f"{data['operation_id']}:t3"

    status = client.get(f"{TICKETS}/{data['operation_id']}", headers=auth(7))
    assert status.status_code == 200
    assert status.json()["status"] == "pending" and status.json()["total_tickets"] == 5
    assert client.get(f"{TICKETS}/{data['operation_id']}", headers=auth(8)).status_code == 404
    for malformed in ("tickets_xyz", f"{'t' * 32}_{'0' * 32}", "TICKETS_" + "0" * 32):
        answer = client.get(f"{TICKETS}/{malformed}", headers=auth(7))
        assert answer.status_code == 422, (malformed, answer.text)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"ticket_ids": [1, 1], "operation_type": "update_status"}, "ticket_ids"),
        ({"ticket_ids": [0], "operation_type": "update_status"}, "ticket_ids"),
        ({"ticket_ids": [], "operation_type": "update_status"}, "ticket_ids"),
        ({"ticket_ids": ["x"], "operation_type": "update_status"}, "ticket_ids.0"),
        ({"ticket_ids": [1], "operation_type": "archive"}, "operation_type"),
        ({"ticket_ids": [1], "operation_type": "update_status"}, "operation_data"),
        (
            {
                "ticket_ids": [1],
                "operation_type": "update_status",
                "operation_data": {"status": "x"},
            },
            "operation_data.status",
        ),
        (
            {"ticket_ids": [1], "operation_type": "add_comment", "operation_data": {"comment": ""}},
            "operation_data.comment",
        ),
        ({"ticket_ids": [1], "operation_type": "update_status", "extra": 1}, "extra"),
    ],
)
def test_bad_requests_name_the_seeds_fields(
    client: TestClient, sink: FakeMessageSink, body: dict[str, Any], field: str
) -> None:
    answer = client.post(TICKETS, json=body, headers=auth(7))
    assert answer.status_code == 422, answer.text
    assert answer.json()["details"]["errors"][0]["field"] == field
    assert operations_sent(sink) == []


def test_an_action_the_ticket_system_has_not_registered_is_404(client: TestClient) -> None:
    body = {"ticket_ids": [1], "operation_type": "delete"}
    answer = client.post(TICKETS, json=body, headers=auth(7))
    assert (answer.status_code, answer.json()["error"]) == (404, "JOB_TYPE_NOT_FOUND")


def test_only_a_sponsors_token_submits(client: TestClient) -> None:
    body = {
        "ticket_ids": [1],
        "operation_type": "update_status",
        "operation_data": {"status": "closed"},
    }
    assert client.post(TICKETS, json=body, headers=auth(None, Role.ADMIN)).status_code == 403
    assert client.post(TICKETS, json=body).status_code == 401


def snapshot(status: OperationStatus, **fields: Any) -> OperationSnapshot:
    values: dict[str, Any] = {
        "operation_id": "tickets_" + "e" * 32,
        "sponsor_id": 7,
        "operation_type": OperationType.JOB,
        "job_type": "ticket:add_comment",
        "operation_name": "Tickets: add_comment",
        "requested_by": "u",
        "status": status,
        "total_items": 5,
        "processed_items": 3,
        "successful_items": 2,
        "failed_items": 1,
        "created_at": NOW,
        "started_at": NOW,
        "last_updated": NOW,
        "current_phase": "Processing",
        "status_message": "",
    }
    return OperationSnapshot(**(values | fields))


def test_statuses_and_errors_in_the_seeds_shape() -> None:
    refused = ItemError(
        item_index=2,
        item_id="tickets_" + "e" * 32 + ":t3",
        error_code="FORBIDDEN",
        error_message="Insufficient permissions to update ticket 3",
        error_category=ErrorCategory.BUSINESS,
    )
    shown = tickets.status(snapshot(OperationStatus.PROCESSING, errors=[refused]), NOW)
    assert (shown.status, shown.progress_percentage, shown.operation_type.value) == (
        TicketStatus.IN_PROGRESS,
        60.0,
        "add_comment",
    )
    assert [(e.ticket_id, e.error_message) for e in shown.errors] == [
        (3, "Insufficient permissions to update ticket 3")
    ]
    expected = {
        OperationStatus.QUEUED: "pending",
        OperationStatus.PAUSED: "in_progress",
        OperationStatus.PARTIALLY_COMPLETED: "completed",
        OperationStatus.FAILED: "failed",
        OperationStatus.CANCELLED: "cancelled",
    }
    assert {s: TicketStatus.of(s).value for s in expected} == expected
    assert TicketStatus.COMPLETED.operation_statuses() == ["Completed", "PartiallyCompleted"]


def test_websocket_messages_in_the_seeds_shape() -> None:
    recent = RecentResult(
        index=4,
        item_id="tickets_" + "e" * 32 + ":t5",
        status="Success",
        processed_at=NOW,
        processing_duration_ms=1.0,
    )
    update = tickets.progress_update(
        snapshot(OperationStatus.PROCESSING, recent_results=[recent]), NOW
    )
    assert update == {
        "type": "progress_update",
        "operation_id": "tickets_" + "e" * 32,
        "status": "in_progress",
        "processed_tickets": 3,
        "progress_percentage": 60.0,
        "current_ticket_id": 5,
        "timestamp": NOW.isoformat(),
    }
    done = tickets.operation_completed(
        snapshot(OperationStatus.PARTIALLY_COMPLETED, completed_at=NOW, processed_items=5)
    )
    assert done == {
        "type": "operation_completed",
        "operation_id": "tickets_" + "e" * 32,
        "final_status": "completed",
        "successful_tickets": 2,
        "failed_tickets": 1,
        "completed_at": NOW.isoformat(),
    }


def test_the_example_store_checks_permissions_and_applies_each_change_once(
    tmp_path: Path,
) -> None:
    store = TicketStore(tmp_path / "t.db")
    store.seed(7, range(1, 11), restricted_every=5)
    change = Change("update_status", 2, 7, "op:t2", {"status": "closed"})
    assert store.apply(change)["status"] == "closed"
    store.apply(change)  # delivered again: recognised by its item id
    assert store.change_counts() == {2: 1}
    with pytest.raises(Refused, match="Insufficient permissions"):
        store.apply(Change("update_status", 5, 7, "op:t5", {"status": "closed"}))  # restricted
    with pytest.raises(Refused, match="Insufficient permissions"):
        store.apply(Change("update_status", 3, 8, "op:t3", {"status": "closed"}))  # other tenant
    with pytest.raises(Refused, match="does not exist"):
        store.apply(Change("assign", 99, 7, "op:t99", {"assignee_id": 4}))
    store.apply(Change("delete", 4, 7, "op2:t4", {}))
    with pytest.raises(Refused, match="does not exist"):
        store.apply(Change("add_comment", 4, 7, "op3:t4", {"comment": "hi"}))
    store.close()
