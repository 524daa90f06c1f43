"""The Faust application: four agents, two tables and a status timer.

Flow (every topic keyed by sponsor id, same partition count, so one sponsor's work stays on
one partition of one worker)::

    operations --explode--> items --process--> results --sink--> ClickHouse
                                                           \\--> progress --count--> table
    table --(on change, and every second while running)--> operation-status (compacted)

Delivery is at-least-once (Faust flushes the producer before it commits offsets); every
effect is idempotent: item batches are re-planned identically on replay, codes are a pure
function of (sponsor, serial), ClickHouse tables collapse rows on the item key, and progress
counts a batch only when its bit in the operation's bitmap flips. Progress is counted from
``progress`` messages, which the sink emits only after the rows are stored, so an operation
is ``Completed`` only when all its rows can be queried.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import faust
from faust.types import EventT, StreamT
from pydantic import ValidationError

from analytics.store import AnalyticsStore
from bulkops.settings import WorkerSettings
from schemas.common import ItemStatus, OperationStatus, OperationType
from schemas.messages import (
    BatchSunk,
    CodeBatchSpec,
    DeadLetter,
    ItemBatch,
    OperationRequested,
    RecentResult,
    ResultBatch,
)
from streams.codes import CodeMinter
from streams.plan import count_code_batches, plan_code_batches
from streams.progress import (
    MAX_RECENT_RESULTS,
    OperationState,
    apply_batch,
    is_batch_done,
    register,
)
from streams.topics import Topics, sponsor_key

log = logging.getLogger("bulkops.worker")

_RECENT_SERIALS_KEPT = 256
_SINK_RETRY_MAX_SECONDS = 30.0


def _now() -> datetime:
    return datetime.now(UTC)


class InvalidMessage(ValueError):
    """A message that parses but breaks a rule the worker enforces."""


def build_worker(settings: WorkerSettings, store: AnalyticsStore) -> faust.App:
    """A Faust app wired to ``settings``' topics, writing to ``store``."""
    topics = Topics(settings.topic_prefix)
    minter = CodeMinter(settings.code_secret)
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{settings.kafka_bootstrap}",
        store="memory://",
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        producer_max_request_size=1_048_576,
        producer_linger_ms=5,
        table_standby_replicas=0,
        web_enabled=False,
        consumer_group_instance_id=f"{settings.app_id}-{settings.instance_id}",
        broker_session_timeout=settings.session_timeout_seconds,
        broker_heartbeat_interval=settings.session_timeout_seconds / 4,
        broker_commit_every=1000,
        broker_commit_interval=1.0,
    )

    def topic(name: str) -> faust.TopicT:
        return app.topic(name, partitions=settings.partitions, internal=False)

    operations_topic = topic(topics.operations.name)
    items_topic = topic(topics.items.name)
    results_topic = topic(topics.results.name)
    progress_topic = topic(topics.progress.name)
    status_topic = topic(topics.status.name)
    dead_letter_topic = topic(topics.dead_letter.name)

    operations = app.Table(
        "operations",
        default=None,
        partitions=settings.partitions,
        schema=faust.Schema(key_serializer="json", value_serializer="json"),
    )
    serials = app.Table(
        "serials",
        default=None,
        partitions=settings.partitions,
        schema=faust.Schema(key_serializer="json", value_serializer="json"),
    )
    dirty: set[str] = set()

    def load(operation_id: str) -> OperationState | None:
        value = operations.get(operation_id)
        return None if value is None else OperationState.model_validate(value)

    def save(state: OperationState) -> None:
        """Table values are plain JSON documents; one write carries counts and bitmap."""
        operations[state.operation_id] = state.model_dump(mode="json")

    async def dead_letter(event: EventT, reason: str, exc: BaseException) -> None:
        message = event.message
        key = message.key.decode(errors="replace") if message.key else None
        log.warning(
            "dead-lettered %s[%d]@%d: %s", message.topic, message.partition, message.offset, reason
        )
        letter = DeadLetter(
            source_topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=key,
            reason=reason[:4000],
            error_type=type(exc).__name__,
            payload=(message.value or b"")[:65536].decode(errors="replace"),
            failed_at=_now(),
        )
        await dead_letter_topic.send(key=message.key, value=letter.model_dump_json().encode())

    def check_key(event: EventT, sponsor_id: int) -> None:
        if event.message.key != sponsor_key(sponsor_id):
            raise InvalidMessage(
                f"message key {event.message.key!r} does not match sponsorId {sponsor_id}: "
                f"every flow topic is keyed by sponsor id"
            )

    async def publish(state: OperationState) -> None:
        await status_topic.send(
            key=state.operation_id.encode(),
            value=state.snapshot().model_dump_json().encode(),
        )
        dirty.discard(state.operation_id)

    async def record_operation(state: OperationState) -> None:
        await asyncio.to_thread(store.upsert_operation, state.snapshot(), state.request_json)

    def reserve_serials(request: OperationRequested) -> int:
        """The first serial of the operation's range; the same one again on a replay."""
        key = str(request.sponsor_id)
        record = serials.get(key) or {"next": 0, "recent": {}}
        recent: dict[str, int] = record["recent"]
        if request.operation_id in recent:
            return recent[request.operation_id]
        base = int(record["next"])
        recent[request.operation_id] = base
        while len(recent) > _RECENT_SERIALS_KEPT:
            recent.pop(next(iter(recent)))
        serials[key] = {"next": base + request.total_items, "recent": recent}
        return base

    @app.agent(operations_topic)
    async def explode(stream: StreamT[bytes]) -> AsyncIterator[None]:
        async for event in stream.events():
            try:
                request = OperationRequested.model_validate_json(event.value)
                check_key(event, request.sponsor_id)
                if request.total_items > settings.max_items_per_operation:
                    raise InvalidMessage(
                        f"totalItems {request.total_items} over the maximum "
                        f"{settings.max_items_per_operation}"
                    )
                if request.batch_size > settings.max_batch_size:
                    raise InvalidMessage(
                        f"batchSize {request.batch_size} over the maximum {settings.max_batch_size}"
                    )
            except (ValidationError, ValueError) as exc:
                await dead_letter(event, str(exc), exc)
                continue
            op_id = request.operation_id
            state = load(op_id)
            if state is not None and state.status.is_terminal:
                log.info("operation %s: replayed request ignored, already %s", op_id, state.status)
                continue
            codegen = request.code_generation
            assert codegen is not None
            if state is None:
                batches_total = count_code_batches(codegen, request.batch_size)
                state = register(
                    request,
                    batches_total=batches_total,
                    serial_base=reserve_serials(request),
                    now=_now(),
                )
                save(state)
                await publish(state)
                await record_operation(state)
                log.info(
                    "operation %s: %s of %d items for sponsor %d exploded into %d batches",
                    op_id,
                    request.operation_type.value,
                    request.total_items,
                    request.sponsor_id,
                    batches_total,
                )
            key = sponsor_key(request.sponsor_id)
            for planned in plan_code_batches(codegen, request.batch_size):
                if is_batch_done(state, planned.batch_index):
                    continue
                batch = ItemBatch(
                    operation_id=op_id,
                    sponsor_id=request.sponsor_id,
                    operation_type=request.operation_type,
                    batch_index=planned.batch_index,
                    start_index=planned.start_index,
                    count=planned.count,
                    code=CodeBatchSpec(
                        prefix=planned.segment.prefix,
                        tier_id=codegen.subscription_tier_id,
                        validity_days=codegen.validity_days,
                        batch_name=planned.segment.batch_name,
                        serial_base=state.serial_base,
                    ),
                )
                await items_topic.send(key=key, value=batch.model_dump_json().encode())
            yield None

    @app.agent(items_topic)
    async def process(stream: StreamT[bytes]) -> AsyncIterator[None]:
        async for event in stream.events():
            try:
                batch = ItemBatch.model_validate_json(event.value)
                check_key(event, batch.sponsor_id)
                if batch.operation_type is not OperationType.CODE_GENERATION or batch.code is None:
                    raise InvalidMessage("only code-generation item batches are handled")
            except (ValidationError, ValueError) as exc:
                await dead_letter(event, str(exc), exc)
                continue
            result = generate_codes(batch, batch.code)
            await results_topic.send(key=event.message.key, value=result.model_dump_json().encode())
            yield None

    def generate_codes(batch: ItemBatch, spec: CodeBatchSpec) -> ResultBatch:
        started = time.perf_counter()
        now = _now()
        codes = minter.codes(
            spec.prefix, batch.sponsor_id, spec.serial_base + batch.start_index, batch.count
        )
        return ResultBatch(
            operation_id=batch.operation_id,
            sponsor_id=batch.sponsor_id,
            operation_type=batch.operation_type,
            batch_index=batch.batch_index,
            start_index=batch.start_index,
            statuses=[ItemStatus.SUCCESS] * batch.count,
            results=list(codes),
            processed_at=now,
            duration_ms=(time.perf_counter() - started) * 1000,
            tier_id=spec.tier_id,
            expires_at=now + timedelta(days=spec.validity_days),
            batch_name=spec.batch_name,
        )

    async def insert_with_retry(batches: list[ResultBatch]) -> None:
        """Block the sink (and so the results partitions) until ClickHouse takes the rows."""
        delay = 0.5
        while True:
            try:
                await asyncio.to_thread(store.insert_results, batches)
                return
            except Exception:
                log.exception(
                    "sink: inserting %d result batches failed; retrying in %.1fs",
                    len(batches),
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, _SINK_RETRY_MAX_SECONDS)

    @app.agent(results_topic)
    async def sink(stream: StreamT[bytes]) -> AsyncIterator[None]:
        async for events in stream.take_events(
            settings.sink_max_messages, within=settings.sink_within_seconds
        ):
            batches: list[ResultBatch] = []
            for event in events:
                try:
                    result = ResultBatch.model_validate_json(event.value)
                    check_key(event, result.sponsor_id)
                    batches.append(result)
                except (ValidationError, ValueError) as exc:
                    await dead_letter(event, str(exc), exc)
            if not batches:
                continue
            await insert_with_retry(batches)
            for result in batches:
                await progress_topic.send(
                    key=sponsor_key(result.sponsor_id),
                    value=summarise(result).model_dump_json().encode(),
                )
            yield None

    def summarise(result: ResultBatch) -> BatchSunk:
        counts = {status: 0 for status in ItemStatus}
        for status in result.statuses:
            counts[status] += 1
        n = len(result.statuses)
        tail = range(max(0, n - 3), n)
        return BatchSunk(
            operation_id=result.operation_id,
            sponsor_id=result.sponsor_id,
            batch_index=result.batch_index,
            count=n,
            succeeded=counts[ItemStatus.SUCCESS],
            failed=counts[ItemStatus.FAILED],
            skipped=counts[ItemStatus.SKIPPED],
            errors=result.errors,
            duration_ms=result.duration_ms,
            sunk_at=_now(),
            recent=[
                RecentResult(
                    index=result.start_index + i,
                    item_id=f"{result.operation_id}:{result.start_index + i}",
                    status=result.statuses[i],
                    result_data=result.results[i],
                    processed_at=result.processed_at,
                    processing_duration_ms=result.duration_ms / n,
                )
                for i in tail
            ],
        )

    @app.agent(progress_topic)
    async def count(stream: StreamT[bytes]) -> AsyncIterator[None]:
        async for event in stream.events():
            try:
                sunk = BatchSunk.model_validate_json(event.value)
                check_key(event, sunk.sponsor_id)
                state = load(sunk.operation_id)
                if state is None:
                    raise InvalidMessage(f"unknown operation {sunk.operation_id}")
                if not apply_batch(
                    state, sunk, now=_now(), max_errors=settings.max_errors_in_status
                ):
                    continue
            except (ValidationError, ValueError) as exc:
                await dead_letter(event, str(exc), exc)
                continue
            state.recent_results = [*state.recent_results, *sunk.recent][-MAX_RECENT_RESULTS:]
            save(state)
            if state.status.is_terminal:
                await publish(state)
                await record_operation(state)
                log.info(
                    "operation %s: %s (%d succeeded, %d failed, %d skipped)",
                    state.operation_id,
                    state.status.value,
                    state.successful_items,
                    state.failed_items,
                    state.skipped_items,
                )
            else:
                dirty.add(sunk.operation_id)
            yield None

    @app.timer(settings.status_interval_seconds)
    async def publish_running() -> None:
        """Every running operation gets a fresh snapshot at least once per interval."""
        for op_id, value in list(operations.items()):
            if value is None:
                continue
            if op_id in dirty or not OperationStatus(value["status"]).is_terminal:
                state = OperationState.model_validate(value)
                state.last_updated = _now()
                await publish(state)

    return app
