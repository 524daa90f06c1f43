"""Bulk link sends end to end: REST -> Kafka -> worker -> provider simulator -> ClickHouse."""

from __future__ import annotations

from typing import Any

import pytest

from bulkops.simulator import SimulatorThread
from tests.integration.conftest import Server, provider_env
from tests.integration.test_codegen_flow import submit, wait_terminal


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
            simulator, sender_rate_sms=5000, sender_rate_whatsapp=5000, sender_rate_email=5000
        )
    ).start()
    client = server.client(sponsor_id=21)
    operation_id = submit(client, body(5000, channel), "/send-links")
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
