"""Putting an operation on Kafka: all of it, or a clear answer about what happens instead.

Every route that creates an operation (codes, link sends, dealer invitations, retries)
queues it through :func:`queue`. The operation's messages go to its sponsor's partition of
the operations topic, each stamped with a fresh *submission id*; the worker registers an
operation from the first submission it sees and ignores the messages of any other, so a
submit that is retried under the same operation id never runs twice.

The answer is 202 only when the broker acknowledged every message. Otherwise the API gives
up in two steps: after ``GIVE_UP_SHARE`` of its produce timeout it purges what is still
queued locally (those messages certainly never reach Kafka), then waits for the delivery
reports of the messages in flight, which librdkafka's ``message.timeout.ms`` (the produce
timeout less :data:`REPORT_MARGIN_SECONDS`) guarantees within the API's wait. Then:

* a message certainly not written → **503, ``outcome: not_queued``**: the operation will not
  run (a link send whose chunks did not all arrive never releases a batch; the worker
  settles it as ``SUBMISSION_INCOMPLETE``), so a retry is safe;
* no certain failure but a message possibly written → **503, ``outcome: unknown``**: the
  operation may still run. ``GET /status/{operationId}`` tells; a retry with the same
  ``Idempotency-Key`` is always safe, because the key fixes the operation id.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import Query, Request, Response
from fastapi.responses import JSONResponse

from api.auth import Principal
from api.deps import settings_of, sink_of, view_of
from api.errors import ApiError, validation_error
from api.producer import MessageSink, ProduceError
from api.services import idempotency, quotas
from api.services.chunks import BatchTooLarge, encode_chunks
from api.services.idempotency import Claim
from api.services.presenters import metrics, status_url
from core.schedule import planned_start, releases_end
from core.settings import ApiSettings
from core.topics import Topics, sponsor_key
from core.webhooks import UnsafeTarget, check_target
from schemas.common import OperationStatus, OperationType
from schemas.jobs import JobProcessingOptions
from schemas.link_wire import LinkSendSpec, PreparedRecipient
from schemas.messages import OperationAbort, OperationRequested
from schemas.requests import ProcessingOptions
from schemas.responses import DryRunResult, Envelope, ErrorBody, OperationAccepted
from schemas.run_rules import AutoPauseRule, ReleaseSchedule
from schemas.status import OperationSnapshot

log = logging.getLogger("bulkops.api")

# Recipient chunks stay well under Kafka's 1 MB message limit.
CHUNK_BYTES = 900_000
#: Share of the produce timeout after which messages still queued locally are purged.
GIVE_UP_SHARE = 0.6
#: librdkafka reports every message this long before the API stops waiting.
REPORT_MARGIN_SECONDS = 1.0

UNAVAILABLE = {
    "model": ErrorBody,
    "description": "Kafka did not acknowledge the operation. `details.outcome` says whether it "
    "will not run (`not_queued`: retry freely) or may still run (`unknown`: retry with the "
    "same Idempotency-Key, or check the status first).",
}
QUOTA_EXCEEDED = {
    "model": ErrorBody,
    "description": "Over a quota (`error: QUOTA_EXCEEDED`): `details` names the quota, its "
    "use and limit; `Retry-After` says when a daily quota resets.",
}


DryRun = Annotated[
    bool,
    Query(
        alias="dryRun",
        description="Validate, price and plan the submit (with the quota it would take) "
        "without queueing or storing anything: 200 with a `DryRunResult`.",
    ),
]
DRY_RUN = {
    "model": Envelope[DryRunResult],
    "description": "`dryRun=true`: what the submit would do; nothing queued or stored",
}


def dry_run_answer(result: DryRunResult) -> JSONResponse:
    envelope = Envelope(data=result, message="Dry run: nothing was queued or stored")
    return JSONResponse(status_code=200, content=envelope.model_dump(mode="json"))


def planned_send(
    request: Request,
    principal: Principal,
    sponsor_id: int,
    operation_type: OperationType,
    items: int,
    spec: LinkSendSpec,
) -> DryRunResult:
    """A dry run's plan for ``items`` sends with ``spec``, starting now at the channel's pace."""
    now = datetime.now(UTC)
    rate = settings_of(request).send_rate(spec.channel.value)
    return DryRunResult(
        operation_type=operation_type,
        total_items=items,
        valid_items=items,
        batches=-(-items // spec.batch_size),
        estimated_cost=round(items * spec.price_per_message, 6),
        quota=quotas.estimate(request, principal, sponsor_id, items),
        planned_start=now,
        estimated_completion_time=now + timedelta(seconds=1 + items / rate),
    )


def delivery_timeout(settings: ApiSettings) -> float:
    """librdkafka's ``message.timeout.ms`` for the API's producer, in seconds."""
    return max(1.0, settings.produce_timeout_seconds - REPORT_MARGIN_SECONDS)


def operation_id_for(prefix: str, sponsor_id: int, idempotency_key: str | None) -> str:
    """A fresh operation id, or the one an idempotency key stands for (per sponsor and kind)."""
    if idempotency_key is None:
        return f"{prefix}_{uuid.uuid4().hex}"
    digest = hashlib.sha256(f"{sponsor_id}\x00{prefix}\x00{idempotency_key}".encode())
    return f"{prefix}_{digest.hexdigest()[:32]}"


async def already_submitted(
    request: Request, claim: Claim | None, operation_id: str, sponsor_id: int
) -> OperationSnapshot | None:
    """The operation an idempotency key already created for this sponsor, if the API knows it
    (live, or archived). Without a key the operation id is new: nothing to look up."""
    if claim is None:
        return None
    view = view_of(request)
    snapshot = await view.find(operation_id)
    if snapshot is None or snapshot.sponsor_id != sponsor_id:
        return None
    if snapshot.stop_reason == "QUOTA_EXCEEDED":
        return None  # refused, not accepted: a new attempt is judged afresh
    return snapshot


def sponsor_for_submit(principal: Principal, requested: int | None) -> int:
    """The sponsor an operation is for: the token's, or the one an Admin names."""
    if principal.is_admin:
        if requested is None:
            raise validation_error("sponsorId", "required when an Admin submits for a sponsor")
        return requested
    assert principal.sponsor_id is not None
    if requested is not None and requested != principal.sponsor_id:
        raise ApiError(403, "FORBIDDEN", "sponsorId does not match the sponsor of your token")
    return principal.sponsor_id


@dataclass(frozen=True)
class Delivery:
    """What Kafka did with a submission's messages."""

    failures: list[ProduceError]

    @property
    def queued(self) -> bool:
        return not self.failures

    @property
    def certainly_lost(self) -> bool:
        return any(not failure.possibly_persisted for failure in self.failures)


async def deliver(
    sink: MessageSink, topic: str, key: bytes, messages: list[bytes], settings: ApiSettings
) -> Delivery:
    """Produce ``messages`` in order and wait for every delivery report (see the module doc)."""
    futures = [sink.produce(topic, key, message) for message in messages]
    _, pending = await asyncio.wait(
        futures, timeout=settings.produce_timeout_seconds * GIVE_UP_SHARE
    )
    if pending:
        sink.purge_queued()
        _, pending = await asyncio.wait(
            pending, timeout=settings.produce_timeout_seconds * (1 - GIVE_UP_SHARE)
        )
    failures: list[ProduceError] = []
    for future in futures:
        if future in pending:
            future.cancel()
            failures.append(ProduceError("no delivery report in time", possibly_persisted=True))
        elif isinstance(future.exception(), ProduceError):
            failures.append(future.exception())  # type: ignore[arg-type]
        elif future.exception() is not None:
            failures.append(ProduceError(repr(future.exception()), possibly_persisted=True))
    return Delivery(failures)


async def queue(
    request: Request,
    snapshot: OperationSnapshot,
    messages: list[bytes],
    *,
    submission_id: str,
    admission: bool = False,
) -> OperationSnapshot:
    """Put an operation's messages on its sponsor's partition, in order, acknowledged, or
    raise the 503 that says whether it can still run. With ``admission``, wait for the
    worker's quota verdict too (429 when refused); the snapshot to answer with."""
    settings = settings_of(request)
    topics = Topics(settings.topic_prefix)
    sink = sink_of(request)
    key = sponsor_key(snapshot.sponsor_id)
    delivery = await deliver(sink, topics.operations.name, key, messages, settings)
    if not delivery.queued:
        reason = "; ".join(sorted({str(failure) for failure in delivery.failures}))
        if delivery.certainly_lost:
            if len(messages) > 1:
                _abort(sink, topics, snapshot, submission_id, reason)
            log.error(
                "operation %s: not queued, it will not run: %s", snapshot.operation_id, reason
            )
            raise ApiError(
                503,
                "SYSTEM_ERROR",
                "Queue service unavailable: the operation was not queued and will not run; "
                "retrying is safe",
                {"operationId": snapshot.operation_id, "outcome": "not_queued", "reason": reason},
            )
        log.error(
            "operation %s: Kafka did not confirm it in time; it may still run: %s",
            snapshot.operation_id,
            reason,
        )
        raise ApiError(
            503,
            "SYSTEM_ERROR",
            "Queue service did not confirm the operation in time: it may still run. Check "
            f"GET {status_url(snapshot.operation_id)} before submitting again, or repeat "
            "the request with the same Idempotency-Key, which never runs it twice",
            {"operationId": snapshot.operation_id, "outcome": "unknown", "reason": reason},
        )
    view_of(request).apply(snapshot)
    try:
        await sink.send(
            topics.status.name,
            snapshot.operation_id.encode(),
            snapshot.model_dump_json().encode(),
        )
    except ProduceError as exc:  # the worker publishes its own snapshot soon after
        log.warning("operation %s: queued snapshot not published: %s", snapshot.operation_id, exc)
    if admission:
        registered = await quotas.verdict(request, snapshot.operation_id)
        if registered is not None:
            if registered.request_hash != snapshot.request_hash:  # a concurrent other request
                raise ApiError(
                    422,
                    "IDEMPOTENCY_KEY_REUSED",
                    "This Idempotency-Key was used for a different request at the same time; "
                    "that request made the operation",
                    {"operationId": snapshot.operation_id},
                )
            return registered
    return snapshot


def _abort(
    sink: MessageSink, topics: Topics, snapshot: OperationSnapshot, submission_id: str, reason: str
) -> None:
    """Tell the worker to settle what did arrive, without waiting: if the abort is lost as
    well, the worker's stall watchdog settles the operation later."""
    abort = OperationAbort(
        operation_id=snapshot.operation_id,
        sponsor_id=snapshot.sponsor_id,
        reason=f"API could not queue every message: {reason}"[:1000],
        submission_id=submission_id,
    )
    future = sink.produce(
        topics.operations.name, sponsor_key(snapshot.sponsor_id), abort.model_dump_json().encode()
    )
    future.add_done_callback(_ignore_outcome)


def _ignore_outcome(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()  # retrieved: a lost abort is the watchdog's to make up for


async def queue_link_send(
    request: Request,
    principal: Principal,
    *,
    sponsor_id: int,
    operation_id: str,
    name: str,
    spec: LinkSendSpec,
    recipients: list[PreparedRecipient],
    now: datetime,
    retry_of: str | None = None,
    callback_url: str | None = None,
    progress_notifications: bool = False,
    schedule: ReleaseSchedule | None = None,
    operation_type: OperationType = OperationType.LINK_SEND,
    request_hash: str | None = None,
    auto_pause: AutoPauseRule | None = None,
    metadata: dict[str, Any] | None = None,
    priority: int = 5,
) -> OperationSnapshot:
    """The header and the recipient chunks of a link send (or of another operation that
    sends to recipients, like dealer invitations), queued in order (or 503)."""
    admission = quotas.admission_wanted(request, principal, sponsor_id, len(recipients))
    submission_id = new_submission_id()
    try:
        chunks = encode_chunks(
            kind="recipients",
            operation_id=operation_id,
            sponsor_id=sponsor_id,
            items=recipients,
            batch_size=spec.batch_size,
            max_bytes=CHUNK_BYTES,
            submission_id=submission_id,
        )
    except BatchTooLarge as exc:
        raise validation_error("processing.batchSize", str(exc)) from exc
    header = OperationRequested(
        operation_id=operation_id,
        operation_type=operation_type,
        sponsor_id=sponsor_id,
        requested_by=principal.subject,
        requested_at=now,
        total_items=len(recipients),
        operation_name=name,
        retry_of=retry_of,
        callback_url=callback_url,
        progress_notifications=progress_notifications,
        link_send=spec.model_copy(update={"recipient_chunks": len(chunks)}),
        schedule=schedule,
        submission_id=submission_id,
        quota_exempt=quotas.exempt(request, principal),
        request_hash=request_hash,
        auto_pause=auto_pause,
        metadata=metadata or {},
        priority=priority,
    )
    snapshot = queued_snapshot(
        operation_id, sponsor_id, principal, operation_type, name, len(recipients), now, priority
    )
    snapshot.retry_of = retry_of
    snapshot.request_hash = request_hash
    if schedule is not None:
        snapshot.scheduled_start = planned_start(schedule)
        snapshot.releases_end_at = releases_end(schedule, -(-len(recipients) // spec.batch_size))
    return await queue(
        request,
        snapshot,
        [header.model_dump_json().encode(), *chunks],
        submission_id=submission_id,
        admission=admission,
    )


def auto_pause_rule(processing: ProcessingOptions | JobProcessingOptions) -> AutoPauseRule | None:
    """The request's pauseOnErrorRate as the worker's rule (None: never pause by itself)."""
    if processing.pause_on_error_rate is None:
        return None
    return AutoPauseRule(
        rate=processing.pause_on_error_rate, window=processing.pause_on_error_window
    )


def new_submission_id() -> str:
    return uuid.uuid4().hex


def queued_snapshot(
    operation_id: str,
    sponsor_id: int,
    principal: Principal,
    operation_type: OperationType,
    name: str,
    total: int,
    now: datetime,
    priority: int = 5,
) -> OperationSnapshot:
    return OperationSnapshot(
        operation_id=operation_id,
        sponsor_id=sponsor_id,
        operation_type=operation_type,
        operation_name=name,
        requested_by=principal.subject,
        status=OperationStatus.QUEUED,
        priority=priority,
        total_items=total,
        created_at=now,
        last_updated=now,
        current_phase="Queued",
        status_message="Waiting for a worker",
        version=0,
    )


async def checked_callback(request: Request, url: object | None) -> str | None:
    """The callback URL as a string, once it is known not to point inside our network."""
    if url is None:
        return None
    try:
        await asyncio.to_thread(
            check_target, str(url), allow_private=settings_of(request).webhook_allow_private
        )
    except UnsafeTarget as exc:
        raise validation_error("processing.callbackUrl", str(exc)) from exc
    return str(url)


def accepted_again(response: Response, snapshot: OperationSnapshot) -> Envelope[OperationAccepted]:
    """The answer to a repeated submit: the operation its idempotency key already made."""
    response.headers[idempotency.REPLAYED_HEADER] = "true"
    return Envelope(
        data=OperationAccepted(
            operation_id=snapshot.operation_id,
            operation_type=snapshot.operation_type,
            job_type=snapshot.job_type,
            status=snapshot.status,
            total_items=snapshot.total_items,
            created_at=snapshot.created_at,
            scheduled_start=snapshot.scheduled_start,
            status_url=status_url(snapshot.operation_id),
            metrics=metrics(snapshot, datetime.now(UTC)),
        ),
        message="Already submitted with this Idempotency-Key: this is that operation",
    )
