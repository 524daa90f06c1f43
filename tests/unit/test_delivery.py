"""Faust corrected: commits never pass a message still being processed (faust-streaming
#606), and recovery never fetches a stream partition before seeking it (#216, #596)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass
from types import SimpleNamespace
from unittest.mock import AsyncMock, MagicMock

from faust.transport.producer import ProducerBuffer
from faust.types import TP

from streams.delivery import CompleteFlushBuffer, InFlightSafeConsumer, SeekFirstRecovery

PARTITION = TP("t.items", 0)


@dataclass(eq=False)
class InFlight:
    tp: TP
    offset: int
    acked: bool = False


def consumer(acked: list[int], in_flight: list[int], committed: int | None) -> InFlightSafeConsumer:
    """Only the bookkeeping ``_new_offset`` reads; no broker, no service start."""
    c = object.__new__(InFlightSafeConsumer)
    c._acked = defaultdict(list, {PARTITION: list(acked)})
    c._acked_index = defaultdict(set, {PARTITION: set(acked)})
    c._gap = defaultdict(list)
    c._committed_offset = defaultdict(lambda: None, {PARTITION: committed})
    c._unacked_messages = {InFlight(PARTITION, o) for o in in_flight}  # type: ignore[assignment]
    return c


def test_the_first_commit_stops_before_an_older_message_in_flight() -> None:
    c = consumer(acked=[1, 2, 3], in_flight=[0], committed=None)
    assert c._new_offset(PARTITION) is None
    assert c._acked[PARTITION] == [1, 2, 3], "nothing acknowledged is forgotten"


def test_the_message_at_the_committed_head_is_not_skipped() -> None:
    # The reproduction of faust-streaming PR #707: stock Faust returns 2590 here.
    c = consumer(acked=[2586, 2587, 2588, 2589], in_flight=[2585], committed=2585)
    assert c._new_offset(PARTITION) is None


def test_commits_up_to_the_oldest_message_in_flight() -> None:
    c = consumer(acked=[0, 1, 2, 5, 6], in_flight=[3, 4], committed=None)
    assert c._new_offset(PARTITION) == 3
    assert c._acked[PARTITION] == [5, 6]


def test_without_anything_in_flight_it_is_faust_s_own_rule() -> None:
    c = consumer(acked=[4, 5, 6], in_flight=[], committed=None)
    assert c._new_offset(PARTITION) == 7
    other = TP("t.items", 1)
    c._unacked_messages = {InFlight(other, 0)}  # type: ignore[assignment]
    c._acked[PARTITION] = [7, 8]
    assert c._new_offset(PARTITION) == 9


class RecordingConsumer:
    """The consumer calls recovery makes, recorded in order; the seek takes a few loop turns."""

    def __init__(self, events: list[str], assignment: set[TP]) -> None:
        self.events = events
        self._assignment = assignment
        self.resumed: set[TP] = set()

    def assignment(self) -> set[TP]:
        return self._assignment

    async def perform_seek(self) -> None:
        self.events.append(f"seek starts, resumed={sorted(tp.topic for tp in self.resumed)}")
        for _ in range(3):
            await asyncio.sleep(0)
        self.events.append("seek done")

    def resume_partitions(self, tps: set[TP]) -> None:
        self.resumed |= tps
        self.events.append(f"resume {sorted(tp.topic for tp in tps)}")

    def resume_flow(self) -> None:
        self.events.append("resume flow")


async def test_recovery_seeks_stream_partitions_before_resuming_them() -> None:
    """The race of faust-streaming #216/#596: nothing of a stream partition may be fetched
    between its resume and its seek, and the queues are cleared before anything arrives."""
    events: list[str] = []
    changelog, stream = TP("w-operations-changelog", 0), TP("t.items", 0)
    consumer = RecordingConsumer(events, {changelog, stream})
    signal = SimpleNamespace(send=AsyncMock())
    app = SimpleNamespace(
        conf=SimpleNamespace(stream_recovery_delay=0, broker_request_timeout=5),
        consumer=consumer,
        consumer_generation_id=3,
        on_rebalance_complete=signal,
        flow_control=SimpleNamespace(resume=lambda: events.append("queues cleared, flow on")),
        _fetcher=SimpleNamespace(maybe_start=AsyncMock()),
        assignor=SimpleNamespace(assigned_standbys=lambda: set()),
        on_rebalance_end=lambda: events.append("rebalance end"),
        in_recovery=True,
    )
    tables = MagicMock()
    tables.changelog_topics = {changelog.topic}
    tables.values.return_value = []
    recovery = SeekFirstRecovery(app, tables)  # type: ignore[arg-type]

    await recovery.on_recovery_completed(generation_id=3)

    assert events == [
        "seek starts, resumed=[]",
        "seek done",
        "resume ['t.items']",
        "queues cleared, flow on",
        "resume flow",
        "rebalance end",
    ]
    assert recovery.completed.is_set()


async def test_recovery_of_an_older_generation_resumes_nothing() -> None:
    events: list[str] = []
    consumer = RecordingConsumer(events, {TP("t.items", 0)})
    app = SimpleNamespace(
        conf=SimpleNamespace(stream_recovery_delay=0, broker_request_timeout=5),
        consumer=consumer,
        consumer_generation_id=4,
        on_rebalance_complete=SimpleNamespace(send=AsyncMock()),
        in_recovery=True,
    )
    tables = MagicMock()
    tables.values.return_value = []
    await SeekFirstRecovery(app, tables).on_recovery_completed(generation_id=3)  # type: ignore[arg-type]
    assert events == []


class WaitingFetcher:
    """aiokafka's side of a fetch: it reads the partition set it was given after a wait."""

    def __init__(self) -> None:
        self.seen: list[set[TP]] = []
        self.calls = 0

    async def getmany(
        self,
        active_partitions: set[TP],
        timeout: float,  # noqa: ASYNC109 - the interface faked
    ) -> dict[TP, list[int]]:
        self.calls += 1
        await asyncio.sleep(0.01)  # meanwhile recovery pauses partitions
        self.seen.append(set(active_partitions))
        return {}


async def test_a_fetch_asks_for_the_partitions_active_when_it_started() -> None:
    """faust-streaming hands aiokafka its live set of active partitions; when recovery
    pauses the changelogs the set empties under a waiting fetch, and aiokafka reads an empty
    set as "every partition": records of paused stream partitions come back, are counted as
    consumed, and are dropped. The consumer passes a frozen copy instead."""
    changelog = TP("w-operations-changelog", 0)
    c = object.__new__(InFlightSafeConsumer)
    fetcher = WaitingFetcher()
    c._thread = fetcher  # type: ignore[assignment]
    live = {changelog}
    fetch = asyncio.ensure_future(c._getmany(live, 1.0))
    await asyncio.sleep(0)
    live.clear()  # Recovery: "Done reading from changelog topics" pauses them
    await fetch
    assert fetcher.seen == [{changelog}]


async def test_no_fetch_is_made_for_an_empty_set() -> None:
    c = object.__new__(InFlightSafeConsumer)
    fetcher = WaitingFetcher()
    c._thread = fetcher  # type: ignore[assignment]
    assert await c._getmany(set(), 0.05) == {}
    assert fetcher.calls == 0


class SlowChannel:
    """A topic whose hand-over to the Kafka client takes ``seconds`` per message."""

    def __init__(self, seconds: float, expected: int) -> None:
        self.seconds = seconds
        self.handed: list[int] = []
        self.all_handed = asyncio.Event()
        self.expected = expected

    async def publish_message(self, fut: SimpleNamespace, wait: bool = False) -> None:
        await asyncio.sleep(self.seconds)
        self.handed.append(fut.n)
        if len(self.handed) == self.expected:
            self.all_handed.set()


async def flush_with_slow_hand_over(buffer_class: type[ProducerBuffer]) -> tuple[int, int]:
    """Put three messages that each take 0.3 s to hand on, flush; (handed on, put)."""
    buffer = buffer_class()
    buffer.app = SimpleNamespace(conf=SimpleNamespace(producer_threaded=False))  # type: ignore[assignment]
    channel = SlowChannel(0.3, expected=3)
    await buffer.start()
    try:
        for n in range(3):
            buffer.put(SimpleNamespace(n=n, message=SimpleNamespace(channel=channel)))  # type: ignore[arg-type]
        await buffer.flush()
        handed_at_flush = len(channel.handed)
        # let a stock buffer finish before it is stopped (its stop flushes and refuses)
        await asyncio.wait_for(channel.all_handed.wait(), timeout=5)
        return handed_at_flush, 3
    finally:
        await buffer.stop()


async def test_stock_flush_gives_up_on_a_slow_hand_over() -> None:
    """The defect: Faust's buffer flush returns with messages never handed on (so a commit
    can pass a table write that exists only in memory)."""
    handed, put = await flush_with_slow_hand_over(ProducerBuffer)
    assert handed < put


async def test_complete_flush_waits_for_every_message() -> None:
    handed, put = await flush_with_slow_hand_over(CompleteFlushBuffer)
    assert handed == put
