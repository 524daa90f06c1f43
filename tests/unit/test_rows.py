"""The sink's row builders: column lists that hold, item by item, what each item's row says.

The reference here builds one row per item the plain way; the builders must agree with it on
uniform batches (their fast path) and on mixed ones, errors included.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from analytics import rows
from schemas.common import Channel, ErrorCategory, ItemError, ItemStatus, OperationType
from schemas.messages import ResultBatch

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def batch(
    statuses: list[ItemStatus],
    *,
    start: int = 100,
    results: list[str | None] | None = None,
    errors: list[ItemError] | None = None,
    **fields: Any,
) -> ResultBatch:
    return ResultBatch(
        operation_id="op_rows",
        sponsor_id=7,
        operation_type=fields.pop("operation_type", OperationType.LINK_SEND),
        batch_index=3,
        start_index=start,
        statuses=statuses,
        results=results if results is not None else [f"r{i}" for i in range(len(statuses))],
        errors=errors or [],
        processed_at=NOW,
        duration_ms=40.0,
        **fields,
    )


def error(index: int, code: str = "E", retryable: bool = True) -> ItemError:
    return ItemError(
        item_index=index,
        item_id=f"op_rows:{index}",
        error_code=code,
        error_message=f"{code} at {index}",
        error_category=ErrorCategory.NETWORK,
        is_retryable=retryable,
        retry_count=2,
    )


def reference_items(result: ResultBatch) -> list[dict[str, Any]]:
    """One row per item, each value found from that item alone."""
    n = len(result.statuses)
    errors = {e.item_index: e for e in result.errors}
    out = []
    for offset, status in enumerate(result.statuses):
        index = result.start_index + offset
        failure = errors.get(index)
        out.append(
            {
                "sponsor_id": result.sponsor_id,
                "operation_id": result.operation_id,
                "item_index": index,
                "item_id": (
                    result.item_ids[offset] if result.item_ids else f"{result.operation_id}:{index}"
                ),
                "operation_type": result.operation_type.value,
                "status": status.value,
                "result_data": result.results[offset],
                "error_code": failure.error_code if failure else None,
                "error_message": failure.error_message if failure else None,
                "error_category": failure.error_category.value if failure else None,
                "is_retryable": failure.is_retryable if failure else False,
                "retry_count": failure.retry_count if failure else 0,
                "processed_at": rows.ms(result.processed_at),
                "processing_duration_ms": result.duration_ms / n,
                "channel": result.channel.value if result.channel else None,
                "cost": result.unit_cost if status is ItemStatus.SUCCESS else 0.0,
                "attempts": (
                    result.attempts[offset]
                    if result.attempts
                    else (0 if status is ItemStatus.SKIPPED else 1)
                ),
                "provider_latency_ms": (
                    result.latencies_ms[offset] if result.latencies_ms else 0.0
                ),
            }
        )
    return out


def as_rows(table: rows.TableRows) -> list[dict[str, Any]]:
    assert table.column_oriented
    assert table.arrow().column_names == list(table.columns)
    return table.records()


S, F, K = ItemStatus.SUCCESS, ItemStatus.FAILED, ItemStatus.SKIPPED

CASES = {
    "all succeeded": batch([S] * 50, channel=Channel.SMS, unit_cost=0.05),
    "all skipped": batch([K] * 20, results=[None] * 20),
    "all failed": batch([F] * 3, results=[None] * 3, errors=[error(100), error(101), error(102)]),
    "mixed, with an error repeated and one outside the batch": batch(
        [S, F, K, F, S],
        results=["a", None, None, None, "e"],
        errors=[error(101, "FIRST"), error(101, "SECOND", False), error(103), error(999)],
        channel=Channel.EMAIL,
        unit_cost=0.01,
        attempts=[1, 3, 0, 2, 1],
        latencies_ms=[5.0, 30.0, 0.0, 12.5, 4.0],
    ),
    "own item ids": batch([S, S, F], item_ids=["x:1", "x:2", "x:3"], errors=[error(102)]),
    "empty": batch([]),
}


@pytest.mark.parametrize("name", CASES)
def test_item_rows_say_per_item_what_each_item_did(name: str) -> None:
    result = CASES[name]
    assert as_rows(rows.item_rows([result])) == reference_items(result)


def test_item_rows_of_several_batches_follow_one_another() -> None:
    batches = list(CASES.values())
    expected = [row for result in batches for row in reference_items(result)]
    assert as_rows(rows.item_rows(batches)) == expected


def code_batch(statuses: list[ItemStatus], codes: list[str | None]) -> ResultBatch:
    return batch(
        statuses,
        start=1000,
        results=codes,
        operation_type=OperationType.CODE_GENERATION,
        tier_id=2,
        expires_at=NOW + timedelta(days=30),
        batch_name="spring",
    )


def test_code_rows_of_a_batch_that_all_succeeded_are_every_code_in_order() -> None:
    codes = [f"P-{i:026d}" for i in range(40)]
    table = as_rows(rows.code_rows(code_batch([S] * 40, list(codes))))
    assert [(r["item_index"], r["code"]) for r in table] == list(enumerate(codes, start=1000))
    assert {(r["sponsor_id"], r["subscription_tier_id"], r["batch_name"]) for r in table} == {
        (7, 2, "spring")
    }
    assert {(r["created_at"], r["expires_at"]) for r in table} == {
        (rows.ms(NOW), rows.ms(NOW + timedelta(days=30)))
    }


def test_code_rows_keep_only_the_items_that_got_a_code() -> None:
    result = code_batch([S, F, S, S], ["P-A", None, None, "P-D"])
    table = as_rows(rows.code_rows(result))
    assert [(r["item_index"], r["code"]) for r in table] == [(1000, "P-A"), (1003, "P-D")]
