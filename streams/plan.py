"""How an operation explodes into item batches: a pure function of the request."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from schemas.messages import CodeBatchSpec, ItemBatch, OperationRequested
from schemas.requests import BulkCodeGenerationRequest


@dataclass(frozen=True)
class Segment:
    """Consecutive item indexes sharing a prefix: one ``batches`` entry, or the rest."""

    start: int
    count: int
    prefix: str
    batch_name: str | None


@dataclass(frozen=True)
class PlannedBatch:
    batch_index: int
    start_index: int
    count: int
    segment: Segment


def code_segments(request: BulkCodeGenerationRequest) -> list[Segment]:
    """The request's named batches first, in order, then the remainder under ``codePrefix``."""
    segments: list[Segment] = []
    start = 0
    for batch in request.batches:
        prefix = batch.custom_prefix or request.code_prefix
        segments.append(Segment(start, batch.quantity, prefix, batch.batch_name))
        start += batch.quantity
    if start < request.quantity:
        segments.append(Segment(start, request.quantity - start, request.code_prefix, None))
    return segments


def plan_code_batches(
    request: BulkCodeGenerationRequest, batch_size: int
) -> Iterator[PlannedBatch]:
    """Item batches of at most ``batch_size``; a batch never spans two segments."""
    index = 0
    for segment in code_segments(request):
        offset = 0
        while offset < segment.count:
            count = min(batch_size, segment.count - offset)
            yield PlannedBatch(index, segment.start + offset, count, segment)
            index += 1
            offset += count


def count_code_batches(request: BulkCodeGenerationRequest, batch_size: int) -> int:
    return sum(-(-segment.count // batch_size) for segment in code_segments(request))


def count_batches(request: OperationRequested) -> int:
    """How many item batches the operation explodes into (the size of its progress bitmap)."""
    codegen = request.code_generation
    assert codegen is not None
    return count_code_batches(codegen, codegen.processing.batch_size)


def code_item_batches(request: OperationRequested, serial_base: int) -> Iterator[ItemBatch]:
    """The item-batch messages of a code-generation operation, identical on every replay."""
    codegen = request.code_generation
    assert codegen is not None
    for planned in plan_code_batches(codegen, codegen.processing.batch_size):
        yield ItemBatch(
            operation_id=request.operation_id,
            sponsor_id=request.sponsor_id,
            operation_type=request.operation_type,
            batch_index=planned.batch_index,
            start_index=planned.start_index,
            count=planned.count,
            code=CodeBatchSpec(
                prefix=planned.segment.prefix,
                tier_id=codegen.subscription_tier_id,
                validity_days=codegen.validity_days,
                batch_name=planned.segment.batch_name,
                serial_base=serial_base,
            ),
        )
