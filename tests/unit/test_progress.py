from __future__ import annotations

from datetime import UTC, datetime

import pytest

from api.services.presenters import metrics, timespan
from schemas.common import Channel, OperationStatus, OperationType
from schemas.link_wire import LinkSendSpec
from schemas.messages import BatchSunk, OperationRequested
from streams.bitmaps import set_bits, with_bit
from streams.progress import OperationState, apply_batch, outstanding, pause, register
from streams.releases import all_exploded, mark_held, mark_released, release_quota, unexploded

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


def test_batches_landing_after_a_pause_keep_the_pause_message() -> None:
    s = state()
    assert apply_batch(s, sunk(0), now=NOW, max_errors=10)
    assert pause(s, NOW)
    message = s.status_message
    assert apply_batch(s, sunk(1), now=NOW, max_errors=10)  # in flight when paused
    assert s.status is OperationStatus.PAUSED and s.status_message == message
    assert s.processed_items == 200


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


def link_state(total: int = 1000, batches: int = 10) -> OperationState:
    spec = LinkSendSpec(
        channel=Channel.SMS,
        subject="s",
        batch_size=total // batches,
        max_concurrency=5,
        retry_attempts=0,
        retry_delay_seconds=0,
        price_per_message=0.05,
        recipient_chunks=3,
    )
    req = request(total).model_copy(
        update={
            "operation_type": OperationType.LINK_SEND,
            "code_generation": None,
            "link_send": spec,
            "submission_id": "first",
        }
    )
    return register(req, batches_total=batches, serial_base=0, now=NOW, partition=3)


def test_a_link_send_releases_nothing_until_every_chunk_has_arrived() -> None:
    s = link_state()
    assert (s.submission_id, s.partition) == ("first", 3)
    for index in range(7):
        s.exploded = with_bit(s.exploded, index)
    assert not all_exploded(s)
    assert unexploded(s) == [7, 8, 9]
    assert release_quota(s, NOW) == 0
    for index in (7, 8, 9):
        s.exploded = with_bit(s.exploded, index)
    assert all_exploded(s) and unexploded(s) == []
    assert release_quota(s, NOW) == 10
    s.stop_reason = "SUBMISSION_INCOMPLETE"
    s.exploded = bytes(len(s.exploded))
    assert release_quota(s, NOW) == 10, "a stopped send releases everything, to settle it"


def test_outstanding_batches_are_released_neither_counted_nor_held() -> None:
    s = state()
    for index in (0, 1, 2, 3, 9):
        mark_released(s, index, NOW)
    apply_batch(s, sunk(1), now=NOW, max_errors=10)
    mark_held(s, 2)
    assert outstanding(s) == [0, 3, 9]
    assert set_bits(s.released, s.batches_total) == [0, 1, 2, 3, 9]
