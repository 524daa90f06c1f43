"""A Faust transport whose consumer never commits past a message still being processed.

With agent concurrency, events of one partition finish out of order. Faust commits the
longest run of acknowledged offsets, and when nothing has been committed yet, or when the
message still in flight sits right at the committed head, that run may start *after* the
in-flight message (faust-streaming issue #606, fix proposed in PR #707, unreleased): the
offset is committed over it, and a crash loses it. Our process agent runs 32 actors per
partition, so a worker killed within its first second lost item batches this way.

The fix caps every commit below the oldest message a stream has taken but not yet
acknowledged, which is what at-least-once needs.
"""

from __future__ import annotations

import faust
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP
from faust.types.transports import TransportT


class InFlightSafeConsumer(aiokafka_driver.Consumer):
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


class InFlightSafeTransport(aiokafka_driver.Transport):
    Consumer = InFlightSafeConsumer


class App(faust.App):
    """``faust.App`` consuming through :class:`InFlightSafeTransport`."""

    def _new_transport(self) -> TransportT:
        return InFlightSafeTransport(self.conf.broker_consumer, self)


__all__ = ["App", "InFlightSafeConsumer", "InFlightSafeTransport"]
