"""Quotas on the real broker, worker and chDB, through the REST API: exact under parallel
submits, daily limits across midnight (on an injected clock), Admin changes, and requests
from other systems through Kafka refused as Failed, not dropped."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Producer

from api.auth import Role
from api.producer import producer_config
from core.topics import sponsor_key
from tests.integration.conftest import Server
from tests.integration.test_codegen_flow import submit, wait_terminal
from tests.integration.test_link_sends import body
from tests.support import wait_for

NO_QUOTAS = {
    "BULKOPS_QUOTA_MAX_CONCURRENT_OPERATIONS": "0",
    "BULKOPS_QUOTA_MAX_OPERATIONS_PER_DAY": "0",
    "BULKOPS_QUOTA_MAX_ITEMS_PER_DAY": "0",
}


def scheduled_send(hours_ahead: float = 2) -> dict[str, Any]:
    """A one-recipient send that waits for its start: it holds a concurrency slot."""
    request = body(1, "SMS", batchSize=10)
    request["scheduling"] = {
        "isScheduled": True,
        "scheduledDate": (datetime.now(UTC) + timedelta(hours=hours_ahead)).isoformat(),
        "timeZone": "UTC",
    }
    return request


def codes(quantity: int = 10) -> dict[str, Any]:
    return {
        "subscriptionTierId": 1,
        "quantity": quantity,
        "operationName": "quota test",
        "processing": {"batchSize": 10},
    }


def test_twenty_parallel_submits_against_a_quota_of_three(make_server: Any) -> None:
    server: Server = make_server(
        **{**NO_QUOTAS, "BULKOPS_QUOTA_MAX_CONCURRENT_OPERATIONS": "3"}
    ).start()
    client = server.client(sponsor_id=31)
    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(
            pool.map(lambda _: client.post("/send-links", json=scheduled_send()), range(20))
        )
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [202] * 3 + [429] * 17, [a.text for a in answers if a.status_code >= 500]
    refused = [a.json() for a in answers if a.status_code == 429]
    assert all(r["error"] == "QUOTA_EXCEEDED" for r in refused)
    assert all(r["details"]["quota"] == "maxConcurrentOperations" for r in refused)
    assert all((r["details"]["current"], r["details"]["limit"]) == (3, 3) for r in refused)
    accepted = [a.json()["data"]["operationId"] for a in answers if a.status_code == 202]
    use = client.get("/quotas").json()["data"]["use"]
    assert (use["concurrentOperations"], use["operationsToday"]) == (3, 3)
    refused_status = client.get(f"/status/{refused[0]['details']['operationId']}").json()["data"]
    assert refused_status["status"] == "Failed"

    # the fourth is accepted once one of the three ends
    assert client.post(f"/cancel/{accepted[0]}").status_code == 200
    assert wait_terminal(client, accepted[0])["status"] == "Cancelled"
    wait_for(
        lambda: client.get("/quotas").json()["data"]["use"]["concurrentOperations"] == 2,
        timeout=30,
        message="the slot given back",
    )
    assert client.post("/send-links", json=scheduled_send()).status_code == 202
    assert client.post("/send-links", json=scheduled_send()).status_code == 429

    # an Admin raises this sponsor's limit: applied before the next submit
    admin = server.client(sponsor_id=None, role=Role.ADMIN)
    change = admin.put("/quotas/31", json={"bulkOperationLimits": {"maxConcurrentOperations": 4}})
    assert change.status_code == 200, change.text
    assert change.json()["data"]["bulkOperationLimits"]["maxConcurrentOperations"] == 4
    assert client.post("/send-links", json=scheduled_send()).status_code == 202
    other = server.client(sponsor_id=32)  # another sponsor is not affected by 31's use
    assert other.post("/send-links", json=scheduled_send()).status_code == 202


def test_a_daily_limit_resets_at_midnight_utc(make_server: Any, tmp_path: Path) -> None:
    clock = tmp_path / "clock-offset"
    now = datetime.now(UTC)
    before_midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
    clock.write_text(str((before_midnight - timedelta(seconds=90) - now).total_seconds()))
    server: Server = make_server(
        **{
            **NO_QUOTAS,
            "BULKOPS_QUOTA_MAX_OPERATIONS_PER_DAY": "2",
            "BULKOPS_QUOTA_CLOCK_FILE": str(clock),
        }
    ).start()
    client = server.client(sponsor_id=33)
    first = [submit(client, codes()) for _ in range(2)]
    refused = client.post("/generate-codes", json=codes())
    assert refused.status_code == 429
    assert refused.json()["details"]["quota"] == "maxOperationsPerDay"
    assert 1 <= int(refused.headers["retry-after"]) <= 90
    for operation_id in first:
        assert wait_terminal(client, operation_id)["status"] == "Completed"
    assert client.post("/generate-codes", json=codes()).status_code == 429  # still today

    clock.write_text(str((before_midnight + timedelta(seconds=5) - now).total_seconds()))
    after = submit(client, codes())
    assert wait_terminal(client, after)["status"] == "Completed"
    quotas = client.get("/quotas").json()["data"]
    assert quotas["use"]["operationsToday"] == 1
    assert quotas["use"]["day"] == (now.date() + timedelta(days=1)).isoformat()


def test_a_request_from_another_system_over_quota_ends_failed(make_server: Any) -> None:
    server: Server = make_server(**{**NO_QUOTAS, "BULKOPS_QUOTA_MAX_ITEMS_PER_DAY": "100"}).start()
    producer = Producer(producer_config(server.env["BULKOPS_KAFKA_BOOTSTRAP"]))
    ids = [f"codegen_{uuid.uuid4().hex}" for _ in range(2)]
    for operation_id, quantity in zip(ids, (60, 60), strict=True):
        request = {
            "operationId": operation_id,
            "operationType": "BulkCodeGeneration",
            "sponsorId": 34,
            "requestedBy": "other-system",
            "requestedAt": datetime.now(UTC).isoformat(),
            "totalItems": quantity,
            "codeGeneration": {"subscriptionTierId": 1, "quantity": quantity},
        }
        producer.produce(
            server.topics.operations.name, key=sponsor_key(34), value=orjson.dumps(request)
        )
    assert producer.flush(10) == 0
    client = server.client(sponsor_id=34)
    assert wait_terminal(client, ids[0])["status"] == "Completed"
    refused = wait_terminal(client, ids[1])
    assert refused["status"] == "Failed"
    assert "maxItemsPerDay" in refused["statusMessage"]
    assert refused["quotaRefusal"]["quota"] == "maxItemsPerDay"
    history = client.get("/history").json()["data"]
    assert {entry["operationId"] for entry in history} >= set(ids)


def test_the_engine_bound_on_unfinished_operations_holds_for_admins_too(
    make_server: Any,
) -> None:
    """With no quota at all, a sponsor still has at most
    ``BULKOPS_MAX_RUNNING_OPERATIONS_PER_SPONSOR`` operations unfinished, even submitted by an
    Admin: the one over it ends Failed with the bound as its limit, and nothing is counted."""
    server: Server = make_server(
        **NO_QUOTAS, BULKOPS_MAX_RUNNING_OPERATIONS_PER_SPONSOR="2"
    ).start()
    admin = server.client(sponsor_id=None, role=Role.ADMIN)
    sponsor = server.client(sponsor_id=35)
    held = [submit(sponsor, scheduled_send(), "/send-links") for _ in range(2)]
    over = submit(admin, {**scheduled_send(), "sponsorId": 35}, "/send-links")
    status = wait_terminal(sponsor, over)
    assert status["status"] == "Failed", status
    assert status["stopReason"] == "QUOTA_EXCEEDED"
    refusal = status["quotaRefusal"]
    assert (refusal["quota"], refusal["current"], refusal["limit"]) == (
        "maxConcurrentOperations",
        2,
        2,
    )
    use = sponsor.get("/quotas").json()["data"]["use"]
    assert (use["concurrentOperations"], use["operationsToday"]) == (2, 2)
    for operation_id in held:
        assert sponsor.get(f"/status/{operation_id}").json()["data"]["status"] == "Queued"
