"""The ticket service's side of Bulkops: its six job types, their Kafka workers (written with
``bulkops.jobs``), and the same actions as an HTTP handler for the HTTP executor.

Each action checks the ticket's tenant (the operation's sponsor) and whether it is
restricted, then changes it once per item id (:mod:`examples.tickets.store`).
"""

from __future__ import annotations

import asyncio
import hmac
import time
from typing import Any

import httpx
from fastapi import FastAPI, Header, HTTPException, Request

from bulkops.jobs import ItemHandler, JobWorker, PermanentError
from core.webhooks import sign
from examples.serving import register_types
from examples.tickets.store import PRIORITIES, STATUSES, Change, Refused, TicketStore
from schemas.jobs import JobBatch, JobHttpAnswer, JobItem

ACTIONS = (
    "update_status",
    "add_comment",
    "assign",
    "update_priority",
    "update_category",
    "delete",
)
ITEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["ticketId"],
    "properties": {"ticketId": {"type": "integer", "minimum": 1}},
    "additionalProperties": False,
}
DATA_SCHEMAS: dict[str, dict[str, Any]] = {
    "update_status": {"required": ["status"], "properties": {"status": {"enum": list(STATUSES)}}},
    "add_comment": {
        "required": ["comment"],
        "properties": {
            "comment": {"type": "string", "minLength": 1, "maxLength": 5000, "pattern": r"\S"}
        },
    },
    "assign": {
        "required": ["assignee_id"],
        "properties": {"assignee_id": {"type": "integer", "minimum": 1}},
    },
    "update_priority": {
        "required": ["priority"],
        "properties": {"priority": {"enum": list(PRIORITIES)}},
    },
    "update_category": {
        "required": ["category"],
        "properties": {"category": {"type": "string", "minLength": 1, "maxLength": 100}},
    },
    "delete": {"properties": {"reason": {"type": "string", "maxLength": 500}}},
}
#: A signed request older than this is refused (replay).
MAX_SIGNATURE_AGE_SECONDS = 300


def type_spec(action: str, *, handler_url: str | None = None) -> dict[str, Any]:
    """The registration of ``ticket:<action>``: Kafka-executed, or HTTP at ``handler_url``."""
    spec: dict[str, Any] = {
        "name": f"ticket:{action}",
        "description": f"Support tickets: {action.replace('_', ' ')} (seed 003)",
        "executor": "kafka",
        "itemSchema": ITEM_SCHEMA,
        "dataSchema": {"type": "object", "additionalProperties": False, **DATA_SCHEMAS[action]},
        "batchSize": 100,
        "timeoutSeconds": 30,
        "maxRetries": 3,
        "maxConcurrency": 8,
    }
    if handler_url is not None:
        spec |= {"executor": "http", "handlerUrl": handler_url, "allowPrivateHandler": True}
    return spec


def register(client: httpx.Client, *, handler_base_url: str | None = None) -> dict[str, str]:
    """Register (or bring up to date) the six types; each type's signing secret."""
    return register_types(
        client,
        (
            type_spec(
                action,
                handler_url=f"{handler_base_url}/bulk/{action}" if handler_base_url else None,
            )
            for action in ACTIONS
        ),
    )


class TicketService:
    """The six actions over one store, as Kafka workers and as an HTTP handler."""

    def __init__(
        self, store: TicketStore, *, bootstrap: str, prefix: str, concurrency: int = 8
    ) -> None:
        self.store = store
        self.workers = {
            action: JobWorker(
                f"ticket:{action}",
                bootstrap=bootstrap,
                prefix=prefix,
                handler=self._handler(action),
                concurrency=concurrency,
                worker_id=f"tickets-{action}",
                poll_seconds=0.1,
            )
            for action in ACTIONS
        }

    def _handler(self, action: str) -> ItemHandler:
        async def apply(item: JobItem, batch: JobBatch) -> dict[str, Any]:
            change = Change(
                action=action,
                ticket_id=int(item.payload["ticketId"]),
                tenant=batch.sponsor_id,
                item_id=item.item_id,
                data=batch.data,
            )
            try:
                return self.store.apply(change)
            except Refused as exc:
                raise PermanentError(exc.code, exc.message) from None

        return apply

    async def run(self) -> None:
        """Every action's Kafka worker, until :meth:`stop`."""
        await asyncio.gather(*(worker.run() for worker in self.workers.values()))

    def stop(self) -> None:
        for worker in self.workers.values():
            worker.stop()

    def http_app(self, secrets: dict[str, str]) -> FastAPI:
        """``POST /bulk/{action}``: a signed ``JobBatch`` in, its outcomes out."""
        app = FastAPI(title="Example ticket service")

        @app.post("/bulk/{action}")
        async def bulk(
            action: str,
            request: Request,
            timestamp: str = Header(alias="X-Bulkops-Timestamp"),
            signature: str = Header(alias="X-Bulkops-Signature"),
        ) -> JobHttpAnswer:
            worker = self.workers.get(action)
            secret = secrets.get(f"ticket:{action}")
            if worker is None or secret is None:
                raise HTTPException(404, "no such action")
            body = await request.body()
            fresh = (
                timestamp.isdigit()
                and abs(time.time() - int(timestamp)) < MAX_SIGNATURE_AGE_SECONDS
            )
            if not fresh or not hmac.compare_digest(signature, sign(secret, timestamp, body)):
                raise HTTPException(401, "bad signature")
            result = await worker.handle(JobBatch.model_validate_json(body))
            return JobHttpAnswer(outcomes=result.outcomes)

        @app.get("/tickets/{ticket_id}")
        def ticket(ticket_id: int) -> dict[str, Any]:
            found = self.store.ticket(ticket_id)
            if found is None:
                raise HTTPException(404, "no such ticket")
            return found

        return app
