"""What follows from the partitions this worker owns, after every rebalance.

Every worker sends for every sender (provider account), so no one worker can hold a sender
to its rate alone. Each holds it to the share of the item partitions it owns: the shares of
all workers add up to one at most, whatever their number, and follow every rebalance (on a
revocation a worker's share drops to none until its next assignment, so a partition moving
between workers is never paced by both).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, cast

import faust
from faust.types import TP

from core.topics import Topics
from streams.context import WorkerContext

log = logging.getLogger("bulkops.worker")


def owned(assignment: Iterable[TP], topic: str) -> int:
    """How many partitions of ``topic`` are in ``assignment``."""
    return sum(1 for tp in assignment if tp.topic == topic)


def declare(app: faust.App, ctx: WorkerContext) -> None:
    items = Topics(ctx.settings.topic_prefix).items.name
    total = ctx.settings.partitions

    # Signal receivers: (sender, partitions, signal=...); the assignment is read whole.
    async def revoked(sender: Any, *_: Any, **__: Any) -> None:
        ctx.pacer.follow_assignment(0, total)

    async def assigned(sender: Any, *_: Any, **__: Any) -> None:
        mine = owned(sender.consumer.assignment(), items)
        rates = ctx.pacer.follow_assignment(mine, total)
        log.info(
            "pacing: %d of %d item partitions here, sender rates now %s",
            mine,
            total,
            ", ".join(f"{channel} {rate:g}/s" for channel, rate in rates.items()),
        )

    # mode's handler type admits no coroutine function, though its Signal awaits them.
    app.on_partitions_revoked.connect(cast(Any, revoked))
    app.on_partitions_assigned.connect(cast(Any, assigned))
