"""Operator alerts on fakes: the failure-rate alert once per operation, the stall alert once
per stall and only for running operations, each a metric, a log line and a signed webhook."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import REGISTRY

from core.webhooks import operators_secret
from schemas.messages import BatchSunk, ControlAction, ControlCommand
from streams import timers
from streams.agents import control, count, guarded
from streams.alerts import EVENT, FAILURE_RATE, STALLED, Alerts
from streams.testing import FakeWorker, event, fake_worker
from tests.unit.test_agents import (
    CODEGEN,
    codes_request,
    handle_operations,
    run_batches_through,
)

NOW = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
HOOK = "http://alerts.internal:9000/bulkops"


class Recorder:
    """Stands in for :func:`streams.webhooks.deliver`: keeps what it was asked to send."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    async def __call__(self, **kwargs: Any) -> bool:
        self.calls.append(kwargs)
        return True


def alerts_total(kind: str) -> float:
    return REGISTRY.get_sample_value("bulkops_operation_alerts_total", {"kind": kind}) or 0.0


def sunk(index: int, succeeded: int, failed: int) -> BatchSunk:
    return BatchSunk(
        operation_id=CODEGEN, sponsor_id=7, batch_index=index, count=succeeded + failed,
        succeeded=succeeded, failed=failed, skipped=0, sunk_at=NOW,
    )  # fmt: skip


async def counted(worker: FakeWorker, batch: BatchSunk) -> None:
    await guarded(worker.ctx, event(batch, topic="unit.progress"), count.handle)


async def test_the_failure_rate_alert_is_raised_once_with_a_signed_webhook(
    caplog: pytest.LogCaptureFixture,
) -> None:
    worker = fake_worker(alert_failure_rate=0.5, alert_min_items=300, alert_webhook_url=HOOK)
    sent = Recorder()
    worker.ctx.alerts = Alerts(worker.ctx.settings, send=sent)
    before = alerts_total(FAILURE_RATE)
    await handle_operations(worker, codes_request(total=1000, batch_size=250))
    await counted(worker, sunk(0, 50, 200))
    assert sent.calls == [], "80% failed, but only 250 items judged: under the minimum"

    with caplog.at_level(logging.WARNING, logger="bulkops.alerts"):
        await counted(worker, sunk(1, 200, 50))
    await worker.ctx.alerts.deliveries_done()
    assert alerts_total(FAILURE_RATE) - before == 1
    (call,) = sent.calls
    assert (call["url"], call["event"], call["allow_private"]) == (HOOK, EVENT, True)
    assert call["secret"] == operators_secret(worker.ctx.settings.webhook_secret)
    body = call["payload"]
    assert (body["type"], body["alert"], body["operationId"], body["sponsorId"]) == (
        EVENT, FAILURE_RATE, CODEGEN, 7,
    )  # fmt: skip
    assert body["message"] == "250 of 500 items failed (50%; the alert threshold is 50%)"
    (record,) = [r for r in caplog.records if "ALERT" in r.getMessage()]
    assert record.operation_id == CODEGEN and record.sponsor_id == 7  # type: ignore[attr-defined]

    await counted(worker, sunk(2, 0, 250))
    await worker.ctx.alerts.deliveries_done()
    assert len(sent.calls) == 1 and alerts_total(FAILURE_RATE) - before == 1, "once"
    state = worker.ctx.tables.operations.load(CODEGEN)
    assert state is not None and state.alerts == [FAILURE_RATE]


async def test_no_webhook_without_a_url_but_the_metric_and_the_line() -> None:
    worker = fake_worker(alert_failure_rate=0.1, alert_min_items=10)
    sent = Recorder()
    worker.ctx.alerts = Alerts(worker.ctx.settings, send=sent)
    before = alerts_total(FAILURE_RATE)
    await handle_operations(worker, codes_request(total=1000, batch_size=250))
    await counted(worker, sunk(0, 200, 50))
    await worker.ctx.alerts.deliveries_done()
    assert alerts_total(FAILURE_RATE) - before == 1 and sent.calls == []


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_a_running_operation_without_progress_alerts_once_per_stall() -> None:
    clock = Clock()
    worker = fake_worker(alert_stalled_seconds=60, alert_webhook_url=HOOK)
    sent = Recorder()
    worker.ctx.alerts = Alerts(worker.ctx.settings, send=sent, clock=clock)
    before = alerts_total(STALLED)
    await handle_operations(worker, codes_request(total=1000, batch_size=250))
    await timers.alert_stalled(worker.ctx)
    clock.now = 59
    await timers.alert_stalled(worker.ctx)
    assert sent.calls == []
    clock.now = 61
    await timers.alert_stalled(worker.ctx)
    await timers.alert_stalled(worker.ctx)
    await worker.ctx.alerts.deliveries_done()
    (call,) = sent.calls
    assert call["payload"]["alert"] == STALLED
    assert call["payload"]["message"] == "no item counted for 61 s, at 0/1000 items"
    assert alerts_total(STALLED) - before == 1

    await counted(worker, sunk(0, 250, 0))  # it moves: the next stall alerts again
    clock.now = 100
    await timers.alert_stalled(worker.ctx)
    clock.now = 161
    await timers.alert_stalled(worker.ctx)
    await worker.ctx.alerts.deliveries_done()
    assert len(sent.calls) == 2
    assert sent.calls[1]["payload"]["message"] == "no item counted for 61 s, at 250/1000 items"


async def test_paused_and_finished_operations_are_not_stalled() -> None:
    clock = Clock()
    worker = fake_worker(alert_stalled_seconds=60)
    worker.ctx.alerts = Alerts(worker.ctx.settings, clock=clock)
    before = alerts_total(STALLED)
    await handle_operations(worker, codes_request(total=1000, batch_size=250))
    pause = ControlCommand(
        operation_id=CODEGEN,
        sponsor_id=7,
        action=ControlAction.PAUSE,
        requested_by="u",
        requested_at=NOW,
    )
    await guarded(worker.ctx, event(pause, topic="unit.control"), control.handle)
    done = "codegen_" + "d" * 32
    await handle_operations(worker, codes_request(total=10, batch_size=10, operationId=done))
    await run_batches_through(worker)
    finished = worker.ctx.tables.operations.load(done)
    assert finished is not None and finished.status.is_terminal
    for moment in (0, 1000, 5000):
        clock.now = moment
        await timers.alert_stalled(worker.ctx)
    assert alerts_total(STALLED) == before


async def test_the_stall_clock_forgets_operations_that_stopped_running() -> None:
    clock = Clock()
    worker = fake_worker(alert_stalled_seconds=60)
    alerts = Alerts(worker.ctx.settings, clock=clock)
    await handle_operations(worker, codes_request())
    state = worker.ctx.tables.operations.load(CODEGEN)
    assert state is not None
    assert alerts.stalled([state]) == []
    clock.now = 100
    assert alerts.stalled([]) == [], "finished meanwhile"
    clock.now = 200
    assert alerts.stalled([state]) == [], "running again: its clock starts afresh"
