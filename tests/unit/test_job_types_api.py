"""Job types through the REST API, the fake producer feeding the view as the topic would:
Admin-only registration, idempotent re-registration, conflicts, changes and disabling, who
sees what, and bad specs refused with the field named."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.auth import Role
from core.topics import Topics
from schemas.jobs import SEED_JOB_TYPE_EXAMPLE
from tests.unit.conftest import (
    FakeMessageSink,
    auth,
    job_types_client,
)

TYPES = "/api/v1/bulk-operations/job-types"
TOPIC = Topics("unit").job_types.name


@pytest.fixture
def client(sink: FakeMessageSink) -> Iterator[TestClient]:
    with job_types_client(sink) as client:
        yield client


def admin() -> dict[str, str]:
    return auth(None, Role.ADMIN)


def spec(**changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(SEED_JOB_TYPE_EXAMPLE)
    body.update(changes)
    return body


def nested(depth: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(depth):
        schema = {"type": "array", "items": schema}
    return schema


def written(sink: FakeMessageSink) -> list[tuple[str, bytes, bytes]]:
    return [m for m in sink.sent if m[0] == TOPIC]


def test_an_admin_registers_a_type_and_everyone_allowed_sees_it(
    client: TestClient, sink: FakeMessageSink
) -> None:
    answer = client.post(TYPES, json=spec(), headers=admin())
    assert answer.status_code == 201, answer.text
    data = answer.json()["data"]
    assert data["name"] == "ticket:update_status"
    assert (data["enabled"], data["version"]) == (True, 1)
    assert data["topic"] == "unit.jobs.ticket.update_status"
    assert data["spec"]["itemSchema"] == SEED_JOB_TYPE_EXAMPLE["itemSchema"]
    assert data["spec"]["timeoutSeconds"] == 30
    assert [key for _, key, _ in written(sink)] == [b"ticket:update_status"]
    assert [t.name for t in sink.created_topics] == ["unit.jobs.ticket.update_status"]

    listed = client.get(TYPES, headers=auth(7)).json()["data"]
    assert listed["total"] == 1
    assert listed["jobTypes"][0]["name"] == "ticket:update_status"
    one = client.get(f"{TYPES}/ticket:update_status", headers=auth(7))
    assert one.status_code == 200
    assert one.json()["data"]["updatedBy"] == "u"


def test_the_same_registration_twice_writes_once(client: TestClient, sink: FakeMessageSink) -> None:
    assert client.post(TYPES, json=spec(), headers=admin()).status_code == 201
    again = client.post(TYPES, json=spec(), headers=admin())
    assert again.status_code == 200
    assert again.json()["message"] == "Job type already registered"
    assert len(written(sink)) == 1
    other = client.post(TYPES, json=spec(maxRetries=5), headers=admin())
    assert other.status_code == 409
    assert other.json()["error"] == "JOB_TYPE_EXISTS"
    assert len(written(sink)) == 1


def test_only_an_admin_registers_changes_or_disables(
    client: TestClient, sink: FakeMessageSink
) -> None:
    assert client.post(TYPES, json=spec(), headers=auth(7)).status_code == 403
    assert client.post(TYPES, json=spec(), headers=admin()).status_code == 201
    name = f"{TYPES}/ticket:update_status"
    assert client.put(name, json=spec(maxRetries=1), headers=auth(7)).status_code == 403
    assert client.post(f"{name}/disable", headers=auth(7)).status_code == 403
    assert client.post(TYPES, json=spec()).status_code == 401
    assert len(written(sink)) == 1


def test_a_change_replaces_the_spec_and_raises_the_version(client: TestClient) -> None:
    client.post(TYPES, json=spec(), headers=admin())
    name = f"{TYPES}/ticket:update_status"
    changed = client.put(name, json=spec(maxRetries=7), headers=admin())
    assert changed.status_code == 200, changed.text
    assert (changed.json()["data"]["version"], changed.json()["data"]["spec"]["maxRetries"]) == (
        2,
        7,
    )
    assert client.get(name, headers=admin()).json()["data"]["version"] == 2
    renamed = client.put(name, json=spec(name="ticket:other"), headers=admin())
    assert renamed.status_code == 422
    assert renamed.json()["details"]["errors"][0]["field"] == "name"
    missing = client.put(f"{TYPES}/ticket:nope", json=spec(name="ticket:nope"), headers=admin())
    assert missing.status_code == 404
    assert missing.json()["error"] == "JOB_TYPE_NOT_FOUND"


def test_a_disabled_type_disappears_for_sponsors_until_enabled(client: TestClient) -> None:
    client.post(TYPES, json=spec(), headers=admin())
    name = f"{TYPES}/ticket:update_status"
    disabled = client.post(f"{name}/disable", headers=admin())
    assert disabled.status_code == 200
    assert (disabled.json()["data"]["enabled"], disabled.json()["data"]["version"]) == (False, 2)
    assert client.get(name, headers=auth(7)).status_code == 404
    assert client.get(TYPES, headers=auth(7)).json()["data"]["total"] == 0
    assert client.get(TYPES, headers=admin()).json()["data"]["jobTypes"][0]["enabled"] is False
    assert client.post(f"{name}/disable", headers=admin()).json()["data"]["version"] == 2
    enabled = client.post(f"{name}/enable", headers=admin())
    assert (enabled.json()["data"]["enabled"], enabled.json()["data"]["version"]) == (True, 3)
    assert client.get(name, headers=auth(7)).status_code == 200


def test_a_type_for_some_sponsors_is_invisible_to_the_others(client: TestClient) -> None:
    body = spec(allowedSponsors=[42, 42, 9])
    answer = client.post(TYPES, json=body, headers=admin())
    assert answer.json()["data"]["spec"]["allowedSponsors"] == [9, 42]
    assert client.get(f"{TYPES}/ticket:update_status", headers=auth(7)).status_code == 404
    assert client.get(TYPES, headers=auth(7)).json()["data"]["total"] == 0
    assert client.get(TYPES, headers=auth(42)).json()["data"]["total"] == 1


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": "Ticket:Update"}, "name"),
        ({"name": "no-colon"}, "name"),
        ({"name": "a:" + "b" * 60}, "name"),
        ({"itemSchema": {"type": "nope"}}, "itemSchema"),
        ({"itemSchema": {"$ref": "http://127.0.0.1:9/schema.json"}}, "itemSchema"),
        ({"dataSchema": {"enum": ["x" * 100] * 200}}, "dataSchema"),
        ({"itemSchema": nested(40)}, "itemSchema"),
        ({"itemSchema": {"$schema": "http://127.0.0.1:9/meta.json"}}, "itemSchema"),
        ({"itemSchema": {"pattern": "("}}, "itemSchema"),
        ({"timeoutSeconds": 0}, "timeoutSeconds"),
        ({"maxRetries": 21}, "maxRetries"),
        ({"allowedSponsors": [0]}, "allowedSponsors"),
        ({"handlerUrl": "http://example.com/run"}, "handlerUrl"),
        ({"executor": "http"}, "handlerUrl"),
        ({"executor": "smoke-signals"}, "executor"),
        ({"surprise": True}, "surprise"),
    ],
)
def test_a_bad_spec_is_refused_with_its_field(
    client: TestClient, sink: FakeMessageSink, changes: dict[str, Any], field: str
) -> None:
    answer = client.post(TYPES, json=spec(**changes), headers=admin())
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert body["success"] is False
    assert body["error"] == "VALIDATION_FAILED"
    assert any(e["field"] == field for e in body["details"]["errors"]), body
    assert written(sink) == []


def test_a_schema_nested_as_deep_as_allowed_is_taken(client: TestClient) -> None:
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **nested(31)}
    answer = client.post(TYPES, json=spec(itemSchema=schema), headers=admin())
    assert answer.status_code == 201, answer.text
    assert client.get(TYPES, headers=admin()).json()["data"]["total"] == 1


def test_a_handler_inside_the_network_needs_the_admins_allowance(
    client: TestClient, sink: FakeMessageSink
) -> None:
    body = spec(name="listing:update", executor="http", handlerUrl="http://127.0.0.1:8080/run")
    refused = client.post(TYPES, json=body, headers=admin())
    assert refused.status_code == 422
    assert refused.json()["details"]["errors"][0]["field"] == "handlerUrl"
    assert "loopback/private" in refused.json()["message"]
    allowed = client.post(TYPES, json={**body, "allowPrivateHandler": True}, headers=admin())
    assert allowed.status_code == 201
    assert allowed.json()["data"]["topic"] is None
    assert len(written(sink)) == 1
    assert sink.created_topics == []  # an HTTP-executed type has no topic


def test_an_unreachable_broker_registers_nothing(client: TestClient, sink: FakeMessageSink) -> None:
    sink.fail = True
    answer = client.post(TYPES, json=spec(), headers=admin())
    assert answer.status_code == 503
    assert answer.json()["error"] == "SYSTEM_ERROR"
    sink.fail = False
    assert client.get(TYPES, headers=admin()).json()["data"]["total"] == 0
