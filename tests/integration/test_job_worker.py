"""The job-worker SDK on the real broker: it answers a batch on the results topic under the
batch's key, skips a malformed message and a batch past its deadline without stopping, and
commits what it answered, so a restarted worker does not answer it again."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from bulkops import topicadmin
from bulkops.jobs import JobWorker, PermanentError
from core.topics import Topics, sponsor_key
from schemas.jobs import JobBatch, JobItem, JobResult
from tests.support import wait_for

JOB_TYPE = "ticket:update_status"


def a_batch(index: int, *, seconds_left: float = 60) -> JobBatch:
    return JobBatch(
        operation_id="op-sdk",
        sponsor_id=7,
        job_type=JOB_TYPE,
        batch_index=index,
        deadline=datetime.now(UTC) + timedelta(seconds=seconds_left),
        data={"status": "closed"},
        items=[
            JobItem(index=index * 10 + i, item_id=f"t-{index}-{i}", payload={"ticketId": i})
            for i in range(3)
        ],
    )


async def refuse_the_second(item: JobItem, batch: JobBatch) -> dict[str, Any] | None:
    if item.payload["ticketId"] == 1:
        raise PermanentError("FORBIDDEN", "Insufficient permissions for this ticket")
    return {"status": batch.data["status"]}


def results(bootstrap: str, topic: str, count: int) -> list[tuple[bytes, JobResult]]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    seen: list[tuple[bytes, JobResult]] = []

    def enough() -> bool:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            seen.append((message.key() or b"", JobResult.model_validate_json(message.value())))
        return len(seen) >= count

    try:
        wait_for(enough, timeout=30, interval=0, message=f"{count} job results")
    finally:
        consumer.close()
    return seen


def test_the_worker_answers_skips_what_it_cannot_use_and_commits(kafka_bootstrap: str) -> None:
    topics = Topics(f"sdk{uuid.uuid4().hex[:10]}")
    jobs, answers = topics.jobs(JOB_TYPE).name, topics.job_results.name
    topicadmin.create_topics(kafka_bootstrap, {jobs: {}, answers: {}}, partitions=2)
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "partitioner": "murmur2_random"})
    key = sponsor_key(7)
    producer.produce(jobs, key=key, value=b'{"not": "a batch"}')
    producer.produce(jobs, key=key, value=a_batch(0, seconds_left=-1).model_dump_json().encode())
    producer.produce(jobs, key=key, value=a_batch(1).model_dump_json().encode())
    producer.produce(jobs, key=key, value=a_batch(2).model_dump_json().encode())
    assert producer.flush(10) == 0

    worker = JobWorker(
        JOB_TYPE, bootstrap=kafka_bootstrap, prefix=topics.prefix, handler=refuse_the_second
    )
    assert asyncio.run(asyncio.wait_for(worker.run(max_batches=2), 60)) == 2

    answered = results(kafka_bootstrap, answers, 2)
    assert [k for k, _ in answered] == [key, key]
    assert [r.batch_index for _, r in answered] == [1, 2]
    first = answered[0][1]
    assert [o.status.value for o in first.outcomes] == ["Success", "Failed", "Success"]
    assert first.outcomes[1].error_code == "FORBIDDEN"
    assert first.outcomes[0].result_data == {"status": "closed"}

    group = Consumer(
        {"bootstrap.servers": kafka_bootstrap, "group.id": f"{topics.prefix}-jobs-{JOB_TYPE}"}
    )
    try:
        committed = group.committed([TopicPartition(jobs, p) for p in (0, 1)], timeout=10)
    finally:
        group.close()
    assert sum(max(tp.offset, 0) for tp in committed) == 4  # all four, skipped ones too
