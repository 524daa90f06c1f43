"""Signed completion (and progress-milestone) webhooks to ``processing.callbackUrl``.

Each POST carries the JSON event, ``X-Bulkops-Event``, ``X-Bulkops-Delivery`` (a UUID the
receiver can dedupe on), ``X-Bulkops-Timestamp`` and ``X-Bulkops-Signature:
sha256=HMAC(secret, "{timestamp}.{body}")`` with the sponsor's own secret (derived from
``BULKOPS_WEBHOOK_SECRET``; sponsors read theirs at ``GET /webhook-secret``). Receivers
should refuse timestamps older than a few minutes (replay). Failed deliveries are retried with
exponential backoff; every attempt is reported back so status shows it.

Targets on loopback, private, link-local or otherwise reserved addresses are refused unless
``BULKOPS_WEBHOOK_ALLOW_PRIVATE`` is set (server-side request forgery), both when the request
is submitted and again, after DNS resolution, right before each delivery.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import aiohttp
import orjson

from core.webhooks import UnsafeTarget, check_target, sign


@dataclass(frozen=True)
class AttemptResult:
    attempt: int
    status_code: int | None
    error: str | None
    delivered: bool
    final: bool


async def deliver(
    *,
    url: str,
    event: str,
    payload: Mapping[str, object],
    secret: str,
    allow_private: bool,
    request_timeout: float,
    max_attempts: int,
    backoff: float,
    report: Callable[[AttemptResult], Awaitable[None]],
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> bool:
    """POST until a 2xx, a permanent refusal (4xx other than 408/429) or the last attempt."""
    body = orjson.dumps(payload)
    delivery = str(uuid.uuid4())
    async with aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=request_timeout)
    ) as session:
        for attempt in range(1, max_attempts + 1):
            status: int | None = None
            error: str | None = None
            try:
                await asyncio.to_thread(check_target, url, allow_private=allow_private)
                timestamp = str(int(time.time()))
                async with session.post(
                    url,
                    data=body,
                    headers={
                        "Content-Type": "application/json",
                        "X-Bulkops-Event": event,
                        "X-Bulkops-Delivery": delivery,
                        "X-Bulkops-Timestamp": timestamp,
                        "X-Bulkops-Signature": sign(secret, timestamp, body),
                    },
                    allow_redirects=False,
                ) as response:
                    status = response.status
            except UnsafeTarget as exc:
                await report(AttemptResult(attempt, None, str(exc), False, True))
                return False
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                error = f"{type(exc).__name__}: {exc}"[:300]
            delivered = status is not None and 200 <= status < 300
            permanent = status is not None and 400 <= status < 500 and status not in (408, 429)
            final = delivered or permanent or attempt == max_attempts
            await report(AttemptResult(attempt, status, error, delivered, final))
            if final:
                return delivered
            await sleep(backoff * 2 ** (attempt - 1))
    return False
