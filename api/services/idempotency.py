"""Idempotent submits: an ``Idempotency-Key`` gives a request's first answer again.

Per sponsor and route, the first successful answer to a key is stored in ClickHouse for a
day, with a fingerprint of the request: the same key with the same request replays that
answer (status code and body, marked ``Idempotent-Replayed: true``); with another request it
is refused (422 ``IDEMPOTENCY_KEY_REUSED``). Requests with one key are served one at a time
in an API process; across replicas the key also fixes the operation id
(:func:`api.services.submission.operation_id_for`), so the worker runs one operation
whatever the timing, and an answer lost in between is rebuilt from the operation's status.

Only successful answers are kept: a refused request (a 4xx, a 429 over quota, a 503) may be
sent again with the same key and is judged afresh.
"""

from __future__ import annotations

import asyncio
import hashlib
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import orjson
from fastapi import Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from analytics.idempotency import StoredAnswer
from api.deps import store_of, view_of
from api.errors import ApiError
from schemas.status import OperationSnapshot

REPLAYED_HEADER = "Idempotent-Replayed"
T = TypeVar("T")

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="Any string of printable ASCII chosen by the client, per sponsor. "
        "Repeating a request with the same key within 24 h gives the first answer again "
        f"(marked `{REPLAYED_HEADER}: true`) and never creates a second operation; the same "
        "key with a different request is refused (422 IDEMPOTENCY_KEY_REUSED).",
    ),
]

_locks: weakref.WeakValueDictionary[tuple[int, str, str], asyncio.Lock] = (
    weakref.WeakValueDictionary()
)


@dataclass(frozen=True)
class Claim:
    """A keyed request: whose, which route, the key, and the request's fingerprint."""

    sponsor_id: int
    scope: str
    key: str
    request_hash: str


def fingerprint(*parts: Any) -> str:
    """sha256 of the request's parts (models by their JSON), independent of key order."""

    def plain(value: Any) -> Any:
        if isinstance(value, BaseModel):
            return value.model_dump(mode="json", by_alias=True)
        if isinstance(value, bytes):
            return hashlib.sha256(value).hexdigest()
        raise TypeError(f"cannot fingerprint {type(value).__name__}")

    encoded = orjson.dumps(list(parts), default=plain, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(encoded).hexdigest()


def claim(sponsor_id: int, scope: str, key: str | None, *parts: Any) -> Claim | None:
    if key is None:
        return None
    return Claim(sponsor_id, scope, key, fingerprint(scope, *parts))


def reused(claim: Claim, operation_id: str | None = None) -> ApiError:
    details: dict[str, Any] = {"idempotencyKey": claim.key}
    if operation_id is not None:
        details["operationId"] = operation_id
    return ApiError(
        422,
        "IDEMPOTENCY_KEY_REUSED",
        "This Idempotency-Key was used for a different request: use a new key for a new request",
        details,
    )


@asynccontextmanager
async def _guarded(
    request: Request, claim: Claim | None, unused: Callable[[], Awaitable[bool]]
) -> AsyncIterator[JSONResponse | None]:
    """Yields the stored answer to replay, or None to go on; requests with one key wait for
    each other. ``unused()`` says when no answer can be stored (nothing to look up)."""
    if claim is None:
        yield None
        return
    slot = (claim.sponsor_id, claim.scope, claim.key)
    lock = _locks.get(slot)
    if lock is None:
        lock = _locks[slot] = asyncio.Lock()
    async with lock:
        if await unused():
            yield None
            return
        store = store_of(request)
        stored = await asyncio.to_thread(
            store.idempotency.find, claim.sponsor_id, claim.scope, claim.key
        )
        if stored is None:
            yield None
            return
        if stored.request_hash != claim.request_hash:
            raise reused(claim)
        yield JSONResponse(
            status_code=stored.status_code,
            content=orjson.loads(stored.response),
            headers={REPLAYED_HEADER: "true"},
        )


async def once(
    request: Request,
    claim: Claim | None,
    status_code: int,
    run: Callable[[], Awaitable[T]],
    *,
    operation_id: str | None = None,
) -> T | JSONResponse:
    """``run()``'s answer, kept for the claim's key; or the answer kept before, replayed.

    With the ``operation_id`` the key stands for, the status view (live, or its archive once
    the operation has left the status topic) says whether the key was ever used: then no
    stored answer can exist.
    """

    async def unused() -> bool:
        if operation_id is None:
            return False
        return await view_of(request).find(operation_id) is None

    async with _guarded(request, claim, unused) as replay:
        if replay is not None:
            return replay
        answer = await run()
        if claim is not None:
            stored = StoredAnswer(claim.request_hash, status_code, _json(answer))
            await asyncio.to_thread(
                store_of(request).idempotency.remember,
                claim.sponsor_id,
                claim.scope,
                claim.key,
                stored,
            )
        return answer


def _json(answer: object) -> str:
    if isinstance(answer, BaseModel):
        return answer.model_dump_json()
    return orjson.dumps(answer).decode()


def replayable(claim: Claim | None, snapshot: OperationSnapshot | None) -> OperationSnapshot | None:
    """An operation the key already created, known from its status although its answer was
    not stored (lost between Kafka and the store, or a request on another replica): the
    operation to answer with again, or 422 when it was made from another request."""
    if claim is None or snapshot is None:
        return None
    if snapshot.request_hash is not None and snapshot.request_hash != claim.request_hash:
        raise reused(claim, snapshot.operation_id)
    return snapshot
