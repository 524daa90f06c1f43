"""How an operation explodes into item batches: a pure function of the request."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar

from schemas.messages import (
    CodeBatchSpec,
    ItemBatch,
    ItemsChunk,
    JobItemsChunk,
    OperationRequested,
    RecipientChunk,
)
from schemas.requests import BulkCodeGenerationRequest

if TYPE_CHECKING:
    from streams.progress import OperationState


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
    if codegen is not None:
        return count_code_batches(codegen, codegen.processing.batch_size)
    return -(-request.total_items // request.batch_size)


def code_item_batches(
    request: OperationRequested, serial_base: int, only: set[int] | None = None
) -> Iterator[ItemBatch]:
    """The item-batch messages of a code-generation operation, identical on every replay
    (``only``: just those batch indexes)."""
    codegen = request.code_generation
    assert codegen is not None
    for planned in plan_code_batches(codegen, codegen.processing.batch_size):
        if only is not None and planned.batch_index not in only:
            continue
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


class _Indexed(Protocol):
    index: int


T = TypeVar("T", bound=_Indexed)


def _chunk_slices(
    state: OperationState, chunk: ItemsChunk, items: Sequence[T], size: int
) -> Iterator[tuple[int, list[T]]]:
    """(start index, items) of each batch of a chunk; chunks hold whole batches, so a batch's
    index is its first item's index divided by the batch size."""
    if chunk.start_index % size:
        raise ValueError(f"chunk {chunk.chunk_index} does not start on a batch boundary")
    for offset in range(0, len(items), size):
        part = list(items[offset : offset + size])
        start = chunk.start_index + offset
        if part[0].index != start or part[-1].index != start + len(part) - 1:
            raise ValueError(f"chunk {chunk.chunk_index}: item indexes are not contiguous")
        if start + len(part) > state.total_items:
            raise ValueError(f"chunk {chunk.chunk_index} goes past totalItems")
        if len(part) < size and start + len(part) != state.total_items:
            raise ValueError(f"chunk {chunk.chunk_index}: a short batch that is not the last")
        yield start, part


def link_item_batches(state: OperationState, chunk: RecipientChunk) -> Iterator[ItemBatch]:
    """The item batches of one recipient chunk."""
    spec = state.link
    assert spec is not None
    for start, part in _chunk_slices(state, chunk, chunk.recipients, spec.batch_size):
        yield ItemBatch(
            operation_id=state.operation_id,
            sponsor_id=state.sponsor_id,
            operation_type=state.operation_type,
            batch_index=start // spec.batch_size,
            start_index=start,
            count=len(part),
            link=spec,
            recipients=part,
        )


def job_item_batches(state: OperationState, chunk: JobItemsChunk) -> Iterator[ItemBatch]:
    """The item batches of one chunk of a job operation's items."""
    run = state.job
    assert run is not None
    for start, part in _chunk_slices(state, chunk, chunk.items, run.batch_size):
        yield ItemBatch(
            operation_id=state.operation_id,
            sponsor_id=state.sponsor_id,
            operation_type=state.operation_type,
            batch_index=start // run.batch_size,
            start_index=start,
            count=len(part),
            job=run,
            job_items=part,
        )
