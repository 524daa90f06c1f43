"""Job types on the real broker, through the REST API: a registration is durable (a restarted
server reads it back from the compacted topic, disabled and all), and the record on the topic
is what an outside reader gets."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from confluent_kafka import Consumer, TopicPartition

from api.auth import Role
from schemas.jobs import SEED_JOB_TYPE_EXAMPLE, JobTypeRecord
from tests.integration.conftest import Server
from tests.support import wait_for

TYPES = "/api/v1/bulk-operations/job-types"


def job_types(server: Server, sponsor_id: int | None, role: Role = Role.SPONSOR) -> httpx.Client:
    return httpx.Client(
        base_url=server.base_url,
        headers={"Authorization": f"Bearer {server.token(sponsor_id, role)}"},
        timeout=30,
    )


def names(client: httpx.Client) -> dict[str, Any]:
    answer = client.get(TYPES)
    assert answer.status_code == 200, answer.text
    return {t["name"]: t for t in answer.json()["data"]["jobTypes"]}


def test_a_registered_type_survives_a_restart_as_it_was_left(make_server: Any) -> None:
    server: Server = make_server().start()
    with job_types(server, None, Role.ADMIN) as admin, job_types(server, 7) as sponsor:
        created = admin.post(TYPES, json=SEED_JOB_TYPE_EXAMPLE)
        assert created.status_code == 201, created.text
        listing = admin.post(
            TYPES,
            json={
                "name": "listing:update",
                "executor": "http",
                "handlerUrl": "http://127.0.0.1:9/bulk",
                "allowPrivateHandler": True,
                "allowedSponsors": [42],
            },
        )
        assert listing.status_code == 201, listing.text
        assert admin.post(f"{TYPES}/ticket:update_status/disable").json()["data"]["version"] == 2
        assert list(names(sponsor)) == []

    server.stop()
    server.start()
    with job_types(server, None, Role.ADMIN) as admin, job_types(server, 42) as sponsor:
        seen = names(admin)
        assert set(seen) == {"ticket:update_status", "listing:update"}
        ticket = seen["ticket:update_status"]
        assert (ticket["enabled"], ticket["version"]) == (False, 2)
        assert ticket["spec"]["itemSchema"] == SEED_JOB_TYPE_EXAMPLE["itemSchema"]
        assert ticket["topic"] == server.topics.jobs("ticket:update_status").name
        assert list(names(sponsor)) == ["listing:update"]
        # The same registration again is still recognised after the restart.
        assert admin.post(TYPES, json=SEED_JOB_TYPE_EXAMPLE).status_code == 200


def test_the_topic_holds_one_record_per_type_keyed_by_name(server: Server) -> None:
    with job_types(server, None, Role.ADMIN) as admin:
        assert admin.post(TYPES, json=SEED_JOB_TYPE_EXAMPLE).status_code == 201
        changed = {**SEED_JOB_TYPE_EXAMPLE, "maxRetries": 6}
        assert admin.put(f"{TYPES}/ticket:update_status", json=changed).status_code == 200
    topic = server.topics.job_types.name
    consumer = Consumer(
        {
            "bootstrap.servers": server.env["BULKOPS_KAFKA_BOOTSTRAP"],
            "group.id": f"test-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
        }
    )
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    records: list[tuple[bytes, JobTypeRecord]] = []

    def both_read() -> bool:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            records.append((message.key(), JobTypeRecord.model_validate_json(message.value())))
        return len(records) == 2

    try:
        wait_for(both_read, timeout=30, interval=0, message="two job-type records")
    finally:
        consumer.close()
    assert [key for key, _ in records] == [b"ticket:update_status"] * 2
    assert [(r.version, r.spec.max_retries) for _, r in records] == [(1, 3), (2, 6)]
    assert records[1][1].updated_by == "user_admin"
