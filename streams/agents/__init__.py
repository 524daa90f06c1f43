"""The worker's agents, one module each, and how they are declared on the Faust app.

Each agent's loop is the same: take an event, hand it to the module's ``handle`` with the
context, acknowledge it. Handlers are plain functions of ``(ctx, event)``, so unit tests call
them without Faust or a broker.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from functools import partial

import faust
from faust.types import EventT, StreamT, TopicT
from pydantic import ValidationError

from streams.agents import control, count, explode, job_results, process, sink
from streams.batching import batched
from streams.context import WorkerContext
from streams.writebehind import WriteBehind

log = logging.getLogger("bulkops.worker")

Handler = Callable[[WorkerContext, EventT[bytes]], Awaitable[None]]


@dataclass(frozen=True)
class Sources:
    """The topics the agents consume."""

    operations: TopicT
    items: TopicT
    results: TopicT
    progress: TopicT
    control: TopicT
    job_results: TopicT


async def acked_when_stored(
    stream: StreamT[bytes], behind: WriteBehind
) -> AsyncIterator[EventT[bytes]]:
    """Events acknowledged as soon as the handler is done with them and the rows buffered
    so far are stored (:mod:`streams.writebehind`): a crash before then replays them.

    Acknowledged by hand, not by Faust: Faust acks an event only when its actor pulls the
    next one, so with several actors per agent the last event of each stays unacknowledged
    while a topic is quiet: offsets stop being committed, shutdowns wait on them and a
    restart replays everything after them.

    An event whose handler was cancelled (a stop past its grace) is not acknowledged: it
    runs again after the restart.
    """
    manual = stream.noack()  # type: ignore[attr-defined]  # on Stream, not on StreamT
    async for event in manual.events():
        yield event
        await behind.release(partial(manual.ack, event))


async def guarded(ctx: WorkerContext, event: EventT[bytes], handle: Handler) -> None:
    """Bad messages go to the dead-letter topic with the reason; the stream goes on.

    Unexpected errors too: Faust would otherwise restart the agent and drop the event
    silently. Transient ClickHouse trouble never gets here (``with_retry`` waits it out).
    """
    try:
        await handle(ctx, event)
    except (ValidationError, ValueError) as exc:
        await ctx.dead_letter(event, str(exc), exc)
    except Exception as exc:
        log.exception("unexpected error on %s", event.message.topic)
        await ctx.dead_letter(event, f"unexpected {type(exc).__name__}: {exc}", exc)


def declare(app: faust.App, ctx: WorkerContext, sources: Sources) -> None:
    """Declare the six agents on ``app``, and the write-behind flusher they ack through."""

    def one_by_one(source: TopicT, handle: Handler, name: str, concurrency: int = 1) -> None:
        async def agent(stream: StreamT[bytes]) -> AsyncIterator[None]:
            async for event in acked_when_stored(stream, ctx.behind):
                await guarded(ctx, event, handle)
                yield None

        app.agent(source, name=name, concurrency=concurrency)(agent)

    one_by_one(sources.control, control.handle, "control")
    one_by_one(sources.operations, explode.handle, "explode")
    one_by_one(sources.items, process.handle, "process", ctx.settings.process_concurrency)
    one_by_one(sources.progress, count.handle, "count")
    one_by_one(sources.job_results, job_results.handle, "job-results")

    async def store_results(stream: StreamT[bytes]) -> AsyncIterator[None]:
        """Results in bulk: up to ``sink_max_messages`` per insert, at most one insert per
        ``sink_within_seconds`` unless the batches are full (:mod:`streams.batching`); the
        next batch is read while one is stored. Acknowledged once stored."""
        manual = stream.noack()  # type: ignore[attr-defined]  # on Stream, not on StreamT
        settings = ctx.settings
        async for events in batched(
            manual.events(), settings.sink_max_messages, settings.sink_within_seconds
        ):
            stored = await sink.store(ctx, events)
            for event in events:
                await manual.ack(event)
            if stored:
                yield None

    app.agent(sources.results, name="sink")(store_results)
    app.task(ctx.behind.run)
