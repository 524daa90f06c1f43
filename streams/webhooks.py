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
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING

import aiohttp
import orjson

from core.metrics import count_webhook_attempt
from core.settings import WorkerSettings
from core.topics import sponsor_key
from core.webhooks import UnsafeTarget, check_target, sign, sponsor_secret
from schemas.messages import WebhookAttempt
from streams.progress import OperationState

if TYPE_CHECKING:
    from streams.context import Outbox


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


class WebhookLauncher:
    """Delivers an operation's webhooks in background tasks: a slow receiver must never hold
    up a stream. Each attempt is reported to the progress topic, so the operation's table
    value (and status) records it; one task per (operation, event) runs at a time."""

    def __init__(self, settings: WorkerSettings, progress: Outbox) -> None:
        self._settings = settings
        self._progress = progress
        self._tasks: dict[tuple[str, str], asyncio.Task[bool]] = {}

    def start(self, state: OperationState, event: str, *, milestone: int | None = None) -> None:
        key = (state.operation_id, event if milestone is None else f"{event}:{milestone}")
        if state.callback_url is None or key in self._tasks:
            return
        settings = self._settings
        self._tasks[key] = asyncio.ensure_future(
            deliver(
                url=state.callback_url,
                event=event,
                payload=payload(state, event),
                secret=sponsor_secret(settings.webhook_secret, state.sponsor_id),
                allow_private=settings.webhook_allow_private,
                request_timeout=settings.webhook_timeout_seconds,
                max_attempts=settings.webhook_max_attempts,
                backoff=settings.webhook_backoff_seconds,
                report=partial(self._report, state.operation_id, state.sponsor_id, event),
            )
        )

    def settled(self, operation_id: str, event: str) -> None:
        """The final attempt is recorded in the table: the task may go (the status timer
        restarts only deliveries the table still calls pending)."""
        self._tasks.pop((operation_id, event), None)

    def forget(self, operation_id: str) -> None:
        """Drop the finished tasks of an operation that ended."""
        for key in [k for k, task in self._tasks.items() if k[0] == operation_id and task.done()]:
            del self._tasks[key]

    async def _report(
        self, operation_id: str, sponsor_id: int, event: str, result: AttemptResult
    ) -> None:
        count_webhook_attempt(event, delivered=result.delivered, final=result.final)
        attempt = WebhookAttempt(
            operation_id=operation_id,
            sponsor_id=sponsor_id,
            event=event,
            attempt=result.attempt,
            status_code=result.status_code,
            error=result.error,
            delivered=result.delivered,
            final=result.final,
            at=datetime.now(UTC),
        )
        await self._progress.send(
            key=sponsor_key(sponsor_id), value=attempt.model_dump_json().encode()
        )


def payload(state: OperationState, event: str) -> dict[str, object]:
    return {
        "type": event,
        "operationId": state.operation_id,
        "operationType": state.operation_type.value,
        "status": state.status.value,
        "totalItems": state.total_items,
        "processedItems": state.processed_items,
        "successfulItems": state.successful_items,
        "failedItems": state.failed_items,
        "skippedItems": state.skipped_items,
        "totalCost": round(state.total_cost, 6),
        "completedAt": state.completed_at.isoformat() if state.completed_at else None,
        "pauseReason": state.pause_reason,
        "timestamp": datetime.now(UTC).isoformat(),
    }
