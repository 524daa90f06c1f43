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
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

import faust
from faust.types import TP, EventT, StreamT
from pydantic import ValidationError

from analytics.store import AnalyticsStore
from core.settings import WorkerSettings
from core.topics import Topics, sponsor_key
from core.webhooks import sponsor_secret
from schemas.common import ErrorCategory, ItemStatus, OperationStatus, OperationType
from schemas.messages import (
    BatchHold,
    BatchSunk,
    ControlAction,
    ControlCommand,
    DeadLetter,
    ItemBatch,
    ItemError,
    OperationAbort,
    OperationRequested,
    OperationsMessage,
    PreparedRecipient,
    ProgressMessage,
    RecentResult,
    RecipientChunk,
    Redrive,
    ReleaseTick,
    ResultBatch,
    WebhookAttempt,
)
from streams.codes import CodeMinter, generate_codes
from streams.delivery import App, InFlightSafeConsumer
from streams.pacing import Pacer
from streams.plan import code_item_batches, count_batches, link_item_batches
from streams.progress import (
    MAX_RECENT_RESULTS,
    OperationState,
    apply_batch,
    bit,
    due_batches,
    has_budget,
    is_batch_done,
    mark_held,
    mark_released,
    outstanding,
    pause,
    register,
    release_quota,
    request_cancel,
    reserve_budget,
    resume,
    with_bit,
)
from streams.providers.base import Provider
from streams.sending import halting, record_only, send_link_batch, skip_batch
from streams.watchdog import PendingWork, StallWatchdog, remedy
from streams.webhooks import AttemptResult, deliver

log = logging.getLogger("bulkops.worker")
T = TypeVar("T")

_RECENT_SERIALS_KEPT = 256
_CLICKHOUSE_RETRY_MAX_SECONDS = 30.0
_SLOW_CLICKHOUSE_SECONDS = 10.0
_TICK_RETRY_SECONDS = 5.0
# Table values are the model's JSON, keyed by alias: what the timers peek at without parsing.
_HELD_COUNT = OperationState.model_fields["held_count"].alias
_WEBHOOK_STATE = OperationState.model_fields["webhook_state"].alias


def _now() -> datetime:
    return datetime.now(UTC)


async def acked_when_handled(stream: StreamT[bytes]) -> AsyncIterator[EventT]:
    """Events acknowledged as soon as the handler is done with them.

    Faust acks an event only when its actor pulls the next one, so with several actors per
    agent the last event of each stays unacknowledged while a topic is quiet: offsets stop
    being committed, shutdowns wait on them and a restart replays everything after them.
    """
    manual = stream.noack()  # type: ignore[attr-defined]  # on Stream, not on StreamT
    async for event in manual.events():
        try:
            yield event
        finally:
            await manual.ack(event)


class InvalidMessage(ValueError):
    """A message that parses but breaks a rule the worker enforces."""


def build_worker(
    settings: WorkerSettings, store: AnalyticsStore, providers: dict[str, Provider]
) -> faust.App:
    """A Faust app on ``settings``' topics, writing to ``store``, sending via ``providers``."""
    topics = Topics(settings.topic_prefix)
    minter = CodeMinter(settings.code_secret)
    pacer = Pacer(
        sender_rates={
            "SMS": settings.sender_rate_sms,
            "WhatsApp": settings.sender_rate_whatsapp,
            "Email": settings.sender_rate_email,
        },
        sponsor_rates=dict.fromkeys(("SMS", "WhatsApp", "Email"), settings.sponsor_rate_per_second),
    )
    app = App(
        settings.app_id,
        gapless_topics=[spec.name for spec in topics.internal()],
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
    control_topic = topic(topics.control.name)
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
    # Cancel/pause/resume that arrived before their operation's request (different topics,
    # no order between them): the action to apply when the request comes.
    early_controls = app.Table(
        "early-controls",
        default=None,
        partitions=settings.partitions,
        schema=faust.Schema(key_serializer="json", value_serializer="json"),
    )
    dirty: set[str] = set()

    def load(operation_id: str) -> OperationState | None:
        value = operations.get(operation_id)
        return None if value is None else OperationState.model_validate(value)

    def save(state: OperationState) -> None:
        """Table values are plain JSON documents; one write carries counts and bitmap.

        Every agent writes this table, so a state must be loaded, changed and saved with no
        ``await`` in between: one held across an await would overwrite what others wrote.
        """
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

    async def with_retry(what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking ClickHouse write off the loop; on failure wait and retry, never skip.

        Blocking the agent keeps its partitions where they are, so nothing is acknowledged
        (and nothing is lost) while ClickHouse is away; Kafka buffers meanwhile.
        """
        delay = 0.5
        while True:
            call = asyncio.ensure_future(asyncio.to_thread(fn, *args, **kwargs))
            try:
                while True:
                    done, _ = await asyncio.wait({call}, timeout=_SLOW_CLICKHOUSE_SECONDS)
                    if done:
                        break
                    log.warning(
                        "%s: ClickHouse has not answered for %.0fs", what, _SLOW_CLICKHOUSE_SECONDS
                    )
                return call.result()
            except Exception:
                log.exception("%s failed; retrying in %.1fs", what, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _CLICKHOUSE_RETRY_MAX_SECONDS)

    async def record_operation(state: OperationState) -> None:
        await with_retry(
            f"operation {state.operation_id}: storing its row",
            store.upsert_operation,
            state.snapshot(),
            subscription_tier_id=state.subscription_tier_id,
            code_prefix=state.code_prefix,
            channel=state.channel.value if state.channel else None,
            total_cost=state.total_cost,
        )

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
            errors=result.errors[: settings.max_errors_in_status],
            duration_ms=result.duration_ms,
            cost=counts[ItemStatus.SUCCESS] * result.unit_cost,
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

    def check_limits(request: OperationRequested) -> None:
        violation = settings.size_violation(request.total_items, request.batch_size)
        if violation is not None:
            field, reason = violation
            raise InvalidMessage(f"{field}: {reason} (totalItems {request.total_items})")

    async def guarded(event: EventT, handle: Callable[[EventT], Awaitable[None]]) -> None:
        """Bad messages go to the dead-letter topic with the reason; the stream goes on.

        Unexpected errors too: Faust would otherwise restart the agent and drop the event
        silently. Transient ClickHouse trouble never gets here (``with_retry`` waits it out).
        """
        try:
            await handle(event)
        except (ValidationError, ValueError) as exc:
            await dead_letter(event, str(exc), exc)
        except Exception as exc:
            log.exception("unexpected error on %s", event.message.topic)
            await dead_letter(event, f"unexpected {type(exc).__name__}: {exc}", exc)

    async def on_operations_message(event: EventT) -> None:
        message = OperationsMessage.validate_json(event.value)
        check_key(event, message.sponsor_id)
        if isinstance(message, OperationRequested):
            await on_request(event, message)
        elif isinstance(message, RecipientChunk):
            await on_recipients(event, message)
        elif isinstance(message, ReleaseTick):
            await on_release(event, message)
        elif isinstance(message, BatchHold):
            check_key(event, message.batch.sponsor_id)
            await on_hold(event, message.batch)
        elif isinstance(message, Redrive):
            await on_redrive(event, message)
        else:
            await on_abort(event, message)

    async def on_request(event: EventT, request: OperationRequested) -> None:
        check_limits(request)
        op_id = request.operation_id
        state = load(op_id)
        if state is not None and state.submission_id != request.submission_id:
            log.warning(
                "operation %s: another submission of it (%s) ignored: it was registered by %s",
                op_id,
                request.submission_id,
                state.submission_id,
            )
            return
        if state is not None and state.status.is_terminal:
            log.info("operation %s: replayed request ignored, already %s", op_id, state.status)
            return
        if state is None:
            state = register(
                request,
                batches_total=count_batches(request),
                serial_base=reserve_serials(request) if request.code_generation else 0,
                now=_now(),
                partition=event.message.partition,
            )
            early = early_controls.get(op_id)
            if early == ControlAction.CANCEL.value and request_cancel(state, _now()):
                stops[op_id] = "CANCELLED"
            elif early == ControlAction.PAUSE.value:
                pause(state, _now())
            save(state)
            await with_retry(
                f"operation {op_id}: storing its request", store.record_request, request
            )
            await publish(state)
            await record_operation(state)
            log.info(
                "operation %s: %s of %d items for sponsor %d in %d batches",
                op_id,
                request.operation_type.value,
                request.total_items,
                request.sponsor_id,
                state.batches_total,
            )
        if request.code_generation is None:
            return  # link sends explode as their recipient chunks arrive
        await release_or_hold(
            sponsor_key(request.sponsor_id),
            op_id,
            list(code_item_batches(request, state.serial_base)),
        )

    async def on_recipients(event: EventT, chunk: RecipientChunk) -> None:
        state = load(chunk.operation_id)
        if state is None or state.link is None:
            raise InvalidMessage(f"recipients for unknown link send {chunk.operation_id}")
        if state.status.is_terminal or not same_submission(state, chunk.submission_id):
            return
        if state.operation_type is OperationType.DEALER_INVITATION:
            chunk = await with_codes(chunk, state)
        batches = list(link_item_batches(state, chunk))
        await with_retry(
            f"operation {chunk.operation_id}: storing chunk {chunk.chunk_index}",
            store.record_chunk,
            chunk,
            batches,
        )
        state = load(chunk.operation_id)  # other agents moved it on during the await
        assert state is not None
        for batch in batches:
            state.exploded = with_bit(state.exploded, batch.batch_index)
        save(state)
        await release_or_hold(sponsor_key(chunk.sponsor_id), chunk.operation_id, batches)

    async def with_codes(chunk: RecipientChunk, state: OperationState) -> RecipientChunk:
        """Each dealer of the chunk with its codes reserved from the sponsor's inventory.

        This runs in the explode agent, which owns the sponsor's partition: reservations of
        one sponsor never run concurrently, so no code goes to two dealers. A dealer whose
        tier has too few codes left gets none and ends Skipped with INSUFFICIENT_CODES.
        Dealers of batches already counted (a replay) reserve nothing: their codes were
        transferred or given back when their batch was stored.
        """
        assert state.link is not None
        size = state.link.batch_size
        needs = [
            (r.index, r.dealer.tier_id, r.dealer.code_count)
            for r in chunk.recipients
            if r.dealer is not None and r.skip is None and not is_batch_done(state, r.index // size)
        ]
        reserved = await with_retry(
            f"operation {chunk.operation_id}: reserving codes for chunk {chunk.chunk_index}",
            store.reserve_codes,
            chunk.sponsor_id,
            chunk.operation_id,
            needs,
        )
        recipients: list[PreparedRecipient] = []
        for r in chunk.recipients:
            if r.dealer is None or r.skip is not None:
                recipients.append(r)
            elif r.index in reserved:
                dealer = r.dealer.model_copy(update={"codes": reserved[r.index]})
                recipients.append(r.model_copy(update={"dealer": dealer}))
            else:
                error = ItemError(
                    item_index=r.index,
                    item_id=f"{chunk.operation_id}:{r.index}",
                    error_code="INSUFFICIENT_CODES",
                    error_message=(
                        f"Yetersiz kod ({r.dealer.tier} tier): {r.dealer.code_count} needed, "
                        "not enough left in the inventory"
                    ),
                    error_category=ErrorCategory.BUSINESS,
                )
                recipients.append(r.model_copy(update={"skip": error}))
        short = sum(1 for r in recipients if r.skip is not None and r.dealer is not None)
        if short:
            log.warning("operation %s: %d dealers without codes", chunk.operation_id, short)
        return chunk.model_copy(update={"recipients": recipients})

    async def release_or_hold(key: bytes, operation_id: str, batches: list[ItemBatch]) -> None:
        """Send the batches that may go now; keep the others in ClickHouse until they are due.

        On a replay, a batch already released goes again (processing it is idempotent) and
        one already held stays held. Releases are saved before the sends, holds after the
        ClickHouse write, so a crash in between only repeats work.
        """
        now = _now()
        state = load(operation_id)
        assert state is not None
        quota = release_quota(state, now)
        to_send: list[ItemBatch] = []
        to_hold: list[ItemBatch] = []
        for batch in batches:
            index = batch.batch_index
            if is_batch_done(state, index) or bit(state.held, index):
                continue
            if bit(state.released, index):
                to_send.append(batch)
            elif quota > 0:
                quota -= 1
                mark_released(state, index, now)
                to_send.append(batch)
            else:
                to_hold.append(batch)
        save(state)
        for batch in to_send:
            await items_topic.send(key=key, value=batch.model_dump_json().encode())
        if to_hold:
            keep(operation_id, to_hold)
            log.info("operation %s: %d batches held until due", operation_id, len(to_hold))

    def keep(operation_id: str, batches: list[ItemBatch]) -> None:
        """Hold batches until they are due: one bit each.

        A link-send batch was stored in ClickHouse when its chunk arrived; a code batch is a
        pure function of the stored request. Either goes out again from there.
        """
        state = load(operation_id)
        assert state is not None
        for batch in batches:
            mark_held(state, batch.batch_index)
        save(state)

    async def batch_messages(state: OperationState, indexes: list[int]) -> dict[int, str]:
        """The item-batch messages of batches exploded earlier, by batch index."""
        what = f"operation {state.operation_id}: reading {len(indexes)} item batches"
        if state.operation_type is not OperationType.CODE_GENERATION:
            return await with_retry(
                what, store.item_batches, state.sponsor_id, state.operation_id, indexes
            )
        request = await with_retry(what, store.request, state.sponsor_id, state.operation_id)
        if request is None:
            return {}
        wanted = set(indexes)
        return {
            batch.batch_index: batch.model_dump_json()
            for batch in code_item_batches(request, state.serial_base)
            if batch.batch_index in wanted
        }

    async def on_hold(event: EventT, batch: ItemBatch) -> None:
        """A batch that reached a paused operation: hold it, unless it may go again now."""
        state = load(batch.operation_id)
        if state is None or state.status.is_terminal or is_batch_done(state, batch.batch_index):
            return
        if state.paused_at is None:
            await items_topic.send(key=event.message.key, value=batch.model_dump_json().encode())
            return
        keep(batch.operation_id, [batch])
        log.debug("operation %s: batch %d held while paused", batch.operation_id, batch.batch_index)

    async def on_release(event: EventT, tick: ReleaseTick) -> None:
        """Send the held batches that are due now, oldest first.

        The sends are on the broker before the table says they were released: a crash
        between the two sends them again, never loses them.
        """
        ticking.pop(tick.operation_id, None)
        now = _now()
        state = load(tick.operation_id)
        if state is None or state.status.is_terminal or state.held_count == 0:
            return
        indexes = due_batches(state, now, settings.release_batches_per_tick)
        if not indexes:
            return
        held = await batch_messages(state, indexes)
        missing = [i for i in indexes if i not in held]
        if missing:
            log.error("operation %s: held batches %s not found", tick.operation_id, missing[:10])
        deliveries = [
            await items_topic.send(key=event.message.key, value=held[i].encode())
            for i in indexes
            if i in held
        ]
        await asyncio.gather(*deliveries)
        state = load(tick.operation_id)
        assert state is not None
        was_queued = state.status is OperationStatus.QUEUED
        for index in held:
            mark_released(state, index, now)
        save(state)
        log.info(
            "operation %s: released %d held batches%s",
            tick.operation_id,
            len(held),
            " (scheduled start reached)" if was_queued else "",
        )
        await publish(state)

    async def on_abort(event: EventT, abort: OperationAbort) -> None:
        """The API could not queue the whole submission: stop, and settle unsent batches."""
        state = load(abort.operation_id)
        if (
            state is None
            or state.status.is_terminal
            or not same_submission(state, abort.submission_id)
        ):
            return
        state.stop_reason = "SUBMISSION_INCOMPLETE"
        stops[state.operation_id] = state.stop_reason
        save(state)
        log.warning("operation %s: aborted by the API: %s", state.operation_id, abort.reason)
        size = state.link.batch_size if state.link else 1
        for index in range(state.batches_total):
            if bit(state.exploded, index) or is_batch_done(state, index):
                continue
            count = min(size, state.total_items - index * size)
            await progress_topic.send(
                key=event.message.key,
                value=BatchSunk(
                    operation_id=state.operation_id,
                    sponsor_id=state.sponsor_id,
                    batch_index=index,
                    count=count,
                    succeeded=0,
                    failed=0,
                    skipped=count,
                    sunk_at=_now(),
                )
                .model_dump_json()
                .encode(),
            )

    def same_submission(state: OperationState, submission_id: str | None) -> bool:
        """Whether a message belongs to the submit attempt that registered the operation."""
        if state.submission_id == submission_id:
            return True
        log.warning(
            "operation %s: a message of another submission (%s) ignored",
            state.operation_id,
            submission_id,
        )
        return False

    async def on_redrive(event: EventT, redrive: Redrive) -> None:
        """Drive on batches the stall watchdog found released and never counted.

        A batch whose items ClickHouse already holds is counted from them (its progress
        message was lost); any other goes to the items topic again (its item batch or its
        results were lost). Both are idempotent, like every replay.
        """
        state = load(redrive.operation_id)
        if state is None or state.status.is_terminal:
            return
        wanted = set(outstanding(state))
        indexes = [i for i in redrive.batch_indexes if i in wanted]
        if not indexes:
            return
        messages = await batch_messages(state, indexes)
        counted, resent = 0, 0
        for index in indexes:
            payload = messages.get(index)
            if payload is None:
                log.error(
                    "operation %s: batch %d cannot be re-driven: not stored",
                    state.operation_id,
                    index,
                )
                continue
            batch = ItemBatch.model_validate_json(payload)
            stored = await with_retry(
                f"operation {state.operation_id}: reading the items of batch {index}",
                store.stored_result,
                batch,
            )
            if stored is not None:
                await progress_topic.send(
                    key=event.message.key, value=summarise(stored).model_dump_json().encode()
                )
                counted += 1
            else:
                await items_topic.send(key=event.message.key, value=payload.encode())
                resent += 1
        log.warning(
            "operation %s: re-drove %d batches released and never counted: "
            "%d counted from their stored items, %d sent again (first: %s)",
            state.operation_id,
            counted + resent,
            counted,
            resent,
            indexes[:10],
        )

    stops: dict[str, str] = {}
    # Per link send: sends in flight (maxConcurrency), and batches sending at once. Few
    # batches at a time (enough to keep maxConcurrency busy) keep a pause prompt: batches
    # waiting for a turn are held, only those already sending finish.
    in_flight: dict[str, asyncio.Semaphore] = {}
    turns: dict[str, asyncio.Semaphore] = {}

    def is_paused(operation_id: str) -> bool:
        state = load(operation_id)
        return state is not None and state.paused_at is not None and state.stop_reason is None

    async def hold(event: EventT, batch: ItemBatch) -> None:
        """Back to the explode agent, which keeps the batch until the operation resumes."""
        message = BatchHold(sponsor_id=batch.sponsor_id, batch=batch)
        await operations_topic.send(key=event.message.key, value=message.model_dump_json().encode())

    class TableGate:
        """Stop rules and budget for the sending code, kept in the operations table."""

        def stop_reason(self, operation_id: str) -> str | None:
            return stops.get(operation_id)

        def stop(self, operation_id: str, reason: str) -> None:
            if operation_id in stops:
                return
            stops[operation_id] = reason
            state = load(operation_id)
            if state is not None and state.stop_reason is None:
                state.stop_reason = reason
                save(state)
                log.info("operation %s: stopping: %s", operation_id, reason)

        def reserve(self, batch: ItemBatch, wanted: int) -> int:
            if not has_budget(batch.link):
                return wanted  # no budget: nothing to reserve, no table write per batch
            state = load(batch.operation_id)
            if state is None:
                return 0
            allowed = reserve_budget(state, batch.batch_index, wanted)
            save(state)
            return allowed

    gate = TableGate()

    async def on_item_batch(event: EventT) -> None:
        batch = ItemBatch.model_validate_json(event.value)
        check_key(event, batch.sponsor_id)
        state = load(batch.operation_id)
        if state is not None and (
            state.status.is_terminal or is_batch_done(state, batch.batch_index)
        ):
            return  # a replay of a batch already counted: nothing left to do
        if state is not None and state.stop_reason:
            stops.setdefault(batch.operation_id, state.stop_reason)
        elif state is not None and state.paused_at is not None:
            await hold(event, batch)
            return
        stopped = halting(gate, batch.operation_id)
        if stopped is not None:
            result = skip_batch(batch, stopped)
        elif batch.operation_type is OperationType.CODE_GENERATION:
            result = generate_codes(minter, batch)
        else:
            spec = batch.link
            if spec is None:
                raise InvalidMessage("a link-send batch needs its link spec")
            op_id = batch.operation_id
            if op_id not in in_flight:
                in_flight[op_id] = asyncio.Semaphore(spec.max_concurrency)
                turns[op_id] = asyncio.Semaphore(
                    max(2, -(-2 * spec.max_concurrency // spec.batch_size))
                )
            async with turns[op_id]:
                if is_paused(op_id):  # paused while this batch waited for its turn
                    await hold(event, batch)
                    return
                if spec.deliver:
                    result = await send_link_batch(
                        batch,
                        provider=providers[spec.channel.value],
                        pacer=pacer,
                        gate=gate,
                        in_flight=in_flight[op_id],
                    )
                else:
                    result = record_only(batch)
        if batch.recipients and any(r.dealer for r in batch.recipients):
            result.dealers = [r.dealer for r in batch.recipients]
        await results_topic.send(key=event.message.key, value=result.model_dump_json().encode())

    webhook_tasks: dict[tuple[str, str], asyncio.Task[bool]] = {}
    milestones = (25, 50, 75)

    def start_webhook(state: OperationState, event_name: str) -> None:
        """Deliver in the background: a slow receiver must never hold up the stream."""
        key = (state.operation_id, event_name)
        if state.callback_url is None or key in webhook_tasks:
            return
        payload = {
            "type": event_name,
            "operationId": state.operation_id,
            "operationType": state.operation_type.value,
            "status": state.status.value,
            "totalItems": state.total_items,
            "processedItems": state.processed_items,
            "successfulItems": state.successful_items,
            "failedItems": state.failed_items,
            "skippedItems": state.skipped_items,
            "totalCost": round(state.total_cost, 6),
            "completedAt": state.completed_at.isoformat() if state.completed_at else None,
            "timestamp": _now().isoformat(),
        }
        sponsor = state.sponsor_id

        async def report(result: AttemptResult) -> None:
            attempt = WebhookAttempt(
                operation_id=key[0],
                sponsor_id=sponsor,
                event=event_name,
                attempt=result.attempt,
                status_code=result.status_code,
                error=result.error,
                delivered=result.delivered,
                final=result.final,
                at=_now(),
            )
            await progress_topic.send(
                key=sponsor_key(sponsor), value=attempt.model_dump_json().encode()
            )

        task = asyncio.ensure_future(
            deliver(
                url=state.callback_url,
                event=event_name,
                payload=payload,
                secret=sponsor_secret(settings.webhook_secret, sponsor),
                allow_private=settings.webhook_allow_private,
                request_timeout=settings.webhook_timeout_seconds,
                max_attempts=settings.webhook_max_attempts,
                backoff=settings.webhook_backoff_seconds,
                report=report,
            )
        )
        webhook_tasks[key] = task
        # Kept after it ends: the timer must not start it again in this process while the
        # final attempt's report is still on its way to the table.

    async def on_progress_message(event: EventT) -> None:
        message = ProgressMessage.validate_json(event.value)
        check_key(event, message.sponsor_id)
        if isinstance(message, WebhookAttempt):
            await on_webhook_attempt(message)
        else:
            await on_batch_sunk(message)

    async def on_webhook_attempt(attempt: WebhookAttempt) -> None:
        state = load(attempt.operation_id)
        if state is None:
            raise InvalidMessage(f"unknown operation {attempt.operation_id}")
        state.webhook_attempts = [*state.webhook_attempts, attempt][-20:]
        if attempt.final and attempt.event == "operation_completed":
            state.webhook_state = "delivered" if attempt.delivered else "failed"
        state.version += 1
        state.last_updated = _now()
        save(state)
        await publish(state)
        log.info(
            "operation %s: webhook %s attempt %d: %s",
            attempt.operation_id,
            attempt.event,
            attempt.attempt,
            "delivered" if attempt.delivered else attempt.error or attempt.status_code,
        )

    async def on_batch_sunk(sunk: BatchSunk) -> None:
        state = load(sunk.operation_id)
        if state is None:
            raise InvalidMessage(f"unknown operation {sunk.operation_id}")
        if not apply_batch(state, sunk, now=_now(), max_errors=settings.max_errors_in_status):
            return
        state.recent_results = [*state.recent_results, *sunk.recent][-MAX_RECENT_RESULTS:]
        if state.status.is_terminal and state.callback_url:
            state.webhook_state = "pending"
        milestone = max(
            (m for m in milestones if state.processed_items * 100 >= m * state.total_items),
            default=0,
        )
        notify = (
            not state.status.is_terminal
            and state.progress_notifications
            and milestone > state.milestones_notified
        )
        if notify:
            state.milestones_notified = milestone
        save(state)
        if notify:
            start_webhook(state, "progress_update")
        if not state.status.is_terminal:
            dirty.add(sunk.operation_id)
            return
        stops.pop(state.operation_id, None)
        in_flight.pop(state.operation_id, None)
        turns.pop(state.operation_id, None)
        await publish(state)
        await record_operation(state)
        start_webhook(state, "operation_completed")
        log.info(
            "operation %s: %s (%d succeeded, %d failed, %d skipped)",
            state.operation_id,
            state.status.value,
            state.successful_items,
            state.failed_items,
            state.skipped_items,
        )

    async def on_control(event: EventT) -> None:
        command = ControlCommand.model_validate_json(event.value)
        check_key(event, command.sponsor_id)
        op_id, action = command.operation_id, command.action
        state = load(op_id)
        if state is None:
            if early_controls.get(op_id) != ControlAction.CANCEL.value:  # a cancel is final
                early_controls[op_id] = action.value
            log.info("operation %s: %s kept until its request arrives", op_id, action.value)
            return
        now = _now()
        if action is ControlAction.CANCEL:
            changed = request_cancel(state, now)
        elif action is ControlAction.PAUSE:
            changed = pause(state, now)
        else:
            changed = resume(state, now)
        if not changed:
            log.info(
                "operation %s: %s by %s ignored: %s",
                op_id,
                action.value,
                command.requested_by,
                "cancelling" if state.stop_reason == "CANCELLED" else state.status.value,
            )
            return
        if action is ControlAction.CANCEL:
            stops[op_id] = "CANCELLED"
        save(state)
        await publish(state)
        log.info(
            "operation %s: %s by %s at %d/%d items",
            op_id,
            {"cancel": "cancelled", "pause": "paused", "resume": "resumed"}[action.value],
            command.requested_by,
            state.processed_items,
            state.total_items,
        )

    @app.agent(control_topic)
    async def control(stream: StreamT[bytes]) -> AsyncIterator[None]:
        async for event in acked_when_handled(stream):
            await guarded(event, on_control)
            yield None

    @app.agent(operations_topic)
    async def explode(stream: StreamT[bytes]) -> AsyncIterator[None]:
        async for event in acked_when_handled(stream):
            await guarded(event, on_operations_message)
            yield None

    @app.agent(items_topic, concurrency=settings.process_concurrency)
    async def process(stream: StreamT[bytes]) -> AsyncIterator[None]:
        async for event in acked_when_handled(stream):
            await guarded(event, on_item_batch)
            yield None

    @app.agent(results_topic)
    async def sink(stream: StreamT[bytes]) -> AsyncIterator[None]:
        """Stores results in bulk, then announces each stored batch to the progress topic."""
        async for events in stream.take_events(  # type: ignore[attr-defined]  # not in StreamT
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
            await with_retry(
                f"sink: storing {len(batches)} result batches", store.insert_results, batches
            )
            for result in batches:
                await progress_topic.send(
                    key=sponsor_key(result.sponsor_id),
                    value=summarise(result).model_dump_json().encode(),
                )
            yield None

    @app.agent(progress_topic)
    async def count(stream: StreamT[bytes]) -> AsyncIterator[None]:
        async for event in acked_when_handled(stream):
            await guarded(event, on_progress_message)
            yield None

    ticking: dict[str, float] = {}

    @app.timer(settings.release_interval_seconds)
    async def release_due() -> None:
        """Ask for a release when an operation has held batches that are due.

        The table is only read here; the release itself runs in the explode agent (tables
        are written from stream events), through a tick on the operations topic. One tick
        per operation is outstanding at a time, or again after ``_TICK_RETRY_SECONDS``.
        """
        clock = asyncio.get_running_loop().time()
        now = _now()
        for op_id in list(operations.keys()):
            value = operations.get(op_id)
            if not value or not value.get(_HELD_COUNT):
                continue
            if clock - ticking.get(op_id, -_TICK_RETRY_SECONDS) < _TICK_RETRY_SECONDS:
                continue
            state = OperationState.model_validate(value)
            if state.status.is_terminal or not due_batches(state, now, 1):
                continue
            ticking[op_id] = clock
            tick = ReleaseTick(operation_id=op_id, sponsor_id=state.sponsor_id)
            await operations_topic.send(
                key=sponsor_key(state.sponsor_id), value=tick.model_dump_json().encode()
            )

    watchdog = StallWatchdog(settings.stall_seconds)

    @app.timer(settings.stall_check_interval_seconds)
    async def find_stalls() -> None:
        """Operations whose released batches stopped moving are driven on (see
        :mod:`streams.watchdog`); the table is only read here."""
        consumer = cast(InFlightSafeConsumer, app.consumer)
        assigned = consumer.assignment()
        clock = asyncio.get_running_loop().time()
        watched: list[str] = []
        for op_id in list(operations.keys()):
            value = operations.get(op_id)
            if value is None or OperationStatus(value["status"]).is_terminal:
                continue
            state = OperationState.model_validate(value)
            work = PendingWork.of(state)
            if not work or state.partition is None:
                continue
            tps = [TP(name, state.partition) for name in topics.flow()]
            if not set(tps) <= assigned:
                continue
            watched.append(op_id)
            verdict = watchdog.observe(op_id, work.fingerprint(state), tps, consumer, clock)
            if verdict is not None:
                message = remedy(state, work, verdict, settings.release_batches_per_tick)
                await operations_topic.send(
                    key=sponsor_key(state.sponsor_id), value=message.model_dump_json().encode()
                )
        watchdog.retain(watched)

    @app.timer(settings.status_interval_seconds)
    async def publish_running() -> None:
        """Every running operation gets a fresh snapshot at least once per interval.

        Each value is read again right before it is sent: an agent may have moved the
        operation on while an earlier send awaited, and the compacted topic keeps the last
        snapshot per key, so a stale one must never be sent after a newer one.
        """
        for op_id in list(operations.keys()):
            value = operations.get(op_id)
            if value is None:
                continue
            if value.get(_WEBHOOK_STATE) == "pending":  # e.g. after a restart
                start_webhook(OperationState.model_validate(value), "operation_completed")
            if op_id in dirty or not OperationStatus(value["status"]).is_terminal:
                state = OperationState.model_validate(value)
                state.last_updated = _now()
                await publish(state)

    return app
