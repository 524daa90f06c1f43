"""Sponsor quotas, decided by the worker: the single writer of each sponsor's use.

A sponsor's requests, its quota updates and the progress of its operations all arrive on
the sponsor's partition, so the explode agent admits or refuses each operation in submit
order, exactly, and the count agent gives the slot back when the operation ends. Both run
on one event loop and never await between loading and saving a record.

The default overrides are kept per partition (``defaults@<partition>``): an update of them
is sent to every partition, and each partition's copy is restored from its own changelog.
"""

from __future__ import annotations

import logging
from datetime import datetime

from core.quotas import default_limits, quota_now, refusal, taken, use_on
from core.topics import DEFAULTS_KEY, sponsor_key
from schemas.messages import OperationRequested
from schemas.quotas import QuotaLimits, QuotaRefusal, QuotaSnapshot, QuotaUpdate, QuotaUse
from streams.context import WorkerContext, now
from streams.tables import QuotaRecord

log = logging.getLogger("bulkops.worker")

_UPDATE_IDS_KEPT = 16


def defaults_key(partition: int) -> str:
    return f"defaults@{partition}"


def limits_for(ctx: WorkerContext, sponsor_id: int, partition: int) -> QuotaLimits:
    """A sponsor's limits: settings, then the default overrides, then its own."""
    defaults = ctx.tables.quotas.load(defaults_key(partition)).overrides
    own = ctx.tables.quotas.load(str(sponsor_id)).overrides
    return default_limits(ctx.settings, defaults).overridden_by(own)


def admit(ctx: WorkerContext, request: OperationRequested, partition: int) -> QuotaRefusal | None:
    """Take a slot and today's counts for ``request``, or say which quota refuses it.

    Idempotent per operation: a request already holding a slot is admitted again without
    counting twice. Operations an Admin submitted are counted and refused only at the
    engine's bound on unfinished operations (``max_running_operations_per_sponsor``), which
    keeps the sponsor's record a Kafka message.
    """
    key = str(request.sponsor_id)
    record = ctx.tables.quotas.load(key)
    if request.operation_id in record.active:
        return None
    moment = quota_now(ctx.settings)
    use = _current(record, moment)
    bound = QuotaLimits(max_concurrent_operations=ctx.settings.max_running_operations_per_sponsor)
    over_bound = refusal(bound, use, request.total_items, moment)
    if over_bound is not None:
        return over_bound
    if not request.quota_exempt:
        limits = limits_for(ctx, request.sponsor_id, partition)
        refused = refusal(limits, use, request.total_items, moment)
        if refused is not None:
            return refused
    _take(ctx, record, request, use, moment)
    return None


def count_in(ctx: WorkerContext, request: OperationRequested) -> bool:
    """Count a registered, running operation that holds no slot (its count was lost in a
    crash between the two table writes): True if it was missing."""
    key = str(request.sponsor_id)
    record = ctx.tables.quotas.load(key)
    if request.operation_id in record.active:
        return False
    moment = quota_now(ctx.settings)
    _take(ctx, record, request, _current(record, moment), moment)
    log.warning(
        "operation %s: counted against sponsor %d's quotas on a replay",
        request.operation_id,
        request.sponsor_id,
    )
    return True


def _take(
    ctx: WorkerContext,
    record: QuotaRecord,
    request: OperationRequested,
    use: QuotaUse,
    moment: datetime,
) -> None:
    record.active[request.operation_id] = request.total_items
    record.use = taken(use, request.total_items, moment)
    ctx.tables.quotas.save(str(request.sponsor_id), record)


def release(ctx: WorkerContext, sponsor_id: int, operation_id: str) -> bool:
    """Give an ended operation's slot back; False when it held none."""
    key = str(sponsor_id)
    record = ctx.tables.quotas.load(key)
    if record.active.pop(operation_id, None) is None:
        return False
    record.use = record.use.model_copy(update={"concurrent_operations": len(record.active)})
    ctx.tables.quotas.save(key, record)
    return True


def apply_update(ctx: WorkerContext, update: QuotaUpdate, partition: int) -> str:
    """Store an Admin's overrides; the key they were stored under."""
    key = str(update.sponsor_id) if update.sponsor_id is not None else defaults_key(partition)
    record = ctx.tables.quotas.load(key)
    record.overrides = dict(update.overrides)
    record.update_ids = [*record.update_ids, update.update_id][-_UPDATE_IDS_KEPT:]
    ctx.tables.quotas.save(key, record)
    log.info(
        "quota overrides of %s set by %s: %s",
        f"sponsor {update.sponsor_id}" if update.sponsor_id is not None else "every sponsor",
        update.requested_by,
        update.overrides or "none (defaults)",
    )
    return key


async def publish(ctx: WorkerContext, key: str) -> None:
    """Put a quota record on the compacted quotas topic, for the API's quota view."""
    record = ctx.tables.quotas.load(key)
    defaults = key.startswith("defaults@")
    snapshot = QuotaSnapshot(
        sponsor_id=None if defaults else int(key),
        overrides=record.overrides,
        use=_current(record, quota_now(ctx.settings)),
        update_ids=record.update_ids,
        updated_at=now(),
    )
    message_key = DEFAULTS_KEY if defaults else sponsor_key(int(key))
    await ctx.out.quotas.send(key=message_key, value=snapshot.model_dump_json().encode())


def _current(record: QuotaRecord, moment: datetime) -> QuotaUse:
    use = use_on(record.use, moment.date())
    return use.model_copy(update={"concurrent_operations": len(record.active)})
