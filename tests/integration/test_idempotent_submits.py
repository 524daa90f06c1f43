"""Idempotency-Key and dryRun on the real broker and chDB, through the REST API: the first
answer survives an API restart, and a dry run leaves no trace."""

from __future__ import annotations

from typing import Any

from tests.integration.conftest import Server
from tests.integration.test_codegen_flow import wait_terminal
from tests.integration.test_link_sends import body as links_body

CODES = {
    "subscriptionTierId": 2,
    "quantity": 50,
    "operationName": "idempotent",
    "processing": {"batchSize": 10},
}


def test_the_first_answer_is_replayed_after_a_restart(make_server: Any) -> None:
    server: Server = make_server().start()
    client = server.client(sponsor_id=41)
    key = {"Idempotency-Key": "campaign-41-attempt-1"}
    first = client.post("/generate-codes", json=CODES, headers=key)
    assert first.status_code == 202, first.text
    operation_id = first.json()["data"]["operationId"]
    assert wait_terminal(client, operation_id)["status"] == "Completed"

    server.stop()
    server.start()
    client = server.client(sponsor_id=41)
    again = client.post("/generate-codes", json=CODES, headers=key)
    assert again.status_code == 202
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    other = client.post("/generate-codes", json={**CODES, "quantity": 60}, headers=key)
    assert other.status_code == 422
    assert other.json()["error"] == "IDEMPOTENCY_KEY_REUSED"
    theirs = server.client(sponsor_id=42).post("/generate-codes", json=CODES, headers=key)
    assert theirs.status_code == 202 and theirs.json()["data"]["operationId"] != operation_id
    history = client.get("/history").json()["data"]
    assert [entry["operationId"] for entry in history] == [operation_id]


def test_a_dry_run_queues_and_stores_nothing(make_server: Any) -> None:
    server: Server = make_server().start()
    client = server.client(sponsor_id=43)
    for path, request in (("/generate-codes", CODES), ("/send-links", links_body(20))):
        answer = client.post(path, params={"dryRun": "true"}, json=request)
        assert answer.status_code == 200, answer.text
        assert answer.json()["data"]["dryRun"] is True
    assert client.get("/history").json()["data"] == []
    assert client.get("/quotas").json()["data"]["use"]["operationsToday"] == 0
