"""Commits never pass a message still being processed (faust-streaming #606)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from faust.types import TP

from streams.consumer import InFlightSafeConsumer

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
