"""The ``002`` queue plan's job types end to end: the example marketplace (its own SQLite
database, SDK workers) on the real broker and ClickHouse, through Bulkops' REST API.
Inventory created, updated and deleted with the owner's refusals as item errors and another
tenant's rows untouched; ``notification:email`` through the provider simulator's SMTP server,
first attempts refused (retried by Bulkops) and some recipients rejected for good, each
message delivered once; ``notification:push`` to the tenant's devices only."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.auth import Role
from bulkops.simulator import SimulatorThread
from examples.marketplace.service import MarketplaceService, SmtpServer, register
from examples.marketplace.store import MarketplaceStore
from examples.serving import ServiceThread
from tests.integration.conftest import Server
from tests.integration.test_codegen_flow import submit, wait_terminal


@pytest.fixture
def marketplace(
    make_server: Any, simulator: SimulatorThread, tmp_path: Path
) -> Iterator[tuple[Server, MarketplaceStore]]:
    server: Server = make_server().start()
    with server.client(None, Role.ADMIN) as admin:
        register(admin)
    store = MarketplaceStore(tmp_path / "marketplace.db")
    service = MarketplaceService(
        store,
        bootstrap=server.env["BULKOPS_KAFKA_BOOTSTRAP"],
        prefix=server.env["BULKOPS_TOPIC_PREFIX"],
        smtp=SmtpServer("127.0.0.1", simulator.smtp_port),
    )
    thread = ServiceThread("marketplace", service)
    thread.start()
    try:
        yield server, store
    finally:
        thread.stop()
        store.close()


def run(client: httpx.Client, job_type: str, items: list[dict[str, Any]], **data: Any) -> Any:
    operation_id = submit(
        client, {"operationType": job_type, "items": items, "data": data}, "/jobs"
    )
    return operation_id, wait_terminal(client, operation_id, timeout=180)


def failures(client: httpx.Client, operation_id: str) -> dict[int, str]:
    page = client.get(f"/jobs/{operation_id}", params={"status": "failed", "limit": 1000})
    assert page.status_code == 200, page.text
    return {job["index"]: job["errorCode"] for job in page.json()["data"]["jobs"]}


def test_inventory_jobs_change_the_owners_rows_only(
    marketplace: tuple[Server, MarketplaceStore],
) -> None:
    server, store = marketplace
    store.seed(71, skus=["SKU-7"])
    client = server.client(sponsor_id=71)
    created = [
        {"sku": f"SKU-{i}", "name": f"Lamp {i}", "quantity": i, "price": 10.5}
        | ({"imageUrl": f"https://img.example.com/{i}.png"} if i % 2 else {})
        for i in range(1, 201)
    ]
    operation_id, status = run(client, "inventory:create", created)
    assert status["status"] == "PartiallyCompleted"
    assert failures(client, operation_id) == {6: "SKU_EXISTS"}
    assert len(store.inventory(71)) == 200

    updates = [{"sku": f"SKU-{i}", "quantity": 1000 + i} for i in range(1, 201)]
    _, status = run(client, "inventory:update", updates)
    assert status["metrics"]["successfulItems"] == 200
    assert {row["quantity"] for row in store.inventory(71).values()} == set(range(1001, 1201))

    outsider = server.client(sponsor_id=72)
    operation_id, status = run(outsider, "inventory:delete", [{"sku": "SKU-1"}])
    assert status["status"] == "Failed" and failures(outsider, operation_id) == {
        0: "INVENTORY_NOT_FOUND"
    }
    assert "SKU-1" in store.inventory(71)

    deleted = [{"sku": f"SKU-{i}"} for i in range(1, 51)]
    _, status = run(client, "inventory:delete", deleted, cleanupImages=True)
    assert status["metrics"]["successfulItems"] == 50
    assert sorted(store.inventory(71)) == sorted(f"SKU-{i}" for i in range(51, 201))
    assert len(store.image_cleanups(71)) == 24  # the odd SKUs had images, but SKU-7 was there
    assert store.counts() == {
        "inventory:create": 199,
        "inventory:update": 200,
        "inventory:delete": 50,
    }


def test_emails_go_through_the_smtp_server_once_each(
    marketplace: tuple[Server, MarketplaceStore], simulator: SimulatorThread
) -> None:
    server, _ = marketplace
    simulator.simulator.config.fail_first_attempts = 1
    simulator.simulator.config.permanent_failure_rate = 0.1
    client = server.client(sponsor_id=73)
    recipients = [{"to": f"buyer{i}@shop.example.com", "name": f"Buyer {i}"} for i in range(120)]
    refused = client.post(
        "/jobs",
        json={
            "operationType": "notification:email",
            "items": [*recipients[:3], {"to": "not-an-address"}],
            "data": {"subject": "Your order", "body": "Hello {name}"},
        },
    )
    assert refused.status_code == 422 and refused.json()["details"]["errors"][0]["field"] == (
        "items.3.to"
    )
    operation_id, status = run(
        client, "notification:email", recipients, subject="Your order", body="Hello {name}"
    )
    metrics = status["metrics"]
    rejected = failures(client, operation_id)
    assert 0 < len(rejected) < 30 and set(rejected.values()) == {"SMTP_550"}
    assert metrics["successfulItems"] == 120 - len(rejected)
    ledger = simulator.simulator.ledger
    delivered = {entry.to: entry for entry in ledger.entries.values()}
    assert len(ledger.entries) == metrics["successfulItems"] and ledger.duplicates == 0
    assert set(delivered) == {r["to"] for i, r in enumerate(recipients) if i not in rejected}
    assert delivered["buyer0@shop.example.com"].body == "Hello Buyer 0"
    assert Counter(ledger.attempts.values())[1] == 0  # every message was refused once first
    jobs = client.get(f"/jobs/{operation_id}", params={"status": "completed", "limit": 1})
    assert jobs.json()["data"]["jobs"][0]["retryCount"] == 1


def test_pushes_reach_the_tenants_devices_only(
    marketplace: tuple[Server, MarketplaceStore],
) -> None:
    server, store = marketplace
    store.seed(74, devices=[f"device-{i:04d}" for i in range(10)])
    store.seed(75, devices=["device-other"])
    client = server.client(sponsor_id=74)
    targets = [{"deviceToken": f"device-{i:04d}"} for i in range(10)]
    operation_id, status = run(
        client,
        "notification:push",
        [*targets, {"deviceToken": "device-other"}, {"deviceToken": "device-unknown"}],
        title="Price drop",
        body="An item you follow is cheaper",
    )
    assert status["metrics"]["successfulItems"] == 10
    assert failures(client, operation_id) == {10: "DEVICE_NOT_FOUND", 11: "DEVICE_NOT_FOUND"}
    assert sorted(token for token, _ in store.pushes()) == [f"device-{i:04d}" for i in range(10)]
