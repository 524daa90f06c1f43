"""The stall watchdog's verdicts: only a stalled operation on a drained partition is lost."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from faust.types import TP

from schemas.messages import OperationAbort, Redrive
from streams.bitmaps import with_bit
from streams.progress import apply_batch
from streams.releases import mark_released
from streams.watchdog import HOPS, PendingWork, StallWatchdog, Verdict, remedy
from tests.unit.test_progress import NOW, link_state, sunk

TPS = [TP("t.operations", 2), TP("t.items", 2), TP("t.results", 2), TP("t.progress", 2)]


class FakeOffsets:
    """Log ends and committed offsets per partition, moved by the test."""

    def __init__(self) -> None:
        self.ends: dict[TP, int | None] = dict.fromkeys(TPS, 10)
        self.committed: dict[TP, int] = dict.fromkeys(TPS, 10)

    def log_ends(self, tps: Iterable[TP]) -> dict[TP, int] | None:
        ends = {tp: self.ends[tp] for tp in tps}
        if any(end is None for end in ends.values()):
            return None
        return {tp: end for tp, end in ends.items() if end is not None}

    def consumed_past(self, marks: Mapping[TP, int]) -> bool:
        return all(self.committed[tp] >= mark for tp, mark in marks.items())


def run(watchdog: StallWatchdog, offsets: FakeOffsets, checks: int, fingerprint=(1,)):  # type: ignore[no-untyped-def]
    verdicts = []
    for second in range(0, checks * 5, 5):
        verdict = watchdog.observe("op", fingerprint, TPS, offsets, float(second))
        if verdict is not None:
            verdicts.append((second, verdict))
    return verdicts


def test_a_stalled_operation_on_a_drained_partition_is_found_once_per_stall() -> None:
    watchdog = StallWatchdog(stall_seconds=30)
    verdicts = run(watchdog, FakeOffsets(), checks=8)
    assert [second for second, _ in verdicts] == [30]
    assert verdicts[0][1].stalled_seconds == 30
    # after a verdict the watch starts over: the re-drive gets its own time
    assert run(watchdog, FakeOffsets(), checks=1) == []


def test_it_needs_every_hop_drained_not_only_time() -> None:
    watchdog = StallWatchdog(stall_seconds=1)
    verdicts = run(watchdog, FakeOffsets(), checks=HOPS + 1)
    assert [second for second, _ in verdicts] == [HOPS * 5]


def test_an_operation_that_moves_is_never_stalled() -> None:
    watchdog = StallWatchdog(stall_seconds=10)
    offsets = FakeOffsets()
    for check in range(100):
        assert watchdog.observe("op", (check,), TPS, offsets, check * 5.0) is None


def test_a_backlog_on_the_partition_defers_the_verdict() -> None:
    """The batch may be queued behind other work: no verdict until that work is done."""
    watchdog = StallWatchdog(stall_seconds=10)
    offsets = FakeOffsets()
    offsets.ends[TPS[1]] = 500  # 490 item batches not yet processed
    assert run(watchdog, offsets, checks=50) == []
    offsets.committed[TPS[1]] = 500
    later = [watchdog.observe("op", (1,), TPS, offsets, 250.0 + 5 * i) for i in range(HOPS)]
    assert later[-1] is not None and all(v is None for v in later[:-1])


def test_unknown_log_ends_defer_the_verdict() -> None:
    watchdog = StallWatchdog(stall_seconds=1)
    offsets = FakeOffsets()
    offsets.ends[TPS[2]] = None
    assert run(watchdog, offsets, checks=20) == []


def test_watches_of_settled_operations_are_dropped() -> None:
    watchdog = StallWatchdog(stall_seconds=30)
    offsets = FakeOffsets()
    for op in ("a", "b", "c"):
        watchdog.observe(op, (1,), TPS, offsets, 0.0)
    watchdog.retain(["b"])
    assert len(watchdog) == 1
    watchdog.forget("b")
    assert len(watchdog) == 0


def test_the_remedy_re_drives_outstanding_batches_or_aborts_a_send_missing_chunks() -> None:
    s = link_state()  # three chunks' worth of batches, none arrived yet
    for index in range(7):
        s.exploded = with_bit(s.exploded, index)
    work = PendingWork.of(s)
    assert work and work.missing == [7, 8, 9] and work.outstanding == []
    abort = remedy(s, work, Verdict(s.operation_id, 31.0), limit=100)
    assert isinstance(abort, OperationAbort)
    assert abort.submission_id == s.submission_id, "the worker must not ignore its own abort"

    for index in (7, 8, 9):
        s.exploded = with_bit(s.exploded, index)
    for index in range(10):
        mark_released(s, index, NOW)
    before = PendingWork.of(s).fingerprint(s)
    apply_batch(s, sunk(4), now=NOW, max_errors=10)
    work = PendingWork.of(s)
    assert work.fingerprint(s) != before, "a counted batch is movement"
    redrive = remedy(s, work, Verdict(s.operation_id, 31.0), limit=3)
    assert isinstance(redrive, Redrive) and redrive.batch_indexes == [0, 1, 2]


def test_only_operations_with_work_out_are_watched() -> None:
    waiting = PendingWork.of(link_state())
    assert waiting.missing == list(range(10)), "a header without its chunks awaits them"
    s = link_state()
    for index in range(10):
        s.exploded = with_bit(s.exploded, index)
    assert not PendingWork.of(s), "all exploded, nothing released: held or scheduled"
