"""The code-generation flow end to end over REST, on the real broker and the chDB engine."""

from __future__ import annotations

import copy
from typing import Any

import httpx

from api.auth import Role
from schemas.requests import SEED_CODE_GENERATION_EXAMPLE
from tests.integration.conftest import Server, probe_every_code_once
from tests.support import wait_for

TERMINAL = {"Completed", "Failed", "Cancelled", "PartiallyCompleted"}


def submit(client: httpx.Client, body: dict[str, Any], path: str = "/generate-codes") -> str:
    response = client.post(path, json=body)
    assert response.status_code == 202, response.text
    payload = response.json()
    assert payload["success"] is True
    return str(payload["data"]["operationId"])


def wait_terminal(client: httpx.Client, operation_id: str, timeout: float = 120) -> dict[str, Any]:
    seen: list[int] = []

    def probe() -> dict[str, Any] | None:
        response = client.get(f"/status/{operation_id}")
        if response.status_code == 404:  # produced straight to Kafka: not seen by the API yet
            return None
        data = response.json()["data"]
        seen.append(data["metrics"]["processedItems"])
        return data if data["status"] in TERMINAL else None

    data = wait_for(probe, timeout=timeout, interval=0.1, message=f"{operation_id} finished")
    assert seen == sorted(seen), "processedItems must never go backwards"
    return data


def all_codes(client: httpx.Client, operation_id: str) -> list[dict[str, Any]]:
    codes: list[dict[str, Any]] = []
    after = 0
    while True:
        page = client.get(f"/codes/{operation_id}", params={"afterIndex": after, "limit": 5000})
        assert page.status_code == 200, page.text
        data = page.json()["data"]
        codes.extend(data["codes"])
        if data["nextAfterIndex"] is None:
            return codes
        after = data["nextAfterIndex"]


def test_ten_thousand_codes_end_to_end(make_server: Any) -> None:
    server: Server = make_server(BULKOPS_MAX_ITEMS_PER_OPERATION="100000").start()
    client = server.client(sponsor_id=7)
    body = {
        "operationName": "10k codes",
        "subscriptionTierId": 2,
        "quantity": 10_000,
        "codePrefix": "TENK",
        "validityDays": 30,
        "processing": {"batchSize": 500},
    }
    response = client.post("/generate-codes", json=body)
    assert response.status_code == 202, response.text
    accepted = response.json()["data"]
    assert accepted["operationType"] == "BulkCodeGeneration"
    assert accepted["status"] == "Queued"
    assert accepted["totalItems"] == 10_000
    assert accepted["statusUrl"] == f"/api/v1/bulk-operations/status/{accepted['operationId']}"
    assert accepted["metrics"]["processedItems"] == 0
    operation_id = accepted["operationId"]

    status = wait_terminal(client, operation_id)
    assert status["status"] == "Completed"
    metrics = status["metrics"]
    assert metrics["processedItems"] == metrics["successfulItems"] == 10_000
    assert metrics["progressPercentage"] == 100.0
    assert metrics["failedItems"] == 0

    codes = all_codes(client, operation_id)
    assert [c["itemIndex"] for c in codes] == list(range(10_000))
    assert len({c["code"] for c in codes}) == 10_000
    assert all(c["code"].startswith("TENK-") and c["subscriptionTierId"] == 2 for c in codes)

    history = client.get("/history", params={"pageSize": 50}).json()
    assert history["pagination"]["totalCount"] == 1
    entry = history["data"][0]
    assert entry["operationId"] == operation_id
    assert entry["status"] == "Completed"
    assert entry["successfulItems"] == 10_000
    assert entry["createdBy"] == "user_7"

    probe_every_code_once(server, operation_id, 7, 10_000)


def test_seed_example_as_written(server: Server) -> None:
    """The seed carves 700 of 1,000 codes into two prefixed batches; 300 take codePrefix."""
    client = server.client(sponsor_id=7)
    operation_id = submit(client, copy.deepcopy(SEED_CODE_GENERATION_EXAMPLE))
    assert wait_terminal(client, operation_id)["status"] == "Completed"
    codes = all_codes(client, operation_id)
    prefixes = [c["code"].rsplit("-", 1)[0] for c in codes]
    assert prefixes == ["L2025ANT"] * 300 + ["L2025IZM"] * 400 + ["L2025"] * 300
    assert {c["batchName"] for c in codes[:300]} == {"Antalya Bölgesi"}
    assert codes[-1]["batchName"] is None


def test_sponsor_isolation(server: Server) -> None:
    owner = server.client(sponsor_id=7)
    other = server.client(sponsor_id=8)
    admin = server.client(sponsor_id=None, role=Role.ADMIN)
    operation_id = submit(owner, {"subscriptionTierId": 1, "quantity": 20})
    wait_terminal(owner, operation_id)

    for path in (f"/status/{operation_id}", f"/codes/{operation_id}"):
        response = other.get(path)
        assert response.status_code == 404, response.text
        assert response.json()["error"] == "OPERATION_NOT_FOUND"
    assert other.get("/history").json()["pagination"]["totalCount"] == 0
    forged = other.post(
        "/generate-codes", json={"sponsorId": 7, "subscriptionTierId": 1, "quantity": 5}
    )
    assert forged.status_code == 403

    assert admin.get(f"/status/{operation_id}").status_code == 200
    assert admin.get("/history").json()["pagination"]["totalCount"] == 1
    by_admin = submit(admin, {"sponsorId": 8, "subscriptionTierId": 1, "quantity": 5})
    wait_terminal(admin, by_admin)
    assert [e["operationId"] for e in other.get("/history").json()["data"]] == [by_admin]


def test_status_survives_api_restart(make_server: Any) -> None:
    server: Server = make_server().start()
    client = server.client(sponsor_id=7)
    operation_id = submit(client, {"subscriptionTierId": 1, "quantity": 50})
    before = wait_terminal(client, operation_id)
    server.stop()
    server.start()
    after = server.client(sponsor_id=7).get(f"/status/{operation_id}").json()["data"]
    assert after["status"] == "Completed"
    assert after["metrics"] == before["metrics"]


def test_python_client_and_cli_follow_an_operation(server: Server) -> None:
    import subprocess
    import sys
    import time

    from bulkops.client import BulkopsClient

    token = server.token(71)
    with BulkopsClient(server.base_url, token, sleep=lambda s: time.sleep(min(s, 0.2))) as client:
        operation_id = client.generate_codes(subscriptionTierId=2, quantity=3000)
        final = client.wait(operation_id, timeout=60)
    assert final["status"] == "Completed"

    cli = subprocess.run(
        [sys.executable, "-m", "bulkops.cli", "submit-codes", "--quantity", "500", "--tier", "2"],
        env={**server.env, "BULKOPS_API_URL": server.base_url, "BULKOPS_TOKEN": token},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert cli.returncode == 0, cli.stderr[-2000:]
    assert "Completed: 500 succeeded, 0 failed, 0 skipped" in cli.stderr


def test_a_started_server_is_ready_with_its_worker_holding_partitions(server: Server) -> None:
    answer = httpx.get(f"{server.base_url}/readyz", timeout=10)
    assert answer.status_code == 200, answer.text
    checks = answer.json()["checks"]
    assert checks["kafka"] == "a broker answers" and checks["clickhouse"] == "answers"
    assert checks["statusView"] == "caught up"
    assert checks["worker"].startswith("holds ") and not checks["worker"].startswith("holds 0")
