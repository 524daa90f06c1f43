"""Faust, corrected where it can lose messages: the app class the worker runs on.

Two defects of faust-streaming 0.15.3 each let an offset be committed over an item batch
that was never processed, and a batch lost that way leaves its operation ``Processing``
forever. Both are fixed here, at the depth where they happen:

* **Commits over messages in flight** (faust-streaming #606, fix proposed in PR #707,
  unreleased). With agent concurrency, events of one partition finish out of order. Faust
  commits the longest run of acknowledged offsets, and when nothing has been committed yet,
  or when the message still in flight sits right at the committed head, that run may start
  *after* the in-flight message. :class:`InFlightSafeConsumer` caps every commit below the
  oldest message a stream has taken but not yet acknowledged.

* **Stream partitions resumed before they are sought** (the class of faust-streaming #216,
  whose fix, PR #217, covered only apps without tables; also #596). After a rebalance a
  worker with tables reads its changelogs with the fetcher running and the flow open, then
  ``Recovery.on_recovery_completed`` resumes the stream partitions and only then awaits
  ``perform_seek()`` (one committed-offset request per partition). Meanwhile the fetcher
  hands stream messages to the agents' queues and moves each partition's *read offset*
  forward. The seek then rewinds the read offset, a callback that was still awaiting sets it
  forward again, the re-fetched messages below it are dropped ("DROPPED MESSAGE ROFF"),
  the jump is recorded as a *gap* — which Faust's commit logic treats as acknowledged — and
  ``flow_control.resume()`` clears the queues holding what had been delivered early. The
  commit then passes batches nobody processed. :class:`SeekFirstRecovery` seeks first and
  resumes the stream partitions, the flow and the queues together, with no ``await`` in
  between, so nothing reaches an agent from a position that is about to change.

* **A flush that gives up** (found here). Before committing offsets Faust flushes its
  producer, and the first step drains the buffer that table changelog writes go through
  (``send_soon``). ``ProducerBuffer.flush`` returns as soon as no message has been handed
  on for 0.1 s, and does not see one being handed on right now (taken off the queue, not
  yet given to the client). The commit then passes an event whose table write exists only
  in memory: after a SIGKILL the write is gone and the event is never seen again (a batch
  counted, then not; the watchdog had to re-drive it). :class:`CompleteFlushBuffer` counts
  the messages put and handed on, and its flush waits until the two are equal.

And one limit added: **a stop or a rebalance waits for messages in flight at most the app's
grace before acting** (:meth:`InFlightSafeConsumer.wait_empty`): a stop leaves what is
unfinished to run again after the restart, a rebalance asks job batches to hand themselves
back.

A gap in a topic only Bulkops produces to (no transactions, no compaction) means messages
were skipped; :class:`InFlightSafeConsumer` logs it as an error. The worker's stall watchdog
(:mod:`streams.watchdog`) re-drives any batch that is released and never counted, whatever
the cause.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Collection, Iterable, Mapping
from typing import Any, cast

import faust
from faust.tables.manager import TableManager
from faust.tables.recovery import Recovery
from faust.transport.consumer import RecordMap
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.transport.producer import ProducerBuffer
from faust.types import TP, FutureMessage, ProducerT
from faust.types.transports import TransportT

log = logging.getLogger("bulkops.worker")


class InFlightSafeConsumer(aiokafka_driver.Consumer):
    """Never commits at or past a message still being processed; reports unexpected gaps."""

    def _new_offset(self, tp: TP) -> int | None:
        in_flight = [
            message.offset
            for message in list(self._unacked_messages)
            if message.tp == tp and not message.acked
        ]
        acked = self._acked[tp]
        if not in_flight or not acked:
            return super()._new_offset(tp)
        oldest = min(in_flight)
        later = [offset for offset in acked if offset >= oldest]
        if not later:
            return super()._new_offset(tp)
        acked[:] = [offset for offset in acked if offset < oldest]
        try:
            return super()._new_offset(tp) if acked else None
        finally:
            acked.extend(later)
            acked.sort()

    async def _getmany(
        self,
        active_partitions: set[TP] | None,
        timeout: float,  # noqa: ASYNC109 - Faust's signature
    ) -> RecordMap:
        """Fetch for the partitions active *now*, never for a set that changes meanwhile.

        Faust hands its live set of active partitions to aiokafka, which reads it from the
        consumer thread for as long as the fetch waits, and treats an *empty* set as "every
        assigned partition". When recovery pauses the changelog partitions the set empties
        under a waiting fetch: aiokafka then returns (and counts as consumed) records of the
        paused stream partitions, and Faust drops them because they are not active.
        """
        if active_partitions is None:
            return await super()._getmany(None, timeout)
        wanted = frozenset(active_partitions)
        if not wanted:
            await asyncio.sleep(min(timeout, 0.1))
            return {}
        return await super()._getmany(cast(set[TP], wanted), timeout)

    async def wait_empty(self) -> None:
        """Wait for the messages in flight, acting after the app's grace instead of forever.

        Faust waits for them however long they take, and a job batch waits for another
        system up to its type's timeout and retries: a stop could take minutes, and so could
        a rebalance, which holds every partition of the group until each member is done.

        * On a stop, what is still running after the grace is not acknowledged, so its offset
          is not committed and it runs again after the restart, as after a crash.
        * On a rebalance, the app's ``hand_back`` is set after the grace: handlers that can
          start over elsewhere (job batches) put their message back on its topic and finish.
          The others are waited for as before.
        """
        app = self.app
        if not isinstance(app, App) or app.in_flight_grace_seconds is None:
            await super().wait_empty()
            return
        grace = app.in_flight_grace_seconds
        await self._wait_acked(grace)
        count, places = self._in_flight()
        if app.should_stop:
            if count:
                log.warning(
                    "stopping with %d messages still in flight after %.1f s; they run again "
                    "after the restart: %s",
                    count,
                    grace,
                    places,
                )
            await self.commit_and_end_transactions()
            return
        if count:
            log.info(
                "rebalance: %d messages still in flight after %.1f s; job batches are handed "
                "back: %s",
                count,
                grace,
                places,
            )
            app.hand_back.set()
        try:
            await super().wait_empty()
        finally:
            app.hand_back.clear()

    async def _wait_acked(self, seconds: float) -> None:
        """Faust's wait for the messages in flight, with a deadline (it cannot be cancelled
        from outside: its wait for an ack swallows the cancellation)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while self._unacked_messages and loop.time() < deadline:
            await self.commit()
            if not self._unacked_messages:
                break
            await self._wait_for_ack(timeout=min(1.0, max(0.01, deadline - loop.time())))
            self._clean_unacked_messages()

    def _in_flight(self) -> tuple[int, str]:
        """How many messages are not acknowledged yet, and where they are."""
        unfinished = sorted(
            (message.tp.topic, message.tp.partition, message.offset)
            for message in list(self._unacked_messages)
            if not message.acked
        )
        places = ", ".join(f"{topic}[{part}]@{offset}" for topic, part, offset in unfinished)
        return len(unfinished), places

    def log_ends(self, tps: Iterable[TP]) -> dict[TP, int] | None:
        """The log end offset the fetcher last saw per partition; None until all are known."""
        ends: dict[TP, int] = {}
        for tp in tps:
            try:
                end = self.highwater(tp)
            except (AssertionError, KeyError):  # not assigned (any more)
                return None
            if end is None:
                return None
            ends[tp] = end
        return ends

    def consumed_past(self, marks: Mapping[TP, int]) -> bool:
        """Whether every message below ``marks`` is processed and its offset committed."""
        return all((self._committed_offset.get(tp) or 0) >= mark for tp, mark in marks.items())

    async def _add_gap(self, tp: TP, offset_from: int, offset_to: int) -> None:
        if tp.topic in getattr(self.app, "gapless_topics", ()):
            log.error(
                "offsets %d..%d of %s[%d] were skipped by the consumer; the stall watchdog "
                "re-drives what they held",
                offset_from,
                offset_to,
                tp.topic,
                tp.partition,
            )
        await super()._add_gap(tp, offset_from, offset_to)


class InFlightSafeTransport(aiokafka_driver.Transport):
    Consumer = InFlightSafeConsumer


class SeekFirstRecovery(Recovery):
    """Recovery that seeks the stream partitions before any of their messages is fetched."""

    async def on_recovery_completed(self, generation_id: int = 0) -> None:
        app = cast(Any, self.app)
        consumer = app.consumer
        self.log.info("Restore complete!")
        await app.on_rebalance_complete.send()
        self._set_recovery_ended()
        callbacks = [
            asyncio.ensure_future(
                table.on_recovery_completed(
                    self.actives_for_table[table], self.standbys_for_table[table]
                )
            )
            for table in self.tables.values()
        ]
        if callbacks:
            await asyncio.wait(callbacks)
        assignment = consumer.assignment()
        if app.consumer_generation_id != generation_id:
            self.log.warning(
                "Recovery rebalancing again: generation %r, recovered %r",
                app.consumer_generation_id,
                generation_id,
            )
            return
        if assignment:
            self.log.info("Seek stream partitions to committed offsets.")
            await self._wait(consumer.perform_seek(), timeout=app.conf.broker_request_timeout)
        self.completed.set()
        # No await from here to resume_flow(): the fetcher hands over nothing of a stream
        # partition before it is resumed, and the queues flow_control.resume() clears hold
        # nothing of it yet.
        consumer.resume_partitions({tp for tp in assignment if not self._is_changelog_tp(tp)})
        app.flow_control.resume()
        consumer.resume_flow()
        self.log.info("Resumed stream partitions at their committed offsets")
        await app._fetcher.maybe_start()
        self.tables.on_actives_ready()
        if not app.assignor.assigned_standbys():
            self.tables.on_standbys_ready()
        app.on_rebalance_end()
        self.log.info("Worker ready")


class SeekFirstTableManager(TableManager):
    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            self._recovery = SeekFirstRecovery(self.app, self, beacon=self.beacon, loop=self.loop)
        return self._recovery


class CompleteFlushBuffer(ProducerBuffer):
    """A producer buffer whose flush returns only once every message put was handed on."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self._put = 0
        self._handed = 0
        self._handed_on = asyncio.Event()

    def put(self, fut: FutureMessage) -> None:
        self._put += 1
        super().put(fut)

    async def _send_pending(self, fut: FutureMessage) -> None:
        try:
            await super()._send_pending(fut)
        finally:
            self._handed += 1
            self._handed_on.set()

    async def flush(self) -> None:
        while self._handed < self._put:
            if self.state != "running":
                raise RuntimeError("Cannot flush: producer buffer not running")
            self._handed_on.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._handed_on.wait(), timeout=1.0)

    @property
    def unflushed(self) -> int:
        """Messages put and not yet handed on to the Kafka client."""
        return self._put - self._handed


class App(faust.App):
    """``faust.App`` with the consumer, the recovery and the producer buffer above.

    ``gapless_topics`` names the topics only Bulkops produces to: a gap in them is reported.
    ``in_flight_grace_seconds`` bounds how long a stop or a rebalance waits for messages in
    flight before acting (None: Faust's unbounded wait); ``hand_back`` is set while a
    rebalance waits past it.
    """

    def __init__(
        self,
        *args: Any,
        gapless_topics: Collection[str] = (),
        in_flight_grace_seconds: float | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("TableManager", SeekFirstTableManager)
        super().__init__(*args, **kwargs)
        self.gapless_topics = frozenset(gapless_topics)
        self.in_flight_grace_seconds = in_flight_grace_seconds
        self.hand_back = asyncio.Event()

    def _new_transport(self) -> TransportT:
        return InFlightSafeTransport(self.conf.broker_consumer, self)

    def _new_producer(self) -> ProducerT:
        producer = super()._new_producer()
        if self.conf.producer_threaded:
            return producer  # the threaded buffer path is not used here
        buffer = CompleteFlushBuffer(loop=producer.loop, beacon=producer.beacon)
        buffer.app = self
        cast(Any, producer).buffer = buffer
        return producer


__all__ = ["App", "CompleteFlushBuffer", "InFlightSafeConsumer", "SeekFirstRecovery"]
