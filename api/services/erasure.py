"""Right to erasure through the API: normalise the address as submits do, then erase it."""

from __future__ import annotations

import asyncio
import hashlib
import logging

from fastapi import Request

from analytics import erasure
from api.deps import settings_of, store_of
from api.errors import validation_error
from api.services.recipients import normalise_email, normalise_phone
from schemas.analytics import ErasureResult

log = logging.getLogger("bulkops.api")


async def erase(request: Request, raw: str, *, by: str) -> ErasureResult:
    kind = "email" if "@" in raw else "phone"
    if kind == "email":
        address = normalise_email(raw)
    else:
        address = normalise_phone(raw, settings_of(request).default_phone_region)
    if address is None:
        raise validation_error("address", f"not a valid {kind.replace('email', 'e-mail')}")
    removed = await asyncio.to_thread(erasure.erase, store_of(request).connection, address)
    total = sum(removed.values())
    digest = hashlib.sha256(address.encode()).hexdigest()[:12]
    log.info("erasure by %s: %d rows removed for the %s with sha256 %s…", by, total, kind, digest)
    return ErasureResult(address_kind=kind, rows_removed=removed, total_removed=total)
