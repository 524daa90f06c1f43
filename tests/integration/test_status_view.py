"""The API's status view on a real broker: what it rebuilds from the topic on start, and what
it follows afterwards."""

from __future__ import annotations

import uuid

from confluent_kafka import Producer

from api.status_view import KafkaViewFollower, StatusView
from bulkops import topicadmin
from tests.support import wait_for
from tests.unit.test_eviction import snapshot_of


class CountingView(StatusView):
    def __init__(self) -> None:
        super().__init__()
        self.parsed = 0

    def apply_json(self, value: bytes) -> None:
        self.parsed += 1
        super().apply_json(value)


def test_the_view_rebuilds_the_last_state_of_each_operation_and_then_follows(
    kafka_bootstrap: str,
) -> None:
    """Many versions per operation, a tombstone, a malformed message and an operation live
    again after its tombstone: the view ends up as if it had applied them all in order."""
    topic = f"status-{uuid.uuid4().hex[:12]}"
    topicadmin.create_topics(
        kafka_bootstrap, {topic: {"cleanup.policy": "compact"}}, partitions=2, replication_factor=1
    )
    ids = [f"codegen_{i:032x}" for i in range(4)]
    producer = Producer({"bootstrap.servers": kafka_bootstrap})

    def put(operation_id: str, value: bytes | None) -> None:
        producer.produce(topic, key=operation_id.encode(), value=value)

    for version in range(1, 30):
        for operation_id in ids[:3]:
            status = "Completed" if version == 29 else "Processing"
            put(operation_id, snapshot_of(version, status, operation_id).model_dump_json().encode())
    put(ids[1], None)  # archived
    put(ids[2], snapshot_of(30, "Processing", ids[2]).model_dump_json().encode())
    put(ids[2], None)
    put(ids[2], snapshot_of(1, "Queued", ids[2]).model_dump_json().encode())  # submitted anew
    put(ids[3], b'{"not": "a snapshot"}')
    producer.flush(10)

    view = CountingView()
    follower = KafkaViewFollower(kafka_bootstrap, {topic: view}, view.ready)
    follower.start()
    try:
        assert view.ready.wait(30), "caught up"
        first = view.get(ids[0])
        assert first is not None and (first.version, first.status.value) == (29, "Completed")
        assert view.get(ids[1]) is None, "the tombstone removed it"
        again = view.get(ids[2])
        assert again is not None and (again.version, again.status.value) == (1, "Queued")
        assert view.get(ids[3]) is None and len(view) == 2, "the malformed message is skipped"
        assert view.parsed == 3, "only the last message of each operation is parsed"

        put(ids[0], None)
        put(ids[1], snapshot_of(40, "Processing", ids[1]).model_dump_json().encode())
        producer.flush(10)
        wait_for(
            lambda: view.get(ids[0]) is None and view.get(ids[1]) is not None,
            timeout=15,
            message="later messages applied as they come",
        )
    finally:
        follower.close()
