"""Sender pacing across workers: each holds a sender to the share of item partitions it owns,
so however many workers run, and however partitions move, a sender's rate is never exceeded.

Simulated in virtual time: workers send as fast as their buckets let them, in time order.
"""

from __future__ import annotations

import pytest
from faust.types import TP

from streams.ownership import owned
from streams.pacing import Pacer

RATE = 100.0
PARTITIONS = 8


class Cluster:
    """Workers on one clock, each with its own pacer, as separate processes would be."""

    def __init__(self) -> None:
        self.now = 0.0
        self.workers: dict[str, Pacer] = {}
        self.sends: list[tuple[float, str]] = []

    def start(self, name: str) -> Pacer:
        pacer = Pacer({"SMS": RATE}, {"SMS": 10 * RATE}, clock=lambda: self.now)
        self.workers[name] = pacer
        return pacer

    def rebalance(self, assignment: dict[str, int]) -> None:
        """The eager protocol: every member revokes, then gets its new assignment."""
        for pacer in self.workers.values():
            pacer.follow_assignment(0, PARTITIONS)
        for name, count in assignment.items():
            self.workers[name].follow_assignment(count, PARTITIONS)

    def run_until(self, end: float) -> None:
        """Every worker sends whenever its sender bucket gives it a token."""
        next_try = dict.fromkeys(self.workers, self.now)
        while True:
            name, at = min(next_try.items(), key=lambda item: item[1])
            if at >= end:
                break
            self.now = at
            wait = self.workers[name].sender("SMS").take(at)
            if wait == 0:
                self.sends.append((at, name))
            else:
                next_try[name] = at + wait
        self.now = end

    def sent(self, start: float, end: float, name: str | None = None) -> int:
        return sum(1 for at, who in self.sends if start <= at < end and name in (None, who))

    def kill(self, name: str) -> None:
        del self.workers[name]


def test_two_workers_and_rebalances_never_exceed_the_sender_rate() -> None:
    cluster = Cluster()
    cluster.start("a")
    cluster.rebalance({"a": PARTITIONS})
    cluster.run_until(10)
    assert cluster.sent(1, 10) == pytest.approx(9 * RATE, abs=2)  # alone: the whole rate

    cluster.start("b")
    cluster.rebalance({"a": 5, "b": 3})
    cluster.run_until(20)
    assert cluster.sent(11, 20, "a") == pytest.approx(9 * RATE * 5 / 8, abs=2)
    assert cluster.sent(11, 20, "b") == pytest.approx(9 * RATE * 3 / 8, abs=2)

    cluster.kill("b")  # SIGKILLed: its partitions come back to a
    cluster.rebalance({"a": PARTITIONS})
    cluster.run_until(30)
    assert cluster.sent(21, 30, "a") == pytest.approx(9 * RATE, abs=2)

    # In every second of the run the sender got at most its rate (plus one burst at a change).
    for second in range(30):
        assert cluster.sent(second, second + 1) <= RATE + RATE / 10 + 1, second


def test_a_worker_owning_no_partitions_sends_nothing() -> None:
    cluster = Cluster()
    cluster.start("a")
    cluster.start("idle")
    cluster.rebalance({"a": PARTITIONS, "idle": 0})
    cluster.run_until(5)
    assert cluster.sent(0, 5, "idle") == 0
    assert cluster.sent(1, 5, "a") == pytest.approx(4 * RATE, abs=2)


def test_buckets_made_after_an_assignment_start_at_the_share() -> None:
    pacer = Pacer({"SMS": RATE, "Email": 50.0}, {"SMS": RATE, "Email": 50.0})
    assert pacer.follow_assignment(2, 8) == {"SMS": 25.0, "Email": 12.5}
    assert pacer.sender("SMS").rate == 25.0
    with pytest.raises(ValueError, match="owned 9 of 8"):
        pacer.follow_assignment(9, 8)


def test_owned_counts_only_the_items_topic() -> None:
    assignment = {TP("p.items", 0), TP("p.items", 3), TP("p.results", 0), TP("p-ops-changelog", 1)}
    assert owned(assignment, "p.items") == 2
