"""An operation's items as chunk messages for the operations topic: whole batches per chunk,
every message under Kafka's limit, encoded once (no model per chunk)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from pydantic import TypeAdapter

from schemas.job_wire import JobItem
from schemas.link_wire import PreparedRecipient

# The list field each kind of chunk carries its items in, and how a batch of them is encoded.
_FIELDS: dict[str, tuple[str, TypeAdapter[Any]]] = {
    "recipients": ("recipients", TypeAdapter(list[PreparedRecipient])),
    "job_items": ("items", TypeAdapter(list[JobItem])),
}


class BatchTooLarge(ValueError):
    """One batch of items would not fit in a Kafka message."""


def encode_chunks(
    *,
    kind: str,
    operation_id: str,
    sponsor_id: int,
    items: Sequence[PreparedRecipient] | Sequence[JobItem],
    batch_size: int,
    max_bytes: int,
    submission_id: str | None = None,
) -> list[bytes]:
    """``RecipientChunk`` or ``JobItemsChunk`` (``kind``) messages of whole batches, each at
    most ``max_bytes``, in order."""
    field, adapter = _FIELDS[kind]
    chunks: list[bytes] = []
    parts: list[bytes] = []
    size = 0
    start = 0

    def flush(next_start: int) -> None:
        nonlocal parts, size, start
        if not parts:
            return
        head = orjson.dumps(
            {
                "kind": kind,
                "operationId": operation_id,
                "sponsorId": sponsor_id,
                "chunkIndex": len(chunks),
                "startIndex": start,
                "submissionId": submission_id,
            }
        )
        chunks.append(head[:-1] + f',"{field}":['.encode() + b",".join(parts) + b"]}")
        parts, size, start = [], 0, next_start

    for offset in range(0, len(items), batch_size):
        body = adapter.dump_json(items[offset : offset + batch_size], by_alias=True)[1:-1]
        if len(body) + 200 > max_bytes:
            raise BatchTooLarge(
                f"a batch of {batch_size} items is {len(body)} bytes; "
                f"Kafka messages stay under {max_bytes}: use a smaller batchSize"
            )
        if size + len(body) + 200 > max_bytes:
            flush(offset)
        parts.append(body)
        size += len(body) + 1
    flush(len(items))
    return chunks
