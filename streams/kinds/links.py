"""Link sends: batches come with the recipient chunks, and each recipient gets a message."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, ClassVar

from schemas.common import OperationType
from schemas.messages import ItemBatch, ItemsChunk, RecipientChunk, ResultBatch
from streams.context import InvalidMessage
from streams.gates import TableGate, hold_back, is_paused, throttle_of
from streams.kinds.base import OperationKind
from streams.pacing import AdjustableLimit
from streams.plan import link_item_batches
from streams.progress import OperationState
from streams.sending import record_only, send_link_batch

if TYPE_CHECKING:
    from streams.context import WorkerContext


def recipient_chunk(chunk: ItemsChunk) -> RecipientChunk:
    if not isinstance(chunk, RecipientChunk):
        raise InvalidMessage(f"operation {chunk.operation_id} takes recipients, not {chunk.kind}")
    return chunk


class LinkSend(OperationKind):
    operation_type: ClassVar[OperationType] = OperationType.LINK_SEND

    async def explode_chunk(
        self, ctx: WorkerContext, chunk: ItemsChunk, state: OperationState
    ) -> list[ItemBatch]:
        """The chunk's batches, stored with its recipients: a held or re-driven batch goes
        out again from the store (its recipients exist nowhere else)."""
        chunk = recipient_chunk(chunk)
        batches = list(link_item_batches(state, chunk))
        await ctx.with_retry(
            f"operation {chunk.operation_id}: storing chunk {chunk.chunk_index}",
            ctx.state.record_chunk,
            chunk,
            batches,
        )
        return batches

    async def process(self, ctx: WorkerContext, batch: ItemBatch) -> ResultBatch | None:
        """Send the batch, at most ``maxConcurrency`` sends of the operation at once.

        Few batches of one send go at once (enough to keep ``maxConcurrency`` busy), so a
        pause is prompt: a batch still waiting for its turn when the pause comes is held.
        """
        spec = batch.link
        if spec is None:
            raise InvalidMessage("a link-send batch needs its link spec")
        registry = ctx.registry
        op_id = batch.operation_id
        if op_id not in registry.in_flight:
            throttle = throttle_of(ctx, op_id)
            concurrency = throttle.max_concurrency or spec.max_concurrency
            registry.in_flight[op_id] = AdjustableLimit(concurrency)
            registry.turns[op_id] = asyncio.Semaphore(
                max(2, -(-2 * concurrency // spec.batch_size))
            )
            ctx.pacer.set_operation_rate(op_id, throttle.rate_per_second)
        async with registry.turns[op_id]:
            if is_paused(ctx, op_id):  # paused while this batch waited for its turn
                await hold_back(ctx, batch)
                return None
            if not spec.deliver:
                return record_only(batch)
            return await send_link_batch(
                batch,
                provider=ctx.providers[spec.channel.value],
                pacer=ctx.pacer,
                gate=TableGate(ctx),
                in_flight=registry.in_flight[op_id],
            )
