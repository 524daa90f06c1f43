"""The interface every operation kind implements.

A *kind* is what differs between operation types; the agents do the rest the same way for
all of them (register, release or hold, stop rules, count, sink, report). A kind says:

* how a request is planned into item batches — all at once from the request
  (:meth:`~OperationKind.explode`), or as chunks of its items arrive
  (:meth:`~OperationKind.explode_chunk`);
* how to get the message of a batch exploded earlier back (:meth:`~OperationKind.stored_batches`),
  for batches that were held or must be re-driven;
* how a batch is processed (:meth:`~OperationKind.process`), and what its result carries
  for the sink (:meth:`~OperationKind.annotate`); a kind whose batches need nothing but
  themselves (``stateless``) is processed by the processor processes when the worker runs
  some (:meth:`~OperationKind.process_alone`, :mod:`streams.processor`);
* what the sink stores beside the items (:meth:`~OperationKind.side_rows`).

A replay is recognised the same way for every kind: a batch counted in the operation's
bitmap is skipped, a stored batch is recognised by its items (``KeptState.stored_result``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar

from analytics.rows import TableRows
from schemas.common import OperationType
from schemas.messages import ItemBatch, ItemsChunk, OperationRequested, ResultBatch
from streams.codes import CodeMinter
from streams.context import InvalidMessage
from streams.progress import OperationState

if TYPE_CHECKING:
    from streams.context import WorkerContext


class OperationKind(ABC):
    operation_type: ClassVar[OperationType]
    # Batches need no worker state, table or store: any process with the minter can do them.
    stateless: ClassVar[bool] = False

    def serial_base(self, ctx: WorkerContext, request: OperationRequested) -> int:
        """The first serial of the operation's range, for kinds that number their items."""
        return 0

    async def explode(
        self, ctx: WorkerContext, request: OperationRequested, state: OperationState
    ) -> list[ItemBatch]:
        """The batches known from the request alone (none for kinds fed by chunks)."""
        return []

    async def explode_chunk(
        self, ctx: WorkerContext, chunk: ItemsChunk, state: OperationState
    ) -> list[ItemBatch]:
        """The batches of one chunk of items, stored so they can be released later."""
        raise InvalidMessage(f"{self.operation_type.value} takes no {chunk.kind} chunks")

    async def stored_batches(
        self, ctx: WorkerContext, state: OperationState, indexes: list[int]
    ) -> dict[int, str]:
        """The item-batch messages of batches exploded earlier, by batch index: as stored
        when their chunk arrived (a kind that plans them from its request plans again)."""
        return await ctx.with_retry(
            f"operation {state.operation_id}: reading {len(indexes)} item batches",
            ctx.state.item_batches,
            state.sponsor_id,
            state.operation_id,
            indexes,
        )

    @abstractmethod
    async def process(self, ctx: WorkerContext, batch: ItemBatch) -> ResultBatch | None:
        """The batch's outcome, or None when it was handed back to be held (paused)."""

    def process_alone(
        self, minter: CodeMinter, batch: ItemBatch, taken_at: datetime | None = None
    ) -> ResultBatch:
        """The batch's outcome from the batch alone (``stateless`` kinds only), its items
        processed at ``taken_at`` (now by default)."""
        raise NotImplementedError(f"{self.operation_type.value} batches need the worker")

    def annotate(self, batch: ItemBatch, result: ResultBatch) -> ResultBatch:
        """What the result of ``batch`` must carry for the sink, however it was reached
        (processed, or skipped because the operation stopped)."""
        return result

    def side_rows(self, result: ResultBatch) -> list[TableRows]:
        """What the sink stores for ``result`` beside its items."""
        return []
