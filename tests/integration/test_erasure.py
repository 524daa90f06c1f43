"""Right to erasure end to end: an Admin erases a recipient's phone number; it is gone from
every table, a retry skips that person, and a retry with nobody left is 410."""

from __future__ import annotations

from typing import Any

import httpx

from api.auth import Role
from bulkops.simulator import SimulatorThread
from tests.integration.conftest import Server, provider_env
from tests.integration.test_codegen_flow import submit, wait_terminal
from tests.integration.test_link_sends import body

ERASURE = "/api/v1/admin/erasure"


def test_erased_recipients_are_gone_everywhere_and_never_retried(
    make_server: Any, simulator: SimulatorThread
) -> None:
    server: Server = make_server(**provider_env(simulator)).start()
    client = server.client(sponsor_id=62)
    admin = httpx.Client(
        base_url=server.base_url,
        headers={"Authorization": f"Bearer {server.token(None, Role.ADMIN)}"},
        timeout=30,
    )
    simulator.simulator.config.transient_failure_rate = 1.0
    payload = body(3, "SMS", retryAttempts=0)
    operation = submit(client, payload, "/send-links")
    assert wait_terminal(client, operation, timeout=60)["metrics"]["failedItems"] == 3
    first, second, third = (f"+90532{i:07d}" for i in range(3))

    as_sponsor = client.post(f"{server.base_url}{ERASURE}", json={"address": first})
    assert as_sponsor.status_code == 403
    invalid = admin.post(ERASURE, json={"address": "not a phone"})
    assert (
        invalid.status_code == 422 and invalid.json()["details"]["errors"][0]["field"] == "address"
    )
    unknown_field = admin.post(ERASURE, json={"address": first, "everywhere": True})
    assert unknown_field.status_code == 422

    erased = admin.post(ERASURE, json={"address": "0532 000 00 00"})  # the first, as typed
    assert erased.status_code == 200, erased.text
    result = erased.json()["data"]
    assert result["addressKind"] == "phone"
    assert result["rowsRemoved"]["recipients"] == 1 and result["rowsRemoved"]["item_batches"] >= 1
    assert admin.post(ERASURE, json={"address": second}).json()["data"]["totalRemoved"] >= 1
    held = admin.post(
        "/api/v1/admin/sql",
        json={"sql": f"SELECT address FROM v1_recipients WHERE operation_id = '{operation}'"},  # noqa: S608
    ).json()["data"]["rows"]
    assert held == [{"address": third}]
    assert first not in server.log_path.read_text()  # the log keeps a hash, not the address

    simulator.simulator.config.transient_failure_rate = 0.0
    retried = client.post(f"/retry/{operation}")
    assert retried.status_code == 202, retried.text
    retry = wait_terminal(client, retried.json()["data"]["retryOperationId"], timeout=60)
    assert retry["metrics"]["totalItems"] == 1 and retry["status"] == "Completed"
    assert [e["to"] for e in simulator.simulator.entries()] == [third]  # accepted sends

    admin.post(ERASURE, json={"address": third})
    gone = client.post(f"/retry/{operation}")
    assert gone.status_code == 410 and gone.json()["error"] == "RECIPIENTS_EXPIRED"
    admin.close()
