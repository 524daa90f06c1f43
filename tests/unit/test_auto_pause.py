"""Auto-pause on errors: the failure rate over the latest items, judged batch by batch, a
pause with its reason, a fresh window after resume; and through the agents, a provider that
refuses everything stops a campaign after one window."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from fastapi.testclient import TestClient

from schemas.common import ErrorCategory, OperationStatus
from schemas.messages import ItemBatch, OperationRequested
from schemas.requests import SEED_LINK_SEND_EXAMPLE
from schemas.run_rules import AutoPauseRule
from schemas.status import OperationSnapshot
from streams.progress import OperationState, apply_batch, judge_errors, resume
from streams.providers.base import Delivery, ProviderError
from streams.testing import fake_worker
from tests.unit.conftest import FakeMessageSink, auth
from tests.unit.test_agents import chunk, handle_operations, link_header, run_batches_through
from tests.unit.test_progress import NOW, request, sunk

RULE = AutoPauseRule(rate=0.2, window=100)


def ruled(total: int = 1000, batches: int = 10, rule: AutoPauseRule = RULE) -> OperationState:
    from streams.progress import register

    state = register(request(total), batches_total=batches, serial_base=0, now=NOW)
    state.auto_pause = rule
    return state


def count(state: OperationState, index: int, **outcome: Any) -> str | None:
    batch = sunk(index, **outcome)
    assert apply_batch(state, batch, now=NOW, max_errors=10)
    return judge_errors(state, batch, NOW)


def test_a_failure_rate_over_the_window_pauses_with_the_reason() -> None:
    state = ruled(rule=AutoPauseRule(rate=0.2, window=200))
    assert count(state, 0, failed=10) is None  # 100 judged: the window is not full yet
    assert count(state, 1, failed=35) is not None  # 45 of the last 200 ≥ 20 %
    assert state.status is OperationStatus.PAUSED
    assert state.pause_reason == "AUTO_PAUSED: 45 of the last 200 items failed (22%, limit 20%)"
    assert "Paused by itself" in state.status_message


def test_under_the_rate_it_goes_on() -> None:
    state = ruled()
    for index in range(5):
        assert count(state, index, failed=19) is None
    assert state.status is OperationStatus.PROCESSING


def test_the_window_forgets_old_batches() -> None:
    state = ruled(rule=AutoPauseRule(rate=0.2, window=200))
    assert count(state, 0, failed=90) is None  # 90 of 100: the window is not full yet
    for index in range(1, 9):
        state.paused_at = None
        state.status = OperationStatus.PROCESSING
        count(state, index, failed=0)
    assert sum(n for n, _ in state.outcome_window) <= 200 + 100
    assert state.outcome_window[0] == (100, 0)


def test_skipped_items_are_not_judged_and_small_operations_are_judged_early() -> None:
    state = ruled(total=30, batches=3)
    assert count(state, 0, count=10, skipped=10) is None  # nothing judged
    assert count(state, 1, count=10, failed=5) is not None  # 10 judged: enough for 20
    assert state.status is OperationStatus.PAUSED


def test_resume_judges_afresh_and_a_rule_free_operation_never_pauses() -> None:
    state = ruled()
    count(state, 0, failed=50)
    assert resume(state, NOW)
    assert state.pause_reason is None and state.outcome_window == []
    assert count(state, 1, failed=0) is None
    free = ruled()
    free.auto_pause = None
    assert count(free, 0, failed=100) is None
    assert free.status is OperationStatus.PROCESSING


def test_the_snapshot_shows_the_reason_but_not_the_window() -> None:
    state = ruled()
    count(state, 0, failed=100)
    snapshot = state.snapshot()
    assert isinstance(snapshot, OperationSnapshot)
    assert snapshot.pause_reason == state.pause_reason
    assert "outcomeWindow" not in snapshot.model_dump_json()


class RefusingProvider:
    channel = "SMS"

    async def send(self, *, to: str, body: str, subject: str, idempotency_key: str) -> Delivery:
        raise ProviderError(
            "21211", "Invalid 'To' number", ErrorCategory.VALIDATION, retryable=False
        )

    async def close(self) -> None:
        pass


async def test_a_campaign_whose_sends_all_fail_pauses_itself() -> None:
    worker = fake_worker()
    worker.ctx.providers["SMS"] = RefusingProvider()
    header = link_header(total=40, batch_size=2, chunks=1).model_copy(
        update={"auto_pause": AutoPauseRule(rate=0.5, window=10)}
    )
    await handle_operations(worker, header)
    await handle_operations(worker, chunk(0, 0, 40))
    batches = worker.out["items"].messages(ItemBatch)
    worker.out["items"].clear()
    for batch in batches:  # one batch at a time through process, sink and count
        worker.out["items"].sent.append((b"7", batch.model_dump_json().encode()))
        await run_batches_through(worker)
    state = worker.ctx.tables.operations.load(header.operation_id)
    assert state is not None
    assert state.status is OperationStatus.PAUSED
    assert state.pause_reason is not None and "AUTO_PAUSED" in state.pause_reason
    assert state.processed_items < 40  # stopped early
    published = worker.out["status"].messages(OperationSnapshot)
    assert published[-1].pause_reason == state.pause_reason


def _links(**processing: Any) -> dict[str, Any]:
    body = copy.deepcopy(SEED_LINK_SEND_EXAMPLE)
    body["processing"].update(processing)
    return body


def test_the_rule_reaches_the_worker(client: TestClient, sink: FakeMessageSink) -> None:
    answer = client.post(
        "/api/v1/bulk-operations/send-links",
        json=_links(pauseOnErrorRate=0.2, pauseOnErrorWindow=50),
        headers=auth(),
    )
    assert answer.status_code == 202, answer.text
    header = OperationRequested.model_validate_json(sink.sent[0][2])
    assert header.auto_pause == AutoPauseRule(rate=0.2, window=50)


@pytest.mark.parametrize(
    ("processing", "field"),
    [
        ({"pauseOnErrorRate": 0}, "pauseOnErrorRate"),
        ({"pauseOnErrorRate": 1.5}, "pauseOnErrorRate"),
        ({"pauseOnErrorRate": "0.2"}, "pauseOnErrorRate"),
        ({"pauseOnErrorRate": 0.2, "pauseOnErrorWindow": 5}, "pauseOnErrorWindow"),
        ({"pauseOnErrorRate": 0.2, "pauseOnErrorWindow": 10**6}, "pauseOnErrorWindow"),
    ],
)
def test_bad_rules_are_refused(
    client: TestClient, sink: FakeMessageSink, processing: dict[str, Any], field: str
) -> None:
    answer = client.post(
        "/api/v1/bulk-operations/send-links", json=_links(**processing), headers=auth()
    )
    assert answer.status_code == 422
    assert answer.json()["details"]["errors"][0]["field"] == f"processing.{field}"
    assert sink.sent == []
