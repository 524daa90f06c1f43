"""``dryRun=true`` on every submit: the same validation (422s and warnings) as a real submit,
the price, the plan and the quota it would take; nothing queued and nothing stored."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from schemas.requests import SEED_CODE_GENERATION_EXAMPLE, SEED_LINK_SEND_EXAMPLE
from tests.unit.conftest import FakeMessageSink, api_client, auth
from tests.unit.test_dealer_api import rows, upload
from tests.unit.test_workbook import xlsx

BASE = "/api/v1/bulk-operations"


def links(**fields: Any) -> dict[str, Any]:
    return {**copy.deepcopy(SEED_LINK_SEND_EXAMPLE), **fields}


def dry(client: TestClient, path: str, body: Any) -> Any:
    return client.post(f"{BASE}/{path}", params={"dryRun": "true"}, json=body, headers=auth())


def test_a_link_send_is_priced_and_planned_and_not_queued(
    client: TestClient, sink: FakeMessageSink
) -> None:
    body = links()
    body["recipients"].append({"name": "No phone", "phoneNumber": "12"})
    answer = dry(client, "send-links", body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["message"].startswith("Dry run")
    data = answer.json()["data"]
    assert data["dryRun"] is True and data["operationType"] == "BulkLinkSend"
    assert (data["totalItems"], data["validItems"], data["batches"]) == (3, 2, 1)
    assert data["estimatedCost"] == pytest.approx(2 * 0.03)  # WhatsApp
    assert any("phone" in w.lower() for w in data["validationWarnings"])
    assert data["quota"]["wouldUse"]["operationsToday"] == 1
    assert data["quota"]["refusal"] is None
    assert sink.sent == []


def test_a_scheduled_spread_send_says_when_it_starts_and_ends(client: TestClient) -> None:
    start = datetime.now(UTC) + timedelta(days=2)
    body = links()
    body["scheduling"] = {
        "isScheduled": True,
        "scheduledDate": start.isoformat(),
        "timeZone": "UTC",
        "spreadOverTime": True,
        "spreadDurationMinutes": 120,
    }
    body["processing"]["batchSize"] = 1
    data = dry(client, "send-links", body).json()["data"]
    planned = datetime.fromisoformat(data["plannedStart"])
    assert abs((planned - start).total_seconds()) < 1
    last = datetime.fromisoformat(data["releasesEndAt"])
    assert timedelta(minutes=59) < last - planned <= timedelta(minutes=120)
    assert datetime.fromisoformat(data["estimatedCompletionTime"]) > last


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("send-links", links(channel="Fax")),
        ("send-links", links(messageTemplate="Merhaba {nobody}: {link}")),
        ("send-links", links(recipients=[{"name": "x", "phoneNumber": "1"}])),
        ("generate-codes", {**SEED_CODE_GENERATION_EXAMPLE, "quantity": 0}),
        ("generate-codes", {**SEED_CODE_GENERATION_EXAMPLE, "quantity": 10**9}),
    ],
)
def test_a_dry_run_of_a_bad_request_is_the_same_422(
    client: TestClient, sink: FakeMessageSink, path: str, body: dict[str, Any]
) -> None:
    real = client.post(f"{BASE}/{path}", json=body, headers=auth())
    trial = dry(client, path, body)
    assert real.status_code == trial.status_code == 422
    assert trial.json() == real.json()
    assert sink.sent == []


def test_codes_dry_run_reports_the_quota_it_would_break(sink: FakeMessageSink) -> None:
    with api_client(sink, quota_max_items_per_day=100) as client:
        body = {**SEED_CODE_GENERATION_EXAMPLE, "quantity": 500, "batches": []}
        answer = dry(client, "generate-codes", body)
        assert answer.status_code == 200
        quota = answer.json()["data"]["quota"]
        assert quota["refusal"]["quota"] == "maxItemsPerDay"
        assert quota["limits"]["maxItemsPerDay"] == 100
        assert quota["wouldUse"]["itemsToday"] == 500
    assert sink.sent == []


def test_a_dealer_upload_dry_run_checks_every_row(
    client: TestClient, sink: FakeMessageSink
) -> None:
    good = upload(client, xlsx(rows(5)), params={"dryRun": "true"})
    assert good.status_code == 200, good.text
    data = good.json()["data"]
    assert data["operationType"] == "BulkDealerInvitation" and data["totalItems"] == 5
    assert data["estimatedCost"] == pytest.approx(5 * 0.05)
    bad = upload(client, xlsx([["not-an-email", "1", "", 1, "Q"]]), params={"dryRun": "true"})
    assert bad.status_code == 422
    assert sink.sent == []


def test_dry_run_must_be_a_boolean(client: TestClient) -> None:
    answer = client.post(
        f"{BASE}/generate-codes",
        params={"dryRun": "maybe"},
        json=SEED_CODE_GENERATION_EXAMPLE,
        headers=auth(),
    )
    assert answer.status_code == 422
    assert answer.json()["details"]["errors"][0]["field"] == "dryRun"
