"""The eight job types of the ``002`` queue plan (``JobType``), as registered with Bulkops,
and what each does to the marketplace's database.

The plan's "listing bulk operations" job needs no type of its own: one Bulkops operation of
``listing:update`` (or any other) is the bulk operation, its items the listings.
The plan's settings are the registrations': a 30-second job timeout, three retries with
exponential backoff, and 5-10 jobs at once.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from examples.marketplace.store import Change, Refused, now

SKU = {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[A-Za-z0-9._-]+$"}
LISTING_ID = {"type": "string", "minLength": 1, "maxLength": 64}
PRICE = {"type": "number", "minimum": 0, "maximum": 10_000_000}
QUANTITY = {"type": "integer", "minimum": 0, "maximum": 1_000_000}
LISTING_STATUSES = ("active", "inactive", "sold")


def _object(required: list[str], properties: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "required": required,
        "properties": properties,
        "additionalProperties": False,
        **more,
    }


ITEM_SCHEMAS: dict[str, dict[str, Any]] = {
    "inventory:create": _object(
        ["sku", "name", "quantity", "price"],
        {
            "sku": SKU,
            "name": {"type": "string", "minLength": 1, "maxLength": 200},
            "quantity": QUANTITY,
            "price": PRICE,
            "imageUrl": {"type": "string", "format": "uri", "maxLength": 500},
        },
    ),
    "inventory:update": _object(
        ["sku"],
        {
            "sku": SKU,
            "name": {"type": "string", "minLength": 1, "maxLength": 200},
            "quantity": QUANTITY,
            "price": PRICE,
        },
        minProperties=2,
    ),
    "inventory:delete": _object(["sku"], {"sku": SKU}),
    "listing:create": _object(
        ["listingId", "title", "price"],
        {
            "listingId": LISTING_ID,
            "title": {"type": "string", "minLength": 1, "maxLength": 200},
            "price": PRICE,
            "sku": SKU,
        },
    ),
    "listing:update": _object(
        ["listingId"],
        {
            "listingId": LISTING_ID,
            "title": {"type": "string", "minLength": 1, "maxLength": 200},
            "price": PRICE,
            "status": {"enum": list(LISTING_STATUSES)},
        },
        minProperties=2,
    ),
    "listing:delete": _object(["listingId"], {"listingId": LISTING_ID}),
    "notification:email": _object(
        ["to"],
        {
            "to": {"type": "string", "format": "email", "maxLength": 254},
            "name": {"type": "string", "maxLength": 100},
        },
    ),
    "notification:push": _object(
        ["deviceToken"], {"deviceToken": {"type": "string", "minLength": 8, "maxLength": 200}}
    ),
}
DATA_SCHEMAS: dict[str, dict[str, Any]] = {
    "inventory:delete": _object([], {"cleanupImages": {"type": "boolean"}}),
    "notification:email": _object(
        ["subject", "body"],
        {
            "subject": {"type": "string", "minLength": 1, "maxLength": 200},
            "body": {"type": "string", "minLength": 1, "maxLength": 10_000},
        },
    ),
    "notification:push": _object(
        ["title", "body"],
        {
            "title": {"type": "string", "minLength": 1, "maxLength": 100},
            "body": {"type": "string", "minLength": 1, "maxLength": 1000},
        },
    ),
}
JOB_TYPES = tuple(ITEM_SCHEMAS)


def type_spec(name: str) -> dict[str, Any]:
    """The registration of one type: Kafka-executed, with the ``002`` plan's settings."""
    area, action = name.split(":")
    return {
        "name": name,
        "description": f"Marketplace: {area} {action} (seed 002)",
        "executor": "kafka",
        "itemSchema": ITEM_SCHEMAS[name],
        "dataSchema": DATA_SCHEMAS.get(name, _object([], {})),
        "batchSize": 100,
        "timeoutSeconds": 30,
        "maxRetries": 3,
        "backoffSeconds": 1,
        "backoffMultiplier": 2,
        "maxConcurrency": 8,
    }


Action = Callable[[int, dict[str, Any], dict[str, Any]], Change]


def inventory_create(tenant: int, item: dict[str, Any], _: dict[str, Any]) -> Change:
    def change(db: sqlite3.Connection) -> dict[str, Any]:
        if _inventory(db, tenant, item["sku"]) is not None:
            raise Refused("SKU_EXISTS", f"Inventory item {item['sku']} already exists")
        db.execute(
            "INSERT INTO inventory (tenant, sku, name, quantity, price, image_url) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                tenant,
                item["sku"],
                item["name"],
                item["quantity"],
                item["price"],
                item.get("imageUrl"),
            ),
        )
        return {"sku": item["sku"], "created": True}

    return change


_INVENTORY_COLUMNS = {"name": "name", "quantity": "quantity", "price": "price"}
_LISTING_COLUMNS = {"title": "title", "price": "price", "status": "status"}


def inventory_update(tenant: int, item: dict[str, Any], _: dict[str, Any]) -> Change:
    def change(db: sqlite3.Connection) -> dict[str, Any]:
        _require(_inventory(db, tenant, item["sku"]), "INVENTORY_NOT_FOUND", item["sku"])
        _update(db, "inventory", _INVENTORY_COLUMNS, item, "sku = ?", (tenant, item["sku"]))
        return {"sku": item["sku"], "updated": sorted(set(item) - {"sku"})}

    return change


def inventory_delete(tenant: int, item: dict[str, Any], data: dict[str, Any]) -> Change:
    def change(db: sqlite3.Connection) -> dict[str, Any]:
        found = _require(_inventory(db, tenant, item["sku"]), "INVENTORY_NOT_FOUND", item["sku"])
        db.execute("DELETE FROM inventory WHERE tenant = ? AND sku = ?", (tenant, item["sku"]))
        image = found[0]
        if image and data.get("cleanupImages", True):
            db.execute(
                "INSERT INTO image_cleanups (tenant, image_url, removed_at) VALUES (?, ?, ?)",
                (tenant, image, now()),
            )
        return {"sku": item["sku"], "deleted": True, "imageRemoved": bool(image)}

    return change


def listing_create(tenant: int, item: dict[str, Any], _: dict[str, Any]) -> Change:
    def change(db: sqlite3.Connection) -> dict[str, Any]:
        if _listing(db, tenant, item["listingId"]) is not None:
            raise Refused("LISTING_EXISTS", f"Listing {item['listingId']} already exists")
        if "sku" in item:
            _require(_inventory(db, tenant, item["sku"]), "INVENTORY_NOT_FOUND", item["sku"])
        db.execute(
            "INSERT INTO listings (tenant, listing_id, title, price, sku) VALUES (?, ?, ?, ?, ?)",
            (tenant, item["listingId"], item["title"], item["price"], item.get("sku")),
        )
        return {"listingId": item["listingId"], "created": True}

    return change


def listing_update(tenant: int, item: dict[str, Any], _: dict[str, Any]) -> Change:
    def change(db: sqlite3.Connection) -> dict[str, Any]:
        listing = item["listingId"]
        _require(_listing(db, tenant, listing), "LISTING_NOT_FOUND", listing)
        _update(db, "listings", _LISTING_COLUMNS, item, "listing_id = ?", (tenant, listing))
        return {"listingId": listing, "updated": sorted(set(item) - {"listingId"})}

    return change


def listing_delete(tenant: int, item: dict[str, Any], _: dict[str, Any]) -> Change:
    def change(db: sqlite3.Connection) -> dict[str, Any]:
        listing = item["listingId"]
        _require(_listing(db, tenant, listing), "LISTING_NOT_FOUND", listing)
        db.execute("DELETE FROM listings WHERE tenant = ? AND listing_id = ?", (tenant, listing))
        return {"listingId": listing, "deleted": True}

    return change


def push(tenant: int, item: dict[str, Any], data: dict[str, Any]) -> Change:
    def change(db: sqlite3.Connection) -> dict[str, Any]:
        token = item["deviceToken"]
        owner = db.execute("SELECT tenant FROM devices WHERE token = ?", (token,)).fetchone()
        if owner is None or owner[0] != tenant:  # another tenant's device is not found either
            raise Refused("DEVICE_NOT_FOUND", "No such device registered for push")
        db.execute(
            "INSERT INTO pushes (token, title, body, sent_at) VALUES (?, ?, ?, ?)",
            (token, data["title"], data["body"], now()),
        )
        return {"delivered": True}

    return change


ACTIONS: dict[str, Action] = {
    "inventory:create": inventory_create,
    "inventory:update": inventory_update,
    "inventory:delete": inventory_delete,
    "listing:create": listing_create,
    "listing:update": listing_update,
    "listing:delete": listing_delete,
    "notification:push": push,
}


def _inventory(db: sqlite3.Connection, tenant: int, sku: str) -> tuple[Any, ...] | None:
    row: tuple[Any, ...] | None = db.execute(
        "SELECT image_url FROM inventory WHERE tenant = ? AND sku = ?", (tenant, sku)
    ).fetchone()
    return row


def _listing(db: sqlite3.Connection, tenant: int, listing: str) -> tuple[Any, ...] | None:
    row: tuple[Any, ...] | None = db.execute(
        "SELECT status FROM listings WHERE tenant = ? AND listing_id = ?", (tenant, listing)
    ).fetchone()
    return row


def _require(row: tuple[Any, ...] | None, code: str, key: str) -> tuple[Any, ...]:
    """The row, or a refusal: another tenant's rows are not found either."""
    if row is None:
        raise Refused(code, f"{key} not found")
    return row


def _update(
    db: sqlite3.Connection,
    table: str,
    columns: dict[str, str],
    item: dict[str, Any],
    where: str,
    key: tuple[Any, ...],
) -> None:
    """Set the columns ``item`` names (the item schema allows only those in ``columns``)."""
    names = [name for name in columns if name in item]
    assignments = ", ".join(f"{columns[name]} = ?" for name in names)
    db.execute(
        f"UPDATE {table} SET {assignments} WHERE tenant = ? AND {where}",  # noqa: S608 - fixed names
        (*[item[name] for name in names], *key),
    )
