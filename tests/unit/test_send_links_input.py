"""send-links at the REST edge: validation, warnings, chunking; a fake producer records Kafka."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from api.producer import ProduceError
from schemas.messages import OperationAbort, OperationRequested, OperationsMessage, RecipientChunk
from schemas.requests import SEED_LINK_SEND_EXAMPLE
from tests.unit.conftest import FakeMessageSink, auth

URL = "/api/v1/bulk-operations/send-links"


def seed() -> dict[str, Any]:
    return copy.deepcopy(SEED_LINK_SEND_EXAMPLE)


def queued(sink: FakeMessageSink) -> list[Any]:
    return [
        OperationsMessage.validate_json(v) for t, _, v in sink.sent if t.endswith(".operations")
    ]


def test_seed_example_is_accepted_and_queued_in_order(
    client: TestClient, sink: FakeMessageSink
) -> None:
    response = client.post(URL, json=seed(), headers=auth())
    assert response.status_code == 202, response.text
    data = response.json()["data"]
    assert data["operationType"] == "BulkLinkSend" and data["totalItems"] == 2
    assert data["validationWarnings"] == []
    header, chunk = queued(sink)
    assert isinstance(header, OperationRequested) and isinstance(chunk, RecipientChunk)
    assert header.link_send is not None and header.link_send.price_per_message == 0.03
    first, second = chunk.recipients
    assert first.address == "+905551234567"
    assert (
        first.message
        == "Merhaba Ahmet Çiftçi, Antalya bölgesi için özel sponsorluk! https://sponsor.example.com/redeem"
    )
    assert second.address == "+905321234567"  # national format, read as TR
    assert header.priority == 5


def test_the_operations_priority_is_queued_and_shown(
    client: TestClient, sink: FakeMessageSink
) -> None:
    response = client.post(URL, json=seed() | {"priority": 9}, headers=auth())
    assert response.status_code == 202, response.text
    header = queued(sink)[0]
    assert isinstance(header, OperationRequested) and header.priority == 9


def invalid(response: Any, field: str) -> None:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["success"] is False and body["error"] == "VALIDATION_FAILED"
    assert field in [e["field"] for e in body["details"]["errors"]]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"recipients": []}, "recipients"),
        ({"channel": "Pigeon"}, "channel"),
        ({"messageTemplate": "Merhaba {name}, {farmSize} dönüm"}, "messageTemplate"),
        ({"metadata": {"budgetLimit": 0.01}}, "metadata.budgetLimit"),
        ({"scheduling": {"isScheduled": True}}, "scheduling"),
        ({"processing": {"batchSize": 0}}, "processing.batchSize"),
        ({"unknown": 1}, "unknown"),
        ({"priority": 11}, "priority"),
        ({"priority": "9"}, "priority"),
    ],
)
def test_bad_requests_name_the_field_and_queue_nothing(
    client: TestClient, sink: FakeMessageSink, change: dict[str, Any], field: str
) -> None:
    invalid(client.post(URL, json={**seed(), **change}, headers=auth()), field)
    assert sink.sent == []


def test_recipients_over_the_quota(client: TestClient, sink: FakeMessageSink) -> None:
    body = seed()
    body["recipients"] = [{"name": f"n{i}", "phoneNumber": f"+90532{i:07d}"} for i in range(5001)]
    invalid(client.post(URL, json=body, headers=auth()), "recipients")
    assert sink.sent == []


def test_unknown_placeholder_in_a_custom_message(client: TestClient, sink: FakeMessageSink) -> None:
    body = seed()
    body["recipients"][1]["customMessage"] = "Selam {nickname}"
    invalid(client.post(URL, json=body, headers=auth()), "recipients.1.customMessage")


def test_no_valid_recipient_is_422_with_the_seed_details(
    client: TestClient, sink: FakeMessageSink
) -> None:
    body = seed()
    body["channel"] = "Email"
    body["recipients"] = [
        {"name": "a", "email": "not-an-email"},
        {"name": "b"},
        {"name": "c", "email": "c@example.com", "sponsorshipCode": "UNKNOWN-1"},
    ]
    body["messageTemplate"] = "Merhaba {name} {link}"
    response = client.post(URL, json=body, headers=auth())
    assert response.status_code == 422
    assert response.json()["details"] == {
        "invalidEmails": 1,
        "missingAddresses": 1,
        "missingCodes": 1,
    }
    assert sink.sent == []


def test_invalid_and_duplicate_recipients_are_skipped_with_warnings(
    client: TestClient, sink: FakeMessageSink
) -> None:
    body = seed()
    body["channel"] = "Email"
    body["messageTemplate"] = "Merhaba {name}, kodunuz {code}: {link}"
    body["recipients"] = [
        {"name": "a", "email": "Ahmet@Example.com", "sponsorshipCode": "AGRI-2025-001"},
        {"name": "b", "email": "ahmet@example.com", "sponsorshipCode": "AGRI-2025-001"},
        {"name": "c", "email": "bad@@example.com", "sponsorshipCode": "AGRI-2025-001"},
        {"name": "d", "email": "d@example.com"},
    ]
    response = client.post(URL, json=body, headers=auth())
    assert response.status_code == 202, response.text
    assert sorted(response.json()["data"]["validationWarnings"]) == [
        "1 duplicate recipients",
        "1 invalid e-mail addresses",
        "1 recipients missing a template placeholder's value",
    ]
    _, chunk = queued(sink)
    assert [r.skip.error_code if r.skip else None for r in chunk.recipients] == [
        None,
        "DUPLICATE_RECIPIENT",
        "INVALID_EMAIL",
        "MISSING_PERSONALIZATION",
    ]
    assert chunk.recipients[0].message == (
        "Merhaba a, kodunuz AGRI-2025-001: https://sponsor.example.com/redeem/AGRI-2025-001"
    )


def test_templates_cannot_reach_attributes(client: TestClient, sink: FakeMessageSink) -> None:
    body = seed()
    body["messageTemplate"] = "{name.__class__} {name!r} {link}"
    response = client.post(URL, json=body, headers=auth())
    assert response.status_code == 202
    _, chunk = queued(sink)
    assert chunk.recipients[1].message.startswith("{name.__class__} {name!r} https://")


def _second_message_fails(sink: FakeMessageSink, *, possibly_persisted: bool) -> None:
    original = sink.produce
    calls = {"n": 0}

    def produce(topic: str, key: bytes, value: bytes) -> asyncio.Future[None]:
        calls["n"] += 1
        if calls["n"] != 2:
            return original(topic, key, value)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_exception(ProduceError("broker said no", possibly_persisted=possibly_persisted))
        return future

    sink.produce = produce  # type: ignore[method-assign]


def test_a_chunk_not_queued_means_the_send_will_not_run(
    client: TestClient, sink: FakeMessageSink
) -> None:
    _second_message_fails(sink, possibly_persisted=False)
    response = client.post(URL, json=seed(), headers=auth())
    assert response.status_code == 503
    assert response.json()["details"]["outcome"] == "not_queued"
    header, abort = queued(sink)
    assert isinstance(header, OperationRequested) and isinstance(abort, OperationAbort)
    assert abort.submission_id == header.submission_id is not None


def test_an_unconfirmed_chunk_means_the_send_may_run(
    client: TestClient, sink: FakeMessageSink
) -> None:
    _second_message_fails(sink, possibly_persisted=True)
    response = client.post(URL, json=seed(), headers=auth())
    assert response.status_code == 503
    assert response.json()["details"]["outcome"] == "unknown"
    assert not any(isinstance(m, OperationAbort) for m in queued(sink))


def test_a_large_request_is_split_into_chunks_under_one_megabyte(
    client: TestClient, sink: FakeMessageSink
) -> None:
    n = 100_000
    body = seed()
    body["channel"] = "SMS"
    body["recipients"] = [
        {
            "name": f"Çiftçi Numara {i}",
            "phoneNumber": f"+90532{i:07d}",
            "personalizationData": {"region": "Antalya", "cropType": "domates", "farm": f"F-{i}"},
            "customMessage": (
                "Merhaba {name}, {region} bölgesindeki {cropType} üreticileri için "
                "özel sponsorluk: {link}"
            ),
        }
        for i in range(n)
    ]
    body["processing"] = {"batchSize": 100}
    raw = orjson.dumps(body)
    assert len(raw) > 18_000_000
    client.app.state.settings = client.app.state.settings.model_copy(  # type: ignore[attr-defined]
        update={"max_items_per_operation": n}
    )
    response = client.post(URL, content=raw, headers={**auth(), "Content-Type": "application/json"})
    assert response.status_code == 202, response.text[:500]
    values = [v for t, _, v in sink.sent if t.endswith(".operations")]
    assert max(len(v) for v in values) < 1_000_000
    chunks = [OperationsMessage.validate_json(v) for v in values[1:]]
    indexes = [r.index for c in chunks for r in c.recipients]
    assert indexes == list(range(n))
    assert all(c.start_index % 100 == 0 for c in chunks)


def test_a_body_over_the_send_links_limit_is_413(client: TestClient, sink: FakeMessageSink) -> None:
    limit = client.app.state.settings.max_link_send_body_bytes  # type: ignore[attr-defined]
    response = client.post(
        URL,
        content=b"x" * (limit + 1),
        headers={**auth(), "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["details"] == {"maxBytes": limit}
    assert sink.sent == []
