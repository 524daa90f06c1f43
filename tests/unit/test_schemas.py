from __future__ import annotations

import copy
import json

import pytest
from pydantic import ValidationError

from schemas.export import DEFAULT_PATH, schemas_document
from schemas.messages import OperationRequested
from schemas.requests import SEED_CODE_GENERATION_EXAMPLE, BulkCodeGenerationRequest


def seed() -> dict:
    return copy.deepcopy(SEED_CODE_GENERATION_EXAMPLE)


def errors_for(body: dict) -> list[tuple[str, ...]]:
    with pytest.raises(ValidationError) as info:
        BulkCodeGenerationRequest.model_validate(body)
    return [tuple(str(p) for p in e["loc"]) for e in info.value.errors()]


def test_seed_example_is_valid_and_round_trips_in_camel_case() -> None:
    request = BulkCodeGenerationRequest.model_validate(seed())
    assert request.quantity == 1000
    assert request.batches[0].custom_prefix == "L2025ANT"
    dumped = request.model_dump()
    assert dumped["subscriptionTierId"] == 3
    assert dumped["batches"][1]["batchMetadata"]["region"] == "İzmir"


def test_snake_case_is_accepted_too() -> None:
    request = BulkCodeGenerationRequest.model_validate(
        {
            "subscription_tier_id": 2,
            "quantity": 5,
            "code_prefix": "AB-1",
            "processing": {"batch_size": 2},
        }
    )
    assert request.processing.batch_size == 2 and request.code_prefix == "AB-1"


def test_defaults_follow_the_seed() -> None:
    request = BulkCodeGenerationRequest.model_validate({"subscriptionTierId": 1, "quantity": 1})
    assert request.code_prefix == "BULK"
    assert request.validity_days == 365
    assert request.processing.batch_size == 50
    assert request.operation_name == "Bulk Code Generation"


def test_unknown_fields_are_refused_at_every_level() -> None:
    assert ("surprise",) in errors_for({**seed(), "surprise": 1})
    body = seed()
    body["processing"]["turbo"] = True
    assert ("processing", "turbo") in errors_for(body)
    body = seed()
    body["batches"][0]["colour"] = "red"
    assert ("batches", "0", "colour") in errors_for(body)


@pytest.mark.parametrize("quantity", [0, -1, -1000])
def test_quantity_must_be_positive(quantity: int) -> None:
    body = {**seed(), "quantity": quantity, "batches": []}
    assert ("quantity",) in errors_for(body)


def test_batches_may_not_exceed_quantity() -> None:
    body = seed()
    body["quantity"] = 699
    with pytest.raises(ValidationError, match="batches add up to 700 codes, more than quantity"):
        BulkCodeGenerationRequest.model_validate(body)


@pytest.mark.parametrize(
    "prefix", ["l2025", "L 2025", "L2025_", "ŞEKER", "A" * 21, "", "L2025;DROP"]
)
def test_prefixes_outside_the_alphabet_or_too_long_are_refused(prefix: str) -> None:
    assert ("codePrefix",) in errors_for({**seed(), "codePrefix": prefix})
    body = seed()
    body["batches"][0]["customPrefix"] = prefix
    assert ("batches", "0", "customPrefix") in errors_for(body)


def test_oversized_metadata_is_refused() -> None:
    body = {**seed(), "metadata": {"blob": "x" * 9000}}
    assert ("metadata",) in errors_for(body)


def test_operation_requested_checks_total_against_quantity() -> None:
    with pytest.raises(ValidationError, match="totalItems must equal"):
        OperationRequested.model_validate(
            {
                "operationId": "codegen_" + "0" * 32,
                "operationType": "BulkCodeGeneration",
                "sponsorId": 1,
                "requestedBy": "x",
                "requestedAt": "2026-01-01T00:00:00Z",
                "totalItems": 5,
                "codeGeneration": {"subscriptionTierId": 1, "quantity": 6},
            }
        )


def test_exported_json_schemas_are_current() -> None:
    """Run `bulkops export-schemas` after changing a model; other systems read this file."""
    committed = json.loads(DEFAULT_PATH.read_text())
    assert committed == json.loads(json.dumps(schemas_document(), sort_keys=True))
    assert "OperationRequested" in committed["schemas"]
