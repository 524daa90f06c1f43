"""The ticket API of seed 003 end to end: Bulkops on the real broker and ClickHouse, and the
example ticket service (its own SQLite database, Kafka workers written with the SDK) as the
system that owns the tickets. Exact counts with the service's refusals as ticket errors, the
tickets really changed (each once), the seed's WebSocket messages and list, a cancel, and the
service killed mid-operation and started again."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import orjson

from api.auth import Role
from bulkops import localkafka
from examples.tickets.runner import TicketServiceConfig, TicketServiceThread
from examples.tickets.store import TicketStore
from tests.integration.conftest import ROOT, Server
from tests.support import wait_for

TICKETS = "/api/v1/tickets/bulk-operations"
TERMINAL = {"completed", "failed", "cancelled"}


def ticket_service(
    server: Server, tmp_path: Path, tenant: int, tickets: int
) -> TicketServiceThread:
    return TicketServiceThread(
        TicketServiceConfig(
            bulkops_url=server.base_url,
            admin_token=server.token(None, Role.ADMIN),
            bootstrap=server.env["BULKOPS_KAFKA_BOOTSTRAP"],
            prefix=server.env["BULKOPS_TOPIC_PREFIX"],
            db_path=tmp_path / f"tickets-{tenant}.db",
            http_port=localkafka.free_port(),
            demo_tenant=tenant,
            demo_tickets=tickets,
            restricted_every=50,
        )
    ).start()


def seed_client(server: Server, sponsor_id: int) -> httpx.Client:
    return httpx.Client(
        base_url=server.base_url,
        headers={"Authorization": f"Bearer {server.token(sponsor_id)}"},
        timeout=60,
    )


def wait_done(client: httpx.Client, operation_id: str, timeout: float = 180) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        answer = client.get(f"{TICKETS}/{operation_id}")
        assert answer.status_code == 200, answer.text
        body = answer.json()
        return body if body["status"] in TERMINAL else None

    return wait_for(finished, timeout=timeout, interval=0.2, message=f"{operation_id} done")


async def ws_messages(server: Server, operation_id: str, token: str) -> list[dict[str, Any]]:
    messages = []
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(
            f"ws://127.0.0.1:{server.port}/ws/bulk-operations/{operation_id}",
            headers={"Authorization": f"Bearer {token}"},
        ) as ws,
    ):
        async for message in ws:
            if message.type is aiohttp.WSMsgType.TEXT:
                messages.append(orjson.loads(message.data))
    return messages


def test_ten_thousand_tickets_with_refusals_counted_and_changed_once(
    make_server: Any, tmp_path: Path
) -> None:
    server: Server = make_server(BULKOPS_MAX_ITEMS_PER_OPERATION="20000").start()
    service = ticket_service(server, tmp_path, tenant=71, tickets=10_000)
    try:
        with seed_client(server, 71) as client:
            answer = client.post(
                TICKETS,
                json={
                    "ticket_ids": list(range(1, 10_001)),
                    "operation_type": "update_status",
                    "operation_data": {"status": "resolved"},
                    "metadata": {"description": "Marking resolved tickets"},
                },
            )
            assert answer.status_code == 202, answer.text
            accepted = answer.json()
            assert set(accepted) == {
                "operation_id",
                "status",
                "ticket_count",
                "created_at",
                "estimated_completion",
            }
            assert (accepted["status"], accepted["ticket_count"]) == ("pending", 10_000)
            operation_id = accepted["operation_id"]
            messages = asyncio.run(ws_messages(server, operation_id, server.token(71)))
            final = wait_done(client, operation_id)
            listed = client.get(TICKETS, params={"status": "completed", "limit": 5}).json()
        changes = service.store.change_counts()
        statuses = service.store.statuses()
    finally:
        service.stop()

    assert final["status"] == "completed" and final["operation_type"] == "update_status"
    assert (final["total_tickets"], final["processed_tickets"]) == (10_000, 10_000)
    assert (final["successful_tickets"], final["failed_tickets"]) == (9_800, 200)
    assert final["progress_percentage"] == 100
    refused = [e for e in final["errors"] if e["error_code"] == "FORBIDDEN"]
    assert refused and all(e["ticket_id"] % 50 == 0 for e in refused)
    assert refused[0]["error_message"].startswith("Insufficient permissions")
    # The ticket system's database: every ticket it allowed changed once, the others not.
    assert set(changes) == {t for t in range(1, 10_001) if t % 50} and set(changes.values()) == {1}
    assert {t for t, s in statuses.items() if s == "resolved"} == set(changes)

    assert messages[-1] == {
        "type": "operation_completed",
        "operation_id": operation_id,
        "final_status": "completed",
        "successful_tickets": 9_800,
        "failed_tickets": 200,
        "completed_at": messages[-1]["completed_at"],
    }
    updates = [m for m in messages if m["type"] == "progress_update"]
    assert updates and set(updates[0]) == {
        "type",
        "operation_id",
        "status",
        "processed_tickets",
        "progress_percentage",
        "current_ticket_id",
        "timestamp",
    }
    assert any(isinstance(m["current_ticket_id"], int) for m in updates)
    assert [m["operation_id"] for m in listed["operations"]] == [operation_id]
    assert (listed["total"], listed["has_more"]) == (1, False)
    assert listed["operations"][0]["successful_tickets"] == 9_800


def test_bad_ticket_requests_are_refused_and_operations_are_private(
    make_server: Any, tmp_path: Path
) -> None:
    server: Server = make_server(BULKOPS_MAX_ITEMS_PER_OPERATION="20000").start()
    service = ticket_service(server, tmp_path, tenant=72, tickets=20)
    try:
        with seed_client(server, 72) as client, seed_client(server, 73) as stranger:
            cases = [
                ({"ticket_ids": [1, 2, 2, 3, 3], "operation_type": "update_status",
                  "operation_data": {"status": "closed"}},
                 "ticket_ids", "duplicate ticket ids: 2, 3"),
                ({"ticket_ids": [], "operation_type": "update_status"}, "ticket_ids", None),
                ({"ticket_ids": [1], "operation_type": "update_status",
                  "operation_data": {"status": "archived"}}, "operation_data.status", None),
                ({"ticket_ids": [1], "operation_type": "add_comment",
                  "operation_data": {"comment": "   "}}, "operation_data.comment", None),
                ({"ticket_ids": [1], "operation_type": "merge"}, "operation_type", None),
            ]  # fmt: skip
            for body, field, message in cases:
                answer = client.post(TICKETS, json=body)
                assert answer.status_code == 422, (body, answer.text)
                error = answer.json()["details"]["errors"][0]
                assert error["field"] == field, (body, error)
                if message:
                    assert message in error["message"]
            admin = httpx.post(
                f"{server.base_url}{TICKETS}",
                json={"ticket_ids": [1], "operation_type": "delete"},
                headers={"Authorization": f"Bearer {server.token(None, Role.ADMIN)}"},
            )
            assert admin.status_code == 403
            assert httpx.post(f"{server.base_url}{TICKETS}", json={}).status_code == 401

            comment = client.post(
                TICKETS,
                json={
                    "ticket_ids": [1, 2, 50],
                    "operation_type": "add_comment",
                    "operation_data": {"comment": "Looking into it"},
                },
            )
            assert comment.status_code == 202, comment.text
            operation_id = comment.json()["operation_id"]
            done = wait_done(client, operation_id, timeout=60)
            assert (done["successful_tickets"], done["failed_tickets"]) == (2, 1)
            assert done["errors"][0]["ticket_id"] == 50
            assert stranger.get(f"{TICKETS}/{operation_id}").status_code == 404
            assert stranger.post(f"{TICKETS}/{operation_id}/cancel").status_code == 404
            assert stranger.get(TICKETS).json()["total"] == 0
            assert client.post(f"{TICKETS}/{operation_id}/cancel").status_code == 409
    finally:
        service.stop()


def test_a_cancel_leaves_the_rest_of_the_tickets_untouched(
    make_server: Any, tmp_path: Path
) -> None:
    server: Server = make_server(BULKOPS_MAX_ITEMS_PER_OPERATION="20000").start()
    service = ticket_service(server, tmp_path, tenant=74, tickets=20_000)
    try:
        with seed_client(server, 74) as client:
            answer = client.post(
                TICKETS,
                json={
                    "ticket_ids": list(range(1, 20_001)),
                    "operation_type": "update_priority",
                    "operation_data": {"priority": "urgent"},
                },
            )
            assert answer.status_code == 202, answer.text
            operation_id = answer.json()["operation_id"]
            wait_for(
                lambda: sum(service.store.change_counts().values()) > 500,
                timeout=60,
                message="tickets changing",
            )
            cancelled = client.post(f"{TICKETS}/{operation_id}/cancel")
            assert cancelled.status_code == 200, cancelled.text
            assert cancelled.json()["status"] == "cancelled"
            final = wait_done(client, operation_id)
        changed = sum(service.store.change_counts().values())
    finally:
        service.stop()
    assert final["status"] == "cancelled"
    assert final["successful_tickets"] == changed < 19_600
    assert (
        final["successful_tickets"] + final["failed_tickets"] + final["skipped_tickets"] == 20_000
    )


def test_the_ticket_service_killed_mid_operation_changes_each_ticket_once(
    make_server: Any, tmp_path: Path
) -> None:
    server: Server = make_server(BULKOPS_MAX_ITEMS_PER_OPERATION="20000").start()
    db = tmp_path / "killed.db"
    admin_token = server.token(None, Role.ADMIN)

    def start_service() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "examples.tickets", "--bulkops-url", server.base_url,
             "--bootstrap", server.env["BULKOPS_KAFKA_BOOTSTRAP"],
             "--prefix", server.env["BULKOPS_TOPIC_PREFIX"], "--db", str(db),
             "--port", str(localkafka.free_port()), "--demo-tenant", "75",
             "--demo-tickets", "6000"],
            cwd=ROOT, env={**os.environ, "TICKETS_BULKOPS_ADMIN_TOKEN": admin_token},
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )  # fmt: skip

    first = start_service()
    try:
        wait_for(db.exists, timeout=30, message="the ticket database")
        with seed_client(server, 75) as client:
            wait_for(
                lambda: (
                    len(client.get("/api/v1/bulk-operations/job-types").json()["data"]["jobTypes"])
                    == 6
                ),
                timeout=60,
                message="the six ticket types registered",
            )
            assign = {"ticket_ids": [1], "operation_type": "assign",
                      "operation_data": {"assignee_id": 9}}  # fmt: skip
            assert client.post(TICKETS, json=assign).status_code == 202
            answer = client.post(
                TICKETS,
                json={
                    "ticket_ids": list(range(1, 6001)),
                    "operation_type": "update_category",
                    "operation_data": {"category": "billing"},
                },
            )
            assert answer.status_code == 202, answer.text
            operation_id = answer.json()["operation_id"]
            store = TicketStore(db)
            wait_for(
                lambda: len(store.change_counts()) > 1500,
                timeout=60,
                message="tickets changing",
            )
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=30)
            second = start_service()
            try:
                final = wait_done(client, operation_id, timeout=240)
            finally:
                second.send_signal(signal.SIGTERM)
                second.wait(timeout=60)
        changes = store.change_counts()
        store.close()
    finally:
        if first.poll() is None:
            first.kill()
    assert final["status"] == "completed"
    assert (final["successful_tickets"], final["failed_tickets"]) == (6000, 0)
    assert len(changes) == 6000
    assert changes[1] == 2  # assigned, then its category changed: two items, once each
    assert {n for t, n in changes.items() if t != 1} == {1}
