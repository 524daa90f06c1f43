"""Operator alerts about operations: one that fails too much, or runs without progress.

Sponsors have rules of their own (auto-pause, their webhooks); these are for whoever runs
Bulkops. An alert is a metric (``bulkops_operation_alerts_total{kind}``), a WARNING line
with the operation's ids (``operation <id>: ALERT <kind>: ...``), and, with
``BULKOPS_ALERT_WEBHOOK_URL``, an ``operation_alert`` webhook signed like the sponsors'
ones with the operators' secret (``GET /webhook-secret`` with an Admin token).

* ``failure_rate``: judged by the count agent on every counted batch once the operation has
  ``alert_min_items`` judged (succeeded or failed) items; raised once per operation, which
  its table value remembers.
* ``stalled``: a running operation (Processing: not queued, paused or finished) whose
  processed count has not moved for ``alert_stalled_seconds``, seen by a timer; raised once
  per stall, and again after it has moved and stopped anew. The timer keeps what it saw in
  memory: a restarted worker starts its clocks afresh.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any

from core import logs
from core.metrics import ALERTS, count_webhook_attempt
from core.settings import WorkerSettings
from core.webhooks import operators_secret
from streams.progress import OperationState
from streams.webhooks import AttemptResult, deliver, payload

log = logging.getLogger("bulkops.alerts")

FAILURE_RATE = "failure_rate"
STALLED = "stalled"
EVENT = "operation_alert"


def failure_rate_alert(state: OperationState, settings: WorkerSettings) -> str | None:
    """What to say if ``state`` has reached the failure-rate threshold and was not alerted
    about it yet; None otherwise."""
    judged = state.successful_items + state.failed_items
    if FAILURE_RATE in state.alerts or judged < settings.alert_min_items:
        return None
    rate = state.failed_items / judged
    if rate < settings.alert_failure_rate:
        return None
    return (
        f"{state.failed_items} of {judged} items failed "
        f"({rate:.0%}; the alert threshold is {settings.alert_failure_rate:.0%})"
    )


@dataclass
class _Seen:
    processed: int
    since: float
    alerted: bool = False


class Alerts:
    """Raises alerts, and watches running operations for stalls (see the module doc)."""

    def __init__(
        self,
        settings: WorkerSettings,
        *,
        send: Callable[..., Awaitable[bool]] = deliver,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._send = send
        self._clock = clock
        self._seen: dict[str, _Seen] = {}
        self._deliveries: set[asyncio.Future[bool]] = set()

    def raise_alert(self, state: OperationState, kind: str, message: str) -> None:
        ALERTS.labels(kind).inc()
        log.warning(
            "operation %s: ALERT %s: %s",
            state.operation_id,
            kind,
            message,
            extra=logs.about(state.operation_id, state.sponsor_id),
        )
        settings = self._settings
        if settings.alert_webhook_url is None:
            return
        body: dict[str, Any] = {
            **payload(state, EVENT),
            "alert": kind,
            "message": message,
            "sponsorId": state.sponsor_id,
            "operationName": state.operation_name,
        }
        delivery = asyncio.ensure_future(
            self._send(
                url=settings.alert_webhook_url,
                event=EVENT,
                payload=body,
                secret=operators_secret(settings.webhook_secret),
                # The operators' own receiver, configured by them: internal hosts are fine.
                allow_private=True,
                request_timeout=settings.webhook_timeout_seconds,
                max_attempts=settings.webhook_max_attempts,
                backoff=settings.webhook_backoff_seconds,
                report=partial(self._report, state.operation_id, kind),
            )
        )
        self._deliveries.add(delivery)
        delivery.add_done_callback(self._deliveries.discard)

    async def deliveries_done(self) -> None:
        """Wait for the alert webhooks under way (their attempts included)."""
        await asyncio.gather(*self._deliveries)

    async def _report(self, operation_id: str, kind: str, result: AttemptResult) -> None:
        count_webhook_attempt(EVENT, delivered=result.delivered, final=result.final)
        if result.final:
            log.log(
                logging.INFO if result.delivered else logging.WARNING,
                "operation %s: %s alert webhook %s after %d attempts%s",
                operation_id,
                kind,
                "delivered" if result.delivered else "not delivered",
                result.attempt,
                "" if result.delivered else f": {result.error or result.status_code}",
            )

    def stalled(self, running: Iterable[OperationState]) -> list[tuple[OperationState, str]]:
        """Of the operations running now, those that just became due a stall alert, with
        what to say; forgets operations no longer running."""
        limit = self._settings.alert_stalled_seconds
        moment = self._clock()
        due: list[tuple[OperationState, str]] = []
        current: set[str] = set()
        for state in running:
            current.add(state.operation_id)
            seen = self._seen.get(state.operation_id)
            if seen is None or seen.processed != state.processed_items:
                self._seen[state.operation_id] = _Seen(state.processed_items, moment)
            elif limit and not seen.alerted and moment - seen.since >= limit:
                seen.alerted = True
                due.append(
                    (
                        state,
                        f"no item counted for {moment - seen.since:.0f} s, at "
                        f"{state.processed_items}/{state.total_items} items",
                    )
                )
        for operation_id in self._seen.keys() - current:
            del self._seen[operation_id]
        return due
