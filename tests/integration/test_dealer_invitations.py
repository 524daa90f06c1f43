"""Dealer invitations from Excel, end to end: REST -> Kafka -> worker -> simulator -> ClickHouse."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from openpyxl import load_workbook

from bulkops.simulator import SimulatorThread
from tests.integration.conftest import Server, provider_env
from tests.integration.test_codegen_flow import submit, wait_terminal
from tests.support import wait_for
from tests.unit.test_workbook import xlsx

DEALER = "/api/v1/sponsorship/dealer"


def dealer_rows(n: int, tier: str, count: int, start: int = 0) -> list[list[Any]]:
    return [
        [f"Bayi{i}@Example.com", f"0532{i:07d}", f"Çiftçi Bayi {i}", count, tier]
        for i in range(start, start + n)
    ]


def sponsor_client(server: Server, sponsor_id: int) -> httpx.Client:
    client = httpx.Client(
        base_url=server.base_url,
        headers={"Authorization": f"Bearer {server.token(sponsor_id)}"},
        timeout=60,
    )
    server._clients.append(client)
    return client


def stock(server: Server, sponsor_id: int, tier_id: int, quantity: int) -> None:
    """Fill the sponsor's inventory of one tier through generate-codes."""
    client = server.client(sponsor_id=sponsor_id)
    operation_id = submit(
        client,
        {"subscriptionTierId": tier_id, "quantity": quantity, "processing": {"batchSize": 500}},
    )
    assert wait_terminal(client, operation_id, timeout=120)["status"] == "Completed"


def invite(client: httpx.Client, rows: list[list[Any]], **form: Any) -> httpx.Response:
    return client.post(
        f"{DEALER}/invite-bulk",
        files={"file": ("bayiler.xlsx", xlsx(rows), "application/octet-stream")},
        data={"useRowSpecificCounts": "true", **{k: str(v) for k, v in form.items()}},
    )


def wait_job(client: httpx.Client, job_id: str, timeout: float = 120) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        response = client.get(f"{DEALER}/bulk-status/{job_id}")
        if response.status_code == 404:
            return None
        data = dict(response.json()["data"])
        return data if data["status"] not in ("Pending", "Processing", "Paused") else None

    return wait_for(finished, timeout=timeout, interval=0.2, message=f"job {job_id} finished")


def report(client: httpx.Client, job_id: str) -> list[dict[str, Any]]:
    response = client.get(f"{DEALER}/bulk-status/{job_id}/report.xlsx")
    assert response.status_code == 200
    sheet = load_workbook(io.BytesIO(response.content), read_only=True).active
    assert sheet is not None
    lines = list(sheet.iter_rows(values_only=True))
    header = [str(h) for h in lines[0]]
    return [dict(zip(header, line, strict=True)) for line in lines[1:]]


def inventory(client: httpx.Client) -> dict[str, dict[str, Any]]:
    data = client.get("/api/v1/sponsorship/codes/inventory").json()["data"]
    return {row["tier"]: row for row in data}


def test_two_thousand_dealers_end_to_end(make_server: Any, simulator: SimulatorThread) -> None:
    server: Server = make_server(**provider_env(simulator, sender_rate_sms=5000)).start()
    stock(server, 71, tier_id=1, quantity=5000)
    client = sponsor_client(server, 71)
    response = invite(client, dealer_rows(2000, "S", 2))
    assert response.status_code == 202, response.text
    job_id = response.json()["data"]["jobId"]

    job = wait_job(client, job_id)
    assert job["status"] == "Completed", job
    assert job["successfulInvitations"] == job["totalDealers"] == 2000
    assert job["failedInvitations"] == 0 and job["errorSummary"]["errors"] == []
    assert job["invitationType"] == "Invite"  # the form's default, as uploaded

    ledger = simulator.simulator.entries("SMS")
    assert len(ledger) == 2000
    assert len({e["to"] for e in ledger}) == 2000
    assert all("Bayi davetiniz hazır" in e["body"] for e in ledger)

    rows = report(client, job_id)
    assert len(rows) == 2000 and {r["Status"] for r in rows} == {"Success"}
    codes = [c for r in rows for c in str(r["Codes"]).split()]
    assert len(codes) == len(set(codes)) == 4000
    assert len({r["InvitationToken"] for r in rows}) == 2000
    assert rows[0]["Email"] == "bayi0@example.com" and rows[0]["Row"] == 2

    stocked = inventory(client)["S"]
    assert (stocked["available"], stocked["reserved"], stocked["transferred"]) == (1000, 0, 4000)

    again = invite(client, dealer_rows(1, "S", 1))
    assert again.status_code == 422
    assert again.json()["details"]["errors"][0]["error"] == (
        "A dealer with this email already exists"
    )
    history = client.get(f"{DEALER}/bulk-history").json()["data"]
    assert [j["jobId"] for j in history["jobs"]] == [job_id]
    assert history["jobs"][0]["invitationType"] == "Invite"
    other = sponsor_client(server, 72)
    assert other.get(f"{DEALER}/bulk-status/{job_id}").status_code == 404
    assert other.get(f"{DEALER}/bulk-status/{job_id}/report.xlsx").status_code == 404
    assert other.get(f"{DEALER}/bulk-history").json()["data"]["jobs"] == []


def test_concurrent_uploads_never_over_allocate(
    make_server: Any, simulator: SimulatorThread
) -> None:
    server: Server = make_server(**provider_env(simulator, sender_rate_sms=5000)).start()
    stock(server, 73, tier_id=2, quantity=100)
    client = sponsor_client(server, 73)
    uploads = [dealer_rows(40, "M", 2, start=0), dealer_rows(40, "M", 2, start=100)]
    with ThreadPoolExecutor(2) as pool:
        responses = list(pool.map(lambda rows: invite(client, rows, sendSms="false"), uploads))
    accepted = [r.json()["data"]["jobId"] for r in responses if r.status_code == 202]
    refused = [r for r in responses if r.status_code != 202]
    assert accepted, [r.text for r in responses]
    assert all(r.json()["error"] == "INSUFFICIENT_CODES" for r in refused)

    handed_out: list[str] = []
    invited = 0
    for job_id in accepted:
        job = wait_job(client, job_id)
        rows = report(client, job_id)
        invited += job["successfulInvitations"]
        handed_out += [c for r in rows for c in str(r["Codes"] or "").split()]
        for row in rows:
            if row["Status"] != "Success":
                assert row["Status"] == "Skipped" and str(row["Error"]).startswith("Yetersiz kod")
    assert len(handed_out) == len(set(handed_out)) == invited * 2 <= 100
    assert invited == (50 if len(accepted) == 2 else 40)
    assert inventory(client)["M"]["transferred"] == invited * 2


def test_a_worker_killed_mid_job_assigns_nothing_twice(
    make_server: Any, simulator: SimulatorThread
) -> None:
    server: Server = make_server(**provider_env(simulator, sender_rate_sms=300)).start()
    stock(server, 74, tier_id=3, quantity=3000)
    client = sponsor_client(server, 74)
    response = invite(client, dealer_rows(1500, "L", 2))
    assert response.status_code == 202, response.text
    job_id = response.json()["data"]["jobId"]
    wait_for(
        lambda: 200 < simulator.simulator.summary()["delivered"] < 1200,
        timeout=60,
        interval=0.02,
        message="job midway",
    )
    server.stop(kill=True)
    server.start()
    client = sponsor_client(server, 74)
    job = wait_job(client, job_id, timeout=180)
    assert job["status"] == "Completed", job
    assert job["successfulInvitations"] == 1500
    rows = report(client, job_id)
    assert len(rows) == 1500 and len({r["Row"] for r in rows}) == 1500
    codes = [c for r in rows for c in str(r["Codes"]).split()]
    assert len(codes) == len(set(codes)) == 3000
    assert len(simulator.simulator.entries("SMS")) == 1500, "one invitation SMS per dealer"
    stocked = inventory(client)["L"]
    assert (stocked["available"], stocked["reserved"], stocked["transferred"]) == (0, 0, 3000)


def test_the_job_is_an_ordinary_operation(make_server: Any, simulator: SimulatorThread) -> None:
    server: Server = make_server(**provider_env(simulator, sender_rate_sms=5000)).start()
    stock(server, 75, tier_id=4, quantity=10)
    client = sponsor_client(server, 75)
    response = invite(client, dealer_rows(8, "XL", 2))
    assert response.status_code == 422
    assert response.json()["message"] == "Yetersiz kod (XL tier). Gerekli: 16, Mevcut: 10"

    response = invite(client, [*dealer_rows(4, "XL", 2), ["=1+2", "053", "X", 1, "XL"]])
    assert response.status_code == 422 and response.json()["details"]["errorCount"] == 3

    job_id = invite(client, dealer_rows(5, "XL", 2)).json()["data"]["jobId"]
    job = wait_job(client, job_id)
    assert job["status"] == "Completed"
    operations = server.client(sponsor_id=75)
    status = operations.get(f"/status/{job_id}").json()["data"]
    assert status["operationType"] == "BulkDealerInvitation"
    assert status["metrics"]["successfulItems"] == 5
    history = operations.get("/history").json()["data"]
    assert job_id in {entry["operationId"] for entry in history}


def test_failed_invitations_give_codes_back_and_retry_invites_them(
    make_server: Any, simulator: SimulatorThread
) -> None:
    simulator.simulator.config.mode = "error500"
    server: Server = make_server(**provider_env(simulator)).start()
    stock(server, 76, tier_id=1, quantity=30)
    client = sponsor_client(server, 76)
    job_id = invite(client, dealer_rows(10, "S", 3)).json()["data"]["jobId"]
    job = wait_job(client, job_id, timeout=90)
    assert job["status"] == "Failed" and job["failedInvitations"] == 10
    assert len(job["errorSummary"]["errors"]) == 10
    assert job["errorSummary"]["errors"][0]["rowNumber"] == 2
    assert inventory(client)["S"]["available"] == 30, "a failed invitation releases its codes"
    assert {r["Status"] for r in report(client, job_id)} == {"Failed"}

    simulator.simulator.config.mode = "normal"
    retried = server.client(sponsor_id=76).post(f"/retry/{job_id}")
    assert retried.status_code == 202, retried.text
    retry_id = retried.json()["data"]["retryOperationId"]
    again = wait_job(client, retry_id)
    assert again["status"] == "Completed" and again["successfulInvitations"] == 10
    rows = report(client, retry_id)
    codes = [c for r in rows for c in str(r["Codes"]).split()]
    assert len(codes) == len(set(codes)) == 30
    assert [r["Row"] for r in rows] == list(range(2, 12))
    assert inventory(client)["S"]["transferred"] == 30
