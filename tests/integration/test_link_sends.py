"""Bulk link sends end to end: REST -> Kafka -> worker -> provider simulator -> ClickHouse."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from api.auth import Role
from bulkops.simulator import SimulatorThread
from tests.integration.conftest import Server, provider_env
from tests.integration.test_codegen_flow import submit, wait_terminal
from tests.support import wait_for


def recipients(n: int, *, channel: str = "SMS", start: int = 0) -> list[dict[str, Any]]:
    people = []
    for i in range(start, start + n):
        person: dict[str, Any] = {
            "name": f"Çiftçi {i}",
            "personalizationData": {"region": "Antalya"},
        }
        if channel == "Email":
            person["email"] = f"farmer{i}@example.com"
        else:
            person["phoneNumber"] = f"+90532{i:07d}"
        people.append(person)
    return people


def body(n: int, channel: str = "SMS", **processing: Any) -> dict[str, Any]:
    return {
        "operationName": f"{channel} campaign",
        "recipients": recipients(n, channel=channel),
        "messageTemplate": "Merhaba {name}! {region} için: {link}",
        "channel": channel,
        "processing": {
            "batchSize": 100,
            "maxConcurrency": 20,
            "retryDelaySeconds": 0,
            **processing,
        },
    }


@pytest.mark.parametrize("channel", ["SMS", "WhatsApp", "Email"])
def test_five_thousand_recipients_each_delivered_once(
    make_server: Any, simulator: SimulatorThread, channel: str
) -> None:
    server: Server = make_server(
        **provider_env(
            simulator,
            sender_rate_sms=5000,
            sender_rate_whatsapp=5000,
            sender_rate_email=5000,
            address_check_processes=2,
            address_check_parallel_from=1000,  # the list's addresses checked in a pool
        )
    ).start()
    client = server.client(sponsor_id=21)
    operation_id = submit(client, body(5000, channel), "/send-links")
    assert "address checks: a pool of 2 processes started" in server.log_tail(400)
    status = wait_terminal(client, operation_id, timeout=180)
    assert status["status"] == "Completed", status
    assert status["metrics"]["successfulItems"] == 5000
    ledger = simulator.simulator.summary()
    assert ledger["perChannel"] == {channel: 5000}
    entries = simulator.simulator.entries(channel)
    assert {e["key"] for e in entries} == {f"{operation_id}:{i}" for i in range(5000)}
    sample = next(e for e in entries if e["key"] == f"{operation_id}:7")
    assert sample["body"] == "Merhaba Çiftçi 7! Antalya için: https://sponsor.example.com/redeem"
    history = client.get("/history").json()["data"][0]
    assert history["summary"]["channel"] == channel
    assert history["summary"]["totalCost"] == pytest.approx(
        5000 * {"SMS": 0.05, "WhatsApp": 0.03, "Email": 0.001}[channel]
    )


def ledger_keys(simulator: SimulatorThread) -> list[str]:
    return [e["key"] for e in simulator.simulator.entries()]


def test_rate_limit_is_held_without_429s(make_server: Any, simulator: SimulatorThread) -> None:
    simulator.simulator.config.rate_per_second = 50
    server: Server = make_server(**provider_env(simulator, sender_rate_sms=50)).start()
    client = server.client(sponsor_id=22)
    operation_id = submit(client, body(400, "SMS", batchSize=20), "/send-links")
    assert wait_terminal(client, operation_id, timeout=120)["status"] == "Completed"
    stamps = sorted(e["accepted_at"] for e in simulator.simulator.entries())
    assert len(stamps) == 400
    rate = (len(stamps) - 1) / (stamps[-1] - stamps[0])
    assert 45 <= rate <= 55, rate
    late_429s = [t for t in simulator.simulator.summary()["rateLimitedAt"] if t > stamps[0] + 1]
    assert late_429s == []
    # The one worker owns every item partition, so it holds the sender's whole rate.
    assert "pacing: 4 of 4 item partitions here, sender rates now SMS 50/s" in (
        server.log_path.read_text(errors="replace")
    )


def test_transient_failures_are_retried_until_delivered(
    make_server: Any, simulator: SimulatorThread
) -> None:
    simulator.simulator.config.fail_first_attempts = 2
    server: Server = make_server(**provider_env(simulator)).start()
    client = server.client(sponsor_id=24)
    operation_id = submit(
        client, body(200, "WhatsApp", retryAttempts=3, retryDelaySeconds=0), "/send-links"
    )
    status = wait_terminal(client, operation_id, timeout=120)
    assert status["status"] == "Completed", status
    assert status["metrics"]["successfulItems"] == 200
    summary = simulator.simulator.summary()
    assert summary["delivered"] == 200
    assert summary["failures"] == 400  # two 503s per recipient, each retried


def test_retries_exhausted_fail_as_retryable(make_server: Any, simulator: SimulatorThread) -> None:
    simulator.simulator.config.mode = "error500"
    server: Server = make_server(**provider_env(simulator)).start()
    client = server.client(sponsor_id=25)
    operation_id = submit(
        client, body(20, "SMS", retryAttempts=2, retryDelaySeconds=0), "/send-links"
    )
    status = wait_terminal(client, operation_id, timeout=60)
    assert status["status"] == "Failed"
    errors = status["metrics"]["errors"]
    assert len(errors) == 20
    assert {e["errorCategory"] for e in errors} == {"Processing"}
    assert all(e["isRetryable"] and e["retryCount"] == 2 for e in errors)
    assert simulator.simulator.summary()["requests"] == 60


def test_provider_down_fails_items_as_network_errors(
    make_server: Any, simulator: SimulatorThread
) -> None:
    from bulkops.localkafka import free_port

    env = provider_env(simulator)
    env["BULKOPS_SMS_API_URL"] = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    server: Server = make_server(**env).start()
    client = server.client(sponsor_id=26)
    operation_id = submit(
        client, body(10, "SMS", retryAttempts=1, retryDelaySeconds=0), "/send-links"
    )
    status = wait_terminal(client, operation_id, timeout=60)
    assert status["status"] == "Failed"
    assert {e["errorCode"] for e in status["metrics"]["errors"]} == {"NETWORK_ERROR"}
    assert {e["errorCategory"] for e in status["metrics"]["errors"]} == {"Network"}


def test_throttling_provider_is_waited_out(make_server: Any, simulator: SimulatorThread) -> None:
    simulator.simulator.config.mode = "throttle"
    simulator.simulator.config.throttle_retry_after = 0.5
    server: Server = make_server(**provider_env(simulator)).start()
    client = server.client(sponsor_id=27)
    operation_id = submit(client, body(50, "SMS", retryAttempts=0), "/send-links")
    from tests.support import wait_for

    wait_for(lambda: simulator.simulator.summary()["rateLimited"] >= 3, timeout=30, message="429s")
    simulator.simulator.config.mode = "normal"
    status = wait_terminal(client, operation_id, timeout=60)
    assert status["status"] == "Completed"
    assert simulator.simulator.summary()["delivered"] == 50


def test_stop_on_first_error(make_server: Any, simulator: SimulatorThread) -> None:
    server: Server = make_server(**provider_env(simulator)).start()
    client = server.client(sponsor_id=28)
    payload = body(
        300, "SMS", batchSize=10, maxConcurrency=1, stopOnFirstError=True, retryAttempts=0
    )
    payload["recipients"][40]["phoneNumber"] = "+905329999999"
    simulator.simulator.config.permanent_failure_rate = 0.0
    bad = "+905329999999"
    # only that recipient is refused by the provider
    original = simulator.simulator.decide

    def decide(channel: str, sender: str, key: str, to: str) -> tuple[int, str, float | None]:
        if to == bad:
            return 400, "INVALID_RECIPIENT", None
        return original(channel, sender, key, to)

    simulator.simulator.decide = decide  # type: ignore[method-assign]
    operation_id = submit(client, payload, "/send-links")
    status = wait_terminal(client, operation_id, timeout=60)
    metrics = status["metrics"]
    assert status["status"] == "PartiallyCompleted", status
    assert metrics["failedItems"] == 1
    assert metrics["skippedItems"] > 0
    assert metrics["successfulItems"] + metrics["failedItems"] + metrics["skippedItems"] == 300
    assert simulator.simulator.summary()["delivered"] == metrics["successfulItems"]
    codes = {e["errorCode"] for e in metrics["errors"]}
    assert {"SMS_21211", "STOP_ON_FIRST_ERROR"} <= codes


def test_budget_stops_before_it_is_exceeded(make_server: Any, simulator: SimulatorThread) -> None:
    server: Server = make_server(**provider_env(simulator)).start()
    client = server.client(sponsor_id=29)
    payload = body(300, "SMS", batchSize=25)
    payload["metadata"] = {"budgetLimit": 5.0}  # 100 SMS at 0.05
    operation_id = submit(client, payload, "/send-links")
    status = wait_terminal(client, operation_id, timeout=60)
    metrics = status["metrics"]
    assert status["status"] == "PartiallyCompleted"
    assert metrics["successfulItems"] == 100
    assert metrics["skippedItems"] == 200
    assert simulator.simulator.summary()["delivered"] == 100
    assert {e["errorCode"] for e in metrics["errors"]} == {"BUDGET_EXCEEDED"}
    assert {e["errorCategory"] for e in metrics["errors"]} == {"Business"}
    history = client.get("/history").json()["data"][0]
    assert history["summary"]["totalCost"] == pytest.approx(5.0)


def test_validation_warnings_and_skipped_items(
    make_server: Any, simulator: SimulatorThread
) -> None:
    server: Server = make_server(**provider_env(simulator)).start()
    client = server.client(sponsor_id=30)
    people = recipients(6)
    people[1]["phoneNumber"] = "12345"  # invalid
    people[2]["phoneNumber"] = people[0]["phoneNumber"]  # duplicate
    del people[3]["phoneNumber"]  # missing address
    people[4]["phoneNumber"] = (
        "0532 000 00 04"  # national format, same as +905320000004? no: index 4
    )
    people[5]["sponsorshipCode"] = "NOPE-1"  # never generated
    payload = {**body(0), "recipients": people, "messageTemplate": "Merhaba {name}: {link}"}
    response = client.post("/send-links", json=payload)
    assert response.status_code == 202, response.text
    data = response.json()["data"]
    assert sorted(data["validationWarnings"]) == sorted(
        [
            "1 invalid phone numbers",
            "1 duplicate recipients",
            "1 recipients without the address their channel needs",
            "1 sponsorship codes not found",
        ]
    )
    status = wait_terminal(client, data["operationId"], timeout=60)
    assert status["metrics"]["successfulItems"] == 2
    assert status["metrics"]["skippedItems"] == 4
    assert sorted(e["to"] for e in simulator.simulator.entries()) == [
        "+905320000000",
        "+905320000004",
    ]


def test_statistics_are_counted_from_real_rows(
    make_server: Any, simulator: SimulatorThread
) -> None:
    server: Server = make_server(**provider_env(simulator)).start()
    client = server.client(sponsor_id=31)
    sms = submit(client, body(100, "SMS"), "/send-links")
    assert wait_terminal(client, sms)["status"] == "Completed"
    simulator.simulator.config.permanent_failure_rate = 0.3
    whatsapp = submit(client, body(50, "WhatsApp", retryAttempts=0), "/send-links")
    wa = wait_terminal(client, whatsapp)["metrics"]
    codes = submit(client, {"subscriptionTierId": 1, "quantity": 30})
    wait_terminal(client, codes)
    assert 0 < wa["successfulItems"] < 50
    # The rollups are recomputed every 10 seconds: wait for one that has all three ended (a
    # refresh that ran while the last one was still running counts it, but not as ended).
    stats = wait_for(
        lambda: (
            (data := client.get("/statistics").json()["data"])["successful_operations"]
            + data["partially_completed_operations"]
            == 3
            and data
        ),
        timeout=40,
        interval=0.5,
        message="statistics with the three operations",
    )
    assert stats["as_of"] is not None
    other = server.client(sponsor_id=32)
    assert other.get("/statistics").json()["data"]["total_operations"] == 0
    ok = wa["successfulItems"]
    assert stats["total_operations"] == 3
    assert stats["successful_operations"] == 2
    assert stats["partially_completed_operations"] == 1
    assert stats["total_items_processed"] == 180
    assert stats["total_successful_items"] == 130 + ok
    assert stats["overall_success_rate"] == round((130 + ok) / 180 * 100, 1)
    assert stats["last_30_days"] == {
        "operations_count": 3,
        "links_sent": 100 + ok,
        "codes_generated": 30,
        "success_rate": round((130 + ok) / 180 * 100, 1),
    }
    daily = stats["daily_last_30_days"]
    assert [d["date"] for d in daily] == sorted(d["date"] for d in daily)
    assert client.get(f"/status/{sms}").json()["data"]["createdAt"][:10] in {
        d["date"] for d in daily
    }
    assert sum(d["operations_count"] for d in daily) == 3
    assert sum(d["items_processed"] for d in daily) == 180
    breakdown = stats["channel_breakdown"]
    assert breakdown["sms"]["count"] == 100 and breakdown["sms"]["success_rate"] == 100.0
    assert breakdown["whatsapp"]["count"] == 50
    assert breakdown["whatsapp"]["success_rate"] == round(ok / 50 * 100, 1)
    assert stats["total_cost"] == pytest.approx(100 * 0.05 + ok * 0.03)
    assert sum(slot["operations"] for slot in stats["popular_times"]) == 3

    # What analysts see of the same sends: each attempted one timed at the provider.
    sql = (
        "SELECT channel, count(), countIf(provider_latency_ms > 0) FROM v1_sends "
        "WHERE sponsor_id = 31 AND attempts > 0 GROUP BY channel ORDER BY channel"
    )
    answer = httpx.post(
        f"{server.base_url}/api/v1/admin/sql",
        json={"sql": sql},
        headers={"Authorization": f"Bearer {server.token(None, Role.ADMIN)}"},
    ).json()["data"]["rows"]
    assert [list(row.values()) for row in answer] == [["SMS", 100, 100], ["WhatsApp", 50, 50]]


def test_templates_seed_and_saved(server: Server) -> None:
    client = server.client(sponsor_id=33)
    seeded = client.get("/templates").json()["data"]
    assert [t["name"] for t in seeded["link_send_templates"]] == [
        "Sponsorship Invitation",
        "SMS Campaign",
    ]
    assert len(seeded["code_generation_templates"]) == 3
    saved = client.post(
        "/templates",
        json={"name": "Harvest", "channel": "Email", "message": "Merhaba {name}: {link}"},
    )
    assert saved.status_code == 201, saved.text
    again = client.post(
        "/templates", json={"name": "Harvest", "channel": "SMS", "message": "{name} {link}"}
    )
    assert again.status_code == 201
    names = [
        (t["name"], t["channel"], t["source"])
        for t in client.get("/templates").json()["data"]["link_send_templates"]
    ]
    assert names[-1] == ("Harvest", "SMS", "saved") and len(names) == 3
    other = server.client(sponsor_id=34).get("/templates").json()["data"]["link_send_templates"]
    assert len(other) == 2
    bad = client.post("/templates", json={"name": "Broken", "message": "Merhaba {name"})
    assert bad.status_code == 422
    assert bad.json()["details"]["errors"][0]["field"] == "message"


def test_items_aggregates_and_next_steps(make_server: Any, simulator: SimulatorThread) -> None:
    server: Server = make_server(**provider_env(simulator, sender_rate_whatsapp=40)).start()
    client = server.client(sponsor_id=35)
    simulator.simulator.config.permanent_failure_rate = 0.3
    operation_id = submit(
        client, body(120, "WhatsApp", batchSize=20, retryAttempts=0), "/send-links"
    )
    early = client.get(f"/aggregates/{operation_id}")
    assert early.status_code == 409 and early.json()["error"] == "NOT_READY"
    from tests.support import wait_for

    running = wait_for(
        lambda: (
            (d := client.get(f"/status/{operation_id}").json()["data"])["status"] == "Processing"
            and d
        ),
        timeout=30,
        message="processing",
    )
    assert any("/cancel/" in step for step in running["nextSteps"])

    status = wait_terminal(client, operation_id, timeout=60)
    metrics = status["metrics"]
    failed, ok = metrics["failedItems"], metrics["successfulItems"]
    assert status["status"] == "PartiallyCompleted" and failed > 0
    assert any("/retry/" in step for step in status["nextSteps"])

    aggregates = client.get(f"/aggregates/{operation_id}").json()["data"]
    assert aggregates["byStatus"] == {"Failed": failed, "Success": ok}
    assert aggregates["byError"] == [
        {
            "errorCode": "WHATSAPP_131026",
            "errorCategory": "Validation",
            "count": failed,
            "retryable": 0,
        }
    ]
    assert aggregates["totalCost"] == pytest.approx(ok * 0.03)

    pages, cursor = [], 0
    while cursor is not None:
        page = client.get(
            f"/items/{operation_id}", params={"status": "Failed", "cursor": cursor, "limit": 7}
        )
        assert page.status_code == 200, page.text
        data = page.json()["data"]
        pages.extend(data["items"])
        cursor = data["nextCursor"]
    assert len(pages) == failed
    assert all(i["status"] == "Failed" and i["errorCode"] == "WHATSAPP_131026" for i in pages)
    assert [i["index"] for i in pages] == sorted(i["index"] for i in pages)

    filtered = client.get("/history", params={"status": "PartiallyCompleted"}).json()
    assert [e["operationId"] for e in filtered["data"]] == [operation_id]
    assert (
        client.get("/history", params={"status": "Completed"}).json()["pagination"]["totalCount"]
        == 0
    )
    assert server.client(sponsor_id=36).get(f"/items/{operation_id}").status_code == 404
