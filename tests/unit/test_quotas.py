"""Quotas: the arithmetic, and the worker as their single writer (admit in submit order,
refuse with the reason, give the slot back when an operation ends, take Admin overrides)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import pytest

from core.quotas import refusal, seconds_to_midnight, taken, use_on
from schemas.common import OperationStatus
from schemas.messages import ControlAction, ControlCommand
from schemas.quotas import (
    RUNNING_LIMIT,
    Quota,
    QuotaLimits,
    QuotaSnapshot,
    QuotaUpdate,
    QuotaUse,
)
from schemas.status import OperationSnapshot
from streams.agents import control, explode, guarded
from streams.tables import QuotaRecord
from streams.testing import FakeWorker, event, fake_worker, worker_settings
from tests.unit.test_agents import codes_request, handle_operations, run_batches_through

MOMENT = datetime(2026, 11, 27, 23, 59, 30, tzinfo=UTC)
LIMITS = QuotaLimits(
    max_concurrent_operations=3,
    max_items_per_operation=5000,
    max_operations_per_day=10,
    max_items_per_day=50_000,
)


def op_id(n: int) -> str:
    return f"codegen_{n:032x}"


def quota_worker(**settings: Any) -> FakeWorker:
    values = {
        "quota_max_concurrent_operations": 3,
        "quota_max_operations_per_day": 10,
        "quota_max_items_per_day": 50_000,
        "max_items_per_operation": 5000,
        **settings,
    }
    return fake_worker(**values)


def snapshots(worker: FakeWorker) -> dict[str, OperationSnapshot]:
    latest: dict[str, OperationSnapshot] = {}
    for snapshot in worker.out["status"].messages(OperationSnapshot):
        latest[snapshot.operation_id] = snapshot
    return latest


def quota_snapshots(worker: FakeWorker) -> list[QuotaSnapshot]:
    return worker.out["quotas"].messages(QuotaSnapshot)


def test_each_quota_refuses_with_its_numbers() -> None:
    use = QuotaUse(
        concurrent_operations=1, operations_today=4, items_today=49_000, day=date(2026, 11, 27)
    )
    assert refusal(LIMITS, use, 1000, MOMENT) is None
    over = refusal(LIMITS, use, 1001, MOMENT)
    assert over is not None
    assert (over.quota, over.current, over.requested, over.limit) == (
        Quota.ITEMS_PER_DAY,
        49_000,
        1001,
        50_000,
    )
    assert over.retry_after_seconds == 30  # midnight UTC
    too_big = refusal(LIMITS, use, 5001, MOMENT)
    assert too_big is not None and too_big.quota is Quota.ITEMS_PER_OPERATION
    assert too_big.retry_after_seconds is None  # waiting does not help
    busy = QuotaUse(concurrent_operations=3, day=date(2026, 11, 27))
    full = refusal(LIMITS, busy, 1, MOMENT)
    assert full is not None and full.quota is Quota.CONCURRENT and full.retry_after_seconds is None
    tenth = QuotaUse(operations_today=10, day=date(2026, 11, 27))
    daily = refusal(LIMITS, tenth, 1, MOMENT)
    assert daily is not None and daily.quota is Quota.OPERATIONS_PER_DAY


def test_daily_use_starts_again_at_midnight_utc_but_running_operations_still_count() -> None:
    yesterday = QuotaUse(
        concurrent_operations=2, operations_today=10, items_today=50_000, day=date(2026, 11, 26)
    )
    assert refusal(LIMITS, yesterday, 5000, MOMENT) is None
    today = use_on(yesterday, MOMENT.date())
    assert (today.concurrent_operations, today.operations_today, today.items_today) == (2, 0, 0)
    after = taken(yesterday, 5000, MOMENT)
    assert (after.operations_today, after.items_today, after.day) == (1, 5000, MOMENT.date())
    assert seconds_to_midnight(MOMENT) == 30
    assert seconds_to_midnight(datetime(2026, 11, 27, 23, 59, 59, 999_000, tzinfo=UTC)) == 1


def test_unlimited_and_zero_limits() -> None:
    heavy = QuotaUse(concurrent_operations=10**6, operations_today=10**6, items_today=10**12)
    assert refusal(QuotaLimits(), heavy, 10**6, MOMENT) is None
    suspended = refusal(QuotaLimits(max_concurrent_operations=0), QuotaUse(), 1, MOMENT)
    assert suspended is not None and suspended.limit == 0


async def test_the_worker_admits_in_submit_order_and_refuses_the_rest() -> None:
    worker = quota_worker()
    for n in range(5):
        await handle_operations(worker, codes_request(100, 50, operationId=op_id(n)))
    states = snapshots(worker)
    assert [states[op_id(n)].status for n in range(5)] == [OperationStatus.PROCESSING] * 3 + [
        OperationStatus.FAILED
    ] * 2
    refused = states[op_id(3)]
    assert refused.stop_reason == "QUOTA_EXCEEDED"
    assert refused.quota_refusal is not None
    assert refused.quota_refusal.quota is Quota.CONCURRENT
    assert (refused.quota_refusal.current, refused.quota_refusal.limit) == (3, 3)
    assert refused.batches_total == 0 and refused.processed_items == 0
    assert quota_snapshots(worker)[-1].use.concurrent_operations == 3
    # only the admitted operations were exploded; the refused ones were stored as history
    stored = {row["operation_id"] for row in worker.store.tables.rows("operations")}
    assert stored >= {op_id(3), op_id(4)}


async def test_a_finished_operation_gives_its_slot_back() -> None:
    worker = quota_worker(quota_max_concurrent_operations=1)
    await handle_operations(worker, codes_request(100, 50, operationId=op_id(1)))
    await handle_operations(worker, codes_request(100, 50, operationId=op_id(2)))
    assert snapshots(worker)[op_id(2)].status is OperationStatus.FAILED
    await run_batches_through(worker)
    assert snapshots(worker)[op_id(1)].status is OperationStatus.COMPLETED
    assert quota_snapshots(worker)[-1].use.concurrent_operations == 0
    # the refused operation, submitted again (a new attempt), is judged afresh and admitted
    await handle_operations(
        worker, codes_request(100, 50, operationId=op_id(2), submissionId="second")
    )
    assert snapshots(worker)[op_id(2)].status is OperationStatus.PROCESSING
    use = quota_snapshots(worker)[-1].use
    assert (use.concurrent_operations, use.operations_today, use.items_today) == (1, 2, 200)


async def test_a_cancelled_operation_gives_its_slot_back() -> None:
    worker = quota_worker(quota_max_concurrent_operations=1)
    await handle_operations(worker, codes_request(100, 50, operationId=op_id(1)))
    cancel = ControlCommand(
        operation_id=op_id(1),
        sponsor_id=7,
        action=ControlAction.CANCEL,
        requested_by="u",
        requested_at=MOMENT,
    )
    await guarded(worker.ctx, event(cancel, topic="unit.control"), control.handle)
    await run_batches_through(worker)
    assert snapshots(worker)[op_id(1)].status is OperationStatus.CANCELLED
    await handle_operations(worker, codes_request(100, 50, operationId=op_id(2)))
    assert snapshots(worker)[op_id(2)].status is OperationStatus.PROCESSING


async def test_a_replayed_request_is_neither_counted_twice_nor_refused() -> None:
    worker = quota_worker(quota_max_concurrent_operations=1)
    request = codes_request(100, 50, operationId=op_id(1))
    await handle_operations(worker, request)
    await handle_operations(worker, request, offset=0)
    assert snapshots(worker)[op_id(1)].status is OperationStatus.PROCESSING
    assert quota_snapshots(worker)[-1].use.operations_today == 1


async def test_admin_operations_count_but_are_not_refused() -> None:
    worker = quota_worker(quota_max_concurrent_operations=1)
    for n in range(3):
        await handle_operations(
            worker, codes_request(100, 50, operationId=op_id(n), quotaExempt=True)
        )
    assert all(s.status is OperationStatus.PROCESSING for s in snapshots(worker).values())
    await handle_operations(worker, codes_request(100, 50, operationId=op_id(9)))
    assert snapshots(worker)[op_id(9)].status is OperationStatus.FAILED
    assert quota_snapshots(worker)[-1].use.concurrent_operations == 3


async def test_the_engine_bound_refuses_even_unlimited_and_admin_operations() -> None:
    worker = quota_worker(quota_max_concurrent_operations=0, max_running_operations_per_sponsor=2)
    for n in range(2):
        await handle_operations(worker, codes_request(100, 50, operationId=op_id(n)))
    await handle_operations(worker, codes_request(100, 50, operationId=op_id(2), quotaExempt=True))
    refused = snapshots(worker)[op_id(2)]
    assert refused.status is OperationStatus.FAILED
    assert refused.stop_reason == "QUOTA_EXCEEDED"
    assert refused.quota_refusal is not None
    assert refused.quota_refusal.quota is Quota.CONCURRENT
    assert (refused.quota_refusal.current, refused.quota_refusal.limit) == (2, 2)
    assert quota_snapshots(worker)[-1].use.concurrent_operations == 2
    await run_batches_through(worker)  # the first two finish and give their slots back
    await handle_operations(worker, codes_request(100, 50, operationId=op_id(3)))
    assert snapshots(worker)[op_id(3)].status is OperationStatus.PROCESSING


def test_a_sponsor_record_at_the_engine_bound_is_one_kafka_message() -> None:
    """The quotas table's value for a sponsor with every slot taken, by the longest
    operation ids, as the table writes it to its changelog (JSON)."""
    record = QuotaRecord(
        active={f"{'x' * 31}_{n:032x}": 50_000_000 for n in range(RUNNING_LIMIT)},
        use=QuotaUse(concurrent_operations=RUNNING_LIMIT),
    )
    size = len(json.dumps(record.model_dump(mode="json")).encode())
    assert size < 0.9 * 1_048_576, f"{size:,} bytes"
    with pytest.raises(ValueError):
        QuotaLimits.model_validate({"maxConcurrentOperations": RUNNING_LIMIT + 1})
    with pytest.raises(ValueError):
        worker_settings(quota_max_concurrent_operations=RUNNING_LIMIT + 1)


async def test_admin_overrides_for_one_sponsor_and_for_every_sponsor() -> None:
    worker = quota_worker(quota_max_concurrent_operations=1)
    defaults = QuotaUpdate(
        overrides={"max_concurrent_operations": 2},
        requested_by="admin",
        requested_at=MOMENT,
        update_id="u1",
    )
    await guarded(worker.ctx, event(defaults, sponsor_id=0), _keyed(b"defaults"))
    for n in range(3):
        await handle_operations(worker, codes_request(100, 50, operationId=op_id(n)))
    assert snapshots(worker)[op_id(1)].status is OperationStatus.PROCESSING
    assert snapshots(worker)[op_id(2)].status is OperationStatus.FAILED
    own = QuotaUpdate(
        sponsor_id=7,
        overrides={"max_concurrent_operations": None},
        requested_by="admin",
        requested_at=MOMENT,
        update_id="u2",
    )
    await handle_operations(worker, own)
    await handle_operations(
        worker, codes_request(100, 50, operationId=op_id(2), submissionId="again")
    )
    assert snapshots(worker)[op_id(2)].status is OperationStatus.PROCESSING
    published = quota_snapshots(worker)
    assert published[0].sponsor_id is None and published[0].update_ids == ["u1"]
    assert any(s.sponsor_id == 7 and "u2" in s.update_ids for s in published)


async def test_a_quota_update_keyed_for_another_sponsor_is_dead_lettered() -> None:
    worker = quota_worker()
    update = QuotaUpdate(
        sponsor_id=8, overrides={}, requested_by="x", requested_at=MOMENT, update_id="u"
    )
    await guarded(worker.ctx, event(update, sponsor_id=7), explode.handle)
    assert worker.out["dead_letter"].sent
    assert worker.tables["quotas"] == {}


def _keyed(key: bytes) -> Any:
    """explode.handle on an event re-keyed to ``key`` (the defaults key is not a sponsor)."""

    async def handle(ctx: Any, message: Any) -> None:
        message.message.key = key
        await explode.handle(ctx, message)

    return handle


@pytest.mark.parametrize("value", [-1, 10**13, "3", 2.0, True])
def test_out_of_range_limits_are_refused(value: object) -> None:
    with pytest.raises(ValueError):
        QuotaLimits.model_validate({"maxItemsPerDay": value})


async def test_a_replay_counts_an_operation_whose_count_a_crash_lost() -> None:
    worker = quota_worker(quota_max_concurrent_operations=2)
    request = codes_request(100, 50, operationId=op_id(1))
    await handle_operations(worker, request)
    worker.tables["quotas"].clear()  # the operations table was written, the quota one lost
    await handle_operations(worker, request)
    use = quota_snapshots(worker)[-1].use
    assert (use.concurrent_operations, use.operations_today, use.items_today) == (1, 1, 100)
    await handle_operations(worker, request)  # counted once, however often replayed
    assert quota_snapshots(worker)[-1].use.operations_today == 1
