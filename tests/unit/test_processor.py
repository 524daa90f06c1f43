"""Processor processes without a broker: what they know of cancels and pauses, what they make
of a batch (the same codes as the worker), where the worker hands batches out when it runs
processors, and how a worker keeps its processors running."""

from __future__ import annotations

import os
import signal
import sys
from datetime import UTC, datetime, timedelta

import psutil
import pytest
from prometheus_client import REGISTRY

from bulkops.processes import Processors
from schemas.common import ItemStatus, OperationType
from schemas.messages import BatchSunk, ControlAction, ControlCommand, ItemBatch, ResultBatch
from streams.agents import count, guarded, process, sink
from streams.agents.release import batches_outbox
from streams.context import InvalidMessage
from streams.control_view import ControlView
from streams.processor import outcome
from streams.testing import FakeWorker, event, fake_worker
from tests.support import wait_for
from tests.unit.test_agents import CODEGEN, chunk, codes_request, handle_operations, link_header

NOW = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
OTHER = "codegen_" + "b" * 32


def command(
    action: ControlAction, operation_id: str = CODEGEN, at: datetime = NOW
) -> ControlCommand:
    return ControlCommand(
        operation_id=operation_id,
        sponsor_id=7,
        action=action,
        requested_by="u",
        requested_at=at,
    )


def test_a_cancel_is_final_and_a_pause_lasts_until_a_resume() -> None:
    view = ControlView(timedelta(days=1))
    view.apply(command(ControlAction.PAUSE))
    assert view.is_paused(CODEGEN) and view.stop_reason(CODEGEN) is None
    view.apply(command(ControlAction.RESUME))
    assert not view.is_paused(CODEGEN)
    view.apply(command(ControlAction.PAUSE))
    view.apply(command(ControlAction.CANCEL))
    view.apply(command(ControlAction.RESUME))
    view.apply(command(ControlAction.PAUSE))
    assert view.stop_reason(CODEGEN) == "CANCELLED" and not view.is_paused(CODEGEN)
    assert view.stop_reason(OTHER) is None and not view.is_paused(OTHER)


def test_old_commands_are_forgotten() -> None:
    view = ControlView(timedelta(hours=1))
    view.apply(command(ControlAction.CANCEL, at=NOW - timedelta(hours=2)))
    view.apply(command(ControlAction.PAUSE, OTHER, at=NOW - timedelta(minutes=5)))
    assert view.forget_before(NOW) == 1
    assert view.stop_reason(CODEGEN) is None and view.is_paused(OTHER)
    assert len(view) == 1


def released_to(worker: FakeWorker, topic: str) -> list[ItemBatch]:
    return worker.out[topic].messages(ItemBatch)


async def test_code_batches_go_to_the_work_topic_when_the_worker_runs_processors() -> None:
    worker = fake_worker(processors=1)
    await handle_operations(worker, codes_request())
    assert [b.batch_index for b in released_to(worker, "work")] == [0, 1, 2, 3]
    assert released_to(worker, "items") == []
    ctx = worker.ctx
    assert batches_outbox(ctx, OperationType.CODE_GENERATION) is ctx.out.work
    for kind in (OperationType.LINK_SEND, OperationType.DEALER_INVITATION, OperationType.JOB):
        assert batches_outbox(ctx, kind) is ctx.out.items, "its batches need the worker"
    alone = fake_worker()
    await handle_operations(alone, codes_request())
    assert len(released_to(alone, "items")) == 4 and released_to(alone, "work") == []


async def test_a_processor_makes_the_codes_the_worker_makes() -> None:
    with_processors, alone = fake_worker(processors=1), fake_worker()
    for worker in (with_processors, alone):
        await handle_operations(worker, codes_request())
    for batch in released_to(alone, "items"):
        await guarded(alone.ctx, event(batch, topic="unit.items"), process.handle)
    view = ControlView(timedelta(days=1))
    made = [
        outcome(b, view, with_processors.ctx.minter) for b in released_to(with_processors, "work")
    ]
    theirs = alone.out["results"].messages(ResultBatch)
    assert [r.results for r in made if r] == [r.results for r in theirs]
    assert all(r and r.statuses == [ItemStatus.SUCCESS] * 250 for r in made)


async def test_a_batch_is_processed_when_it_was_taken_before_the_controls_were_read() -> None:
    """The cancel guarantee is measured on ``processed_at``: it is the moment the processor
    took the batch, before its control check, not a moment after it."""
    worker = fake_worker(processors=1)
    await handle_operations(worker, codes_request())
    batch = released_to(worker, "work")[0]
    result = outcome(batch, ControlView(timedelta(days=1)), worker.ctx.minter, taken_at=NOW)
    assert result is not None and result.processed_at == NOW
    assert result.expires_at is not None and result.expires_at > NOW


async def test_a_processors_results_are_counted_once_by_the_worker() -> None:
    """A processor killed after sending its results makes them again: counted once."""
    worker = fake_worker(processors=1)
    await handle_operations(worker, codes_request())
    view = ControlView(timedelta(days=1))
    results = [outcome(b, view, worker.ctx.minter) for b in released_to(worker, "work")]
    replayed = [r for r in results if r] * 2
    await sink.store(worker.ctx, [event(r, topic="unit.results") for r in replayed])
    for sunk in worker.out["progress"].messages(BatchSunk):
        await guarded(worker.ctx, event(sunk, topic="unit.progress"), count.handle)
    state = worker.ctx.tables.operations.load(CODEGEN)
    assert state is not None and state.status.value == "Completed"
    assert state.processed_items == state.successful_items == 1000
    assert worker.store.reader.code_counts(7, CODEGEN).unique_codes == 1000


async def test_cancelled_batches_are_skipped_and_paused_ones_go_back() -> None:
    worker = fake_worker(processors=1)
    await handle_operations(worker, codes_request())
    first, second = released_to(worker, "work")[:2]
    view = ControlView(timedelta(days=1))
    view.apply(command(ControlAction.PAUSE))
    assert outcome(first, view, worker.ctx.minter) is None
    view.apply(command(ControlAction.CANCEL))
    skipped = outcome(second, view, worker.ctx.minter)
    assert skipped is not None and skipped.statuses == [ItemStatus.SKIPPED] * 250
    assert {e.error_code for e in skipped.errors} == {"CANCELLED"}
    assert skipped.results == [None] * 250


async def test_a_batch_that_needs_the_worker_is_refused() -> None:
    worker = fake_worker(processors=1)
    await handle_operations(worker, link_header())
    await handle_operations(worker, chunk(0, 0, 4))
    await handle_operations(worker, chunk(1, 4, 2))
    (batch, *_) = released_to(worker, "items")
    with pytest.raises(InvalidMessage, match="not processed here"):
        outcome(batch, ControlView(timedelta(days=1)), worker.ctx.minter)


def sleeper() -> list[str]:
    return [sys.executable, "-c", "import time; time.sleep(120)"]


def sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def test_a_dead_processor_is_started_again_and_all_stop_with_the_worker() -> None:
    restarts = {"exit": "SIGKILL"}
    killed_before = sample("bulkops_processor_restarts_total", restarts)
    with Processors(2, command=lambda _: sleeper()) as processors:
        first = processors.pids()
        assert len(first) == 2
        assert sample("bulkops_processors_running") == 2
        os.kill(first[0], signal.SIGKILL)
        again = wait_for(
            lambda: [p for p in processors.pids() if p not in first],
            timeout=10,
            message="started again",
        )
        assert first[1] in processors.pids()
        wait_for(
            lambda: sample("bulkops_processor_restarts_total", restarts) == killed_before + 1,
            timeout=5,
            message="the restart counted, by the signal that ended the process",
        )
        wait_for(lambda: sample("bulkops_processors_running") == 2, timeout=5, message="2 running")
    assert sample("bulkops_processors_running") == 0
    for pid in [first[1], *again]:
        assert not psutil.pid_exists(pid), "stopped and waited for with the worker"
