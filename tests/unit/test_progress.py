from __future__ import annotations

from datetime import UTC, datetime

import pytest

from api.presenters import metrics, timespan
from schemas.common import OperationStatus, OperationType
from schemas.messages import BatchSunk, OperationRequested
from streams.progress import OperationState, apply_batch, register

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def request(total: int = 1000) -> OperationRequested:
    return OperationRequested.model_validate(
        {
            "operationId": "codegen_" + "a" * 32,
            "operationType": OperationType.CODE_GENERATION,
            "sponsorId": 7,
            "requestedBy": "u",
            "requestedAt": NOW,
            "totalItems": total,
            "codeGeneration": {"subscriptionTierId": 1, "quantity": total},
        }
    )


def sunk(index: int, count: int = 100, failed: int = 0, skipped: int = 0) -> BatchSunk:
    return BatchSunk(
        operation_id="codegen_" + "a" * 32,
        sponsor_id=7,
        batch_index=index,
        count=count,
        succeeded=count - failed - skipped,
        failed=failed,
        skipped=skipped,
        duration_ms=count * 2.0,
        sunk_at=NOW,
    )


def state(total: int = 1000, batches: int = 10) -> OperationState:
    return register(request(total), batches_total=batches, serial_base=0, now=NOW)


def test_registered_operation_is_processing_with_nothing_counted() -> None:
    s = state()
    assert s.status is OperationStatus.PROCESSING
    assert (s.processed_items, s.batches_done, len(s.done)) == (0, 0, 2)


def test_each_batch_counts_once_however_often_it_is_replayed() -> None:
    s = state()
    assert apply_batch(s, sunk(3), now=NOW, max_errors=10)
    for _ in range(5):
        assert not apply_batch(s, sunk(3), now=NOW, max_errors=10)
    assert s.processed_items == 100 and s.batches_done == 1


def test_all_batches_complete_the_operation() -> None:
    s = state()
    for i in reversed(range(10)):
        apply_batch(s, sunk(i), now=NOW, max_errors=10)
    assert s.status is OperationStatus.COMPLETED
    assert s.processed_items == s.successful_items == 1000
    assert s.completed_at == NOW
    assert not apply_batch(s, sunk(0), now=NOW, max_errors=10)


@pytest.mark.parametrize(
    ("failed_per_batch", "expected"),
    [
        (0, OperationStatus.COMPLETED),
        (10, OperationStatus.PARTIALLY_COMPLETED),
        (100, OperationStatus.FAILED),
    ],
)
def test_final_status_follows_the_outcomes(
    failed_per_batch: int, expected: OperationStatus
) -> None:
    s = state()
    for i in range(10):
        apply_batch(s, sunk(i, failed=failed_per_batch), now=NOW, max_errors=10)
    assert s.status is expected
    assert s.failed_items == failed_per_batch * 10


def test_batch_outside_the_plan_is_refused() -> None:
    with pytest.raises(ValueError, match="outside"):
        apply_batch(state(), sunk(10), now=NOW, max_errors=10)


def test_state_survives_the_changelog_round_trip() -> None:
    s = state(batches=20)
    apply_batch(s, sunk(17, count=50), now=NOW, max_errors=10)
    again = OperationState.model_validate(s.model_dump(mode="json"))
    assert again == s
    assert not apply_batch(again, sunk(17, count=50), now=NOW, max_errors=10)


def test_metrics_percentages_and_eta() -> None:
    s = state()
    s.started_at = datetime(2026, 1, 1, 11, 59, 50, tzinfo=UTC)
    for i in range(4):
        apply_batch(s, sunk(i, failed=5), now=NOW, max_errors=10)
    m = metrics(s.snapshot(), NOW)
    assert m.progress_percentage == 40.0
    assert m.success_rate == 95.0
    assert m.average_processing_time == "00:00:00.002"
    assert m.estimated_time_remaining == "00:00:15"  # 400 items in 10s, 600 to go


def test_timespans_look_like_the_seed() -> None:
    from datetime import timedelta

    assert timespan(timedelta(hours=1, minutes=30)) == "01:30:00"
    assert timespan(timedelta(seconds=2.5)) == "00:00:02.5"
    assert timespan(None) is None
