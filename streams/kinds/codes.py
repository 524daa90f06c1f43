"""Code generation: every batch is planned from the request, and every item gets its code."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, ClassVar

from analytics import rows
from analytics.rows import TableRows
from schemas.common import OperationType
from schemas.messages import ItemBatch, OperationRequested, ResultBatch
from streams.codes import CodeMinter, generate_codes
from streams.kinds.base import OperationKind
from streams.plan import code_item_batches
from streams.progress import OperationState

if TYPE_CHECKING:
    from streams.context import WorkerContext


class CodeGeneration(OperationKind):
    operation_type: ClassVar[OperationType] = OperationType.CODE_GENERATION
    stateless: ClassVar[bool] = True

    def serial_base(self, ctx: WorkerContext, request: OperationRequested) -> int:
        return ctx.tables.serials.reserve(request)

    async def explode(
        self, ctx: WorkerContext, request: OperationRequested, state: OperationState
    ) -> list[ItemBatch]:
        ctx.registry.requests[request.operation_id] = request
        return list(code_item_batches(request, state.serial_base))

    async def stored_batches(
        self, ctx: WorkerContext, state: OperationState, indexes: list[int]
    ) -> dict[int, str]:
        """Code batches are a pure function of the stored request: planned again."""
        request = ctx.registry.requests.get(state.operation_id)
        if request is None:
            request = await ctx.with_retry(
                f"operation {state.operation_id}: reading its request",
                ctx.state.request,
                state.sponsor_id,
                state.operation_id,
            )
            if request is None:
                return {}
            ctx.registry.requests[state.operation_id] = request
        return {
            batch.batch_index: batch.model_dump_json()
            for batch in code_item_batches(request, state.serial_base, only=set(indexes))
        }

    async def process(self, ctx: WorkerContext, batch: ItemBatch) -> ResultBatch | None:
        return self.process_alone(ctx.minter, batch)

    def process_alone(
        self, minter: CodeMinter, batch: ItemBatch, taken_at: datetime | None = None
    ) -> ResultBatch:
        return generate_codes(minter, batch, taken_at)

    def side_rows(self, result: ResultBatch) -> list[TableRows]:
        return [rows.code_rows(result)]
