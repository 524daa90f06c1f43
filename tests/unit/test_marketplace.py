"""The example marketplace's jobs (seed ``002``) on its own database: each registration is
one Bulkops accepts, each change runs once per item id, and refusals are per item."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from examples.marketplace.jobtypes import ACTIONS, JOB_TYPES, type_spec
from examples.marketplace.store import MarketplaceStore, Refused
from schemas.jobs import JobTypeSpec


@pytest.fixture
def store(tmp_path: Path) -> MarketplaceStore:
    return MarketplaceStore(tmp_path / "m.db")


def do(
    store: MarketplaceStore, job_type: str, item: dict[str, Any], item_id: str, tenant: int = 7
) -> dict[str, Any]:
    return store.once(item_id, job_type, ACTIONS[job_type](tenant, item, {}))


def test_the_eight_types_of_the_plan_register_with_its_settings() -> None:
    specs = [JobTypeSpec.model_validate(type_spec(name)) for name in JOB_TYPES]
    assert sorted(s.name for s in specs) == [
        "inventory:create",
        "inventory:delete",
        "inventory:update",
        "listing:create",
        "listing:delete",
        "listing:update",
        "notification:email",
        "notification:push",
    ]
    assert {(s.timeout_seconds, s.max_retries, s.max_concurrency) for s in specs} == {(30, 3, 8)}


def test_listings_are_created_updated_and_deleted_once_per_item_id(
    store: MarketplaceStore,
) -> None:
    store.seed(7, skus=["SKU-1"])
    listing = {"listingId": "L-1", "title": "Lamp", "price": 20, "sku": "SKU-1"}
    assert do(store, "listing:create", listing, "op:0") == {"listingId": "L-1", "created": True}
    assert do(store, "listing:create", listing, "op:0")["created"]  # delivered again: same
    with pytest.raises(Refused) as exists:
        do(store, "listing:create", listing, "op2:0")
    assert exists.value.code == "LISTING_EXISTS"
    with pytest.raises(Refused) as no_sku:
        do(store, "listing:create", listing | {"listingId": "L-2", "sku": "SKU-9"}, "op:1")
    assert no_sku.value.code == "INVENTORY_NOT_FOUND"
    do(store, "listing:update", {"listingId": "L-1", "status": "sold", "price": 15}, "op3:0")
    assert store.listings(7) == {
        "L-1": {"title": "Lamp", "price": 15, "status": "sold", "sku": "SKU-1"}
    }
    with pytest.raises(Refused) as foreign:
        do(store, "listing:delete", {"listingId": "L-1"}, "op4:0", tenant=8)
    assert foreign.value.code == "LISTING_NOT_FOUND"
    do(store, "listing:delete", {"listingId": "L-1"}, "op5:0")
    assert store.listings(7) == {}
    assert store.counts() == {"listing:create": 1, "listing:update": 1, "listing:delete": 1}


def test_a_refused_change_leaves_nothing_behind(store: MarketplaceStore) -> None:
    store.seed(7, skus=["SKU-1"])
    item = {"sku": "SKU-1", "name": "Again", "quantity": 1, "price": 1}
    with pytest.raises(Refused):
        do(store, "inventory:create", item, "op:0")
    assert store.done("op:0") is None and store.inventory(7)["SKU-1"]["name"] == "Item SKU-1"
