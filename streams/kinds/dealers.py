"""Dealer invitations from Excel: a link send whose recipients are dealers, each given codes
from the sponsor's inventory before the invitation goes out."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, ClassVar

from analytics import rows
from analytics.rows import TableRows
from schemas.common import ErrorCategory, ItemError, OperationType
from schemas.link_wire import PreparedRecipient
from schemas.messages import ItemBatch, ItemsChunk, RecipientChunk, ResultBatch
from streams.kinds.links import LinkSend, recipient_chunk
from streams.progress import OperationState, is_batch_done

if TYPE_CHECKING:
    from streams.context import WorkerContext

log = logging.getLogger("bulkops.worker")


class DealerInvitation(LinkSend):
    operation_type: ClassVar[OperationType] = OperationType.DEALER_INVITATION

    async def explode_chunk(
        self, ctx: WorkerContext, chunk: ItemsChunk, state: OperationState
    ) -> list[ItemBatch]:
        dealers = await with_codes(ctx, recipient_chunk(chunk), state)
        return await super().explode_chunk(ctx, dealers, state)

    def annotate(self, batch: ItemBatch, result: ResultBatch) -> ResultBatch:
        """The dealer of each item rides along, so the sink records the invitation and moves
        its codes to transferred (sent) or back to released (failed or skipped)."""
        if batch.recipients and any(r.dealer for r in batch.recipients):
            result.dealers = [r.dealer for r in batch.recipients]
        return result

    def side_rows(self, result: ResultBatch) -> list[TableRows]:
        return rows.dealer_rows(result)


async def with_codes(
    ctx: WorkerContext, chunk: RecipientChunk, state: OperationState
) -> RecipientChunk:
    """Each dealer of the chunk with its codes reserved from the sponsor's inventory.

    This runs in the explode agent, which owns the sponsor's partition: reservations of one
    sponsor never run concurrently, so no code goes to two dealers. A dealer whose tier has
    too few codes left gets none and ends Skipped with INSUFFICIENT_CODES. Dealers of
    batches already counted (a replay) reserve nothing: their codes were transferred or
    given back when their batch was stored.
    """
    assert state.link is not None
    size = state.link.batch_size
    needs = [
        (r.index, r.dealer.tier_id, r.dealer.code_count)
        for r in chunk.recipients
        if r.dealer is not None and r.skip is None and not is_batch_done(state, r.index // size)
    ]
    reserved = await ctx.with_retry(
        f"operation {chunk.operation_id}: reserving codes for chunk {chunk.chunk_index}",
        ctx.state.reserve_codes,
        chunk.sponsor_id,
        chunk.operation_id,
        needs,
    )
    recipients = [_with_reserved(chunk.operation_id, r, reserved) for r in chunk.recipients]
    short = sum(1 for r in recipients if r.skip is not None and r.dealer is not None)
    if short:
        log.warning("operation %s: %d dealers without codes", chunk.operation_id, short)
    return chunk.model_copy(update={"recipients": recipients})


def _with_reserved(
    operation_id: str, recipient: PreparedRecipient, reserved: dict[int, list[str]]
) -> PreparedRecipient:
    dealer = recipient.dealer
    if dealer is None or recipient.skip is not None:
        return recipient
    if recipient.index in reserved:
        return recipient.model_copy(
            update={"dealer": dealer.model_copy(update={"codes": reserved[recipient.index]})}
        )
    error = ItemError(
        item_index=recipient.index,
        item_id=f"{operation_id}:{recipient.index}",
        error_code="INSUFFICIENT_CODES",
        error_message=(
            f"Yetersiz kod ({dealer.tier} tier): {dealer.code_count} needed, "
            "not enough left in the inventory"
        ),
        error_category=ErrorCategory.BUSINESS,
    )
    return recipient.model_copy(update={"skip": error})
