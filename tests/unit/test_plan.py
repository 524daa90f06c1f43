from __future__ import annotations

import copy

from schemas.requests import SEED_CODE_GENERATION_EXAMPLE, BulkCodeGenerationRequest
from streams.plan import code_segments, count_code_batches, plan_code_batches


def seed_request() -> BulkCodeGenerationRequest:
    return BulkCodeGenerationRequest.model_validate(copy.deepcopy(SEED_CODE_GENERATION_EXAMPLE))


def test_seed_segments_carve_named_batches_then_the_rest() -> None:
    segments = code_segments(seed_request())
    assert [(s.start, s.count, s.prefix, s.batch_name) for s in segments] == [
        (0, 300, "L2025ANT", "Antalya Bölgesi"),
        (300, 400, "L2025IZM", "İzmir Bölgesi"),
        (700, 300, "L2025", None),
    ]


def test_batches_cover_every_item_once_and_never_span_segments() -> None:
    request = seed_request()
    batches = list(plan_code_batches(request, 128))
    covered = [i for b in batches for i in range(b.start_index, b.start_index + b.count)]
    assert covered == list(range(1000))
    assert [b.batch_index for b in batches] == list(range(len(batches)))
    for b in batches:
        assert b.segment.start <= b.start_index
        assert b.start_index + b.count <= b.segment.start + b.segment.count
    assert len(batches) == count_code_batches(request, 128) == 3 + 4 + 3


def test_a_request_without_batches_is_one_segment() -> None:
    request = BulkCodeGenerationRequest.model_validate(
        {"subscriptionTierId": 1, "quantity": 10_001}
    )
    batches = list(plan_code_batches(request, 500))
    assert len(batches) == 21 and batches[-1].count == 1
    assert {b.segment.prefix for b in batches} == {"BULK"}
