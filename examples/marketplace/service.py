"""The marketplace's side of Bulkops: one Kafka worker (``bulkops.jobs``) per job type.

Database jobs run in one transaction with the record that they ran (once per item id).
``notification:email`` sends through an SMTP server with the item id as the message's
idempotency key, and records the message id after; a job delivered again after the send and
before the record sends again with the same key, which the receiving server recognises.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httpx

from bulkops.jobs import ItemHandler, JobWorker, PermanentError, RetryableError
from examples.marketplace.jobtypes import ACTIONS, JOB_TYPES, Action, type_spec
from examples.marketplace.store import MarketplaceStore, Refused
from examples.serving import register_types
from schemas.jobs import JobBatch, JobItem
from streams.providers.base import ProviderError
from streams.providers.smtp import SmtpEmail


@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int
    sender: str = "Marketplace <no-reply@marketplace.example.com>"


def register(client: httpx.Client) -> dict[str, str]:
    """Register (or bring up to date) the eight types; each type's signing secret."""
    return register_types(client, (type_spec(name) for name in JOB_TYPES))


class MarketplaceService:
    """The eight types' workers over one store."""

    def __init__(
        self,
        store: MarketplaceStore,
        *,
        bootstrap: str,
        prefix: str,
        smtp: SmtpServer,
        concurrency: int = 8,
    ) -> None:
        self.store = store
        self.email = SmtpEmail(
            host=smtp.host,
            port=smtp.port,
            sender=smtp.sender,
            username=None,
            password=None,
            start_tls=False,
            timeout=10,
        )
        handlers: dict[str, ItemHandler] = {
            name: self._database_job(name, action) for name, action in ACTIONS.items()
        }
        handlers["notification:email"] = self._send_email
        self.workers = [
            JobWorker(
                name,
                bootstrap=bootstrap,
                prefix=prefix,
                handler=handlers[name],
                concurrency=concurrency,
                worker_id=f"marketplace-{name.replace(':', '-')}",
                poll_seconds=0.1,
            )
            for name in JOB_TYPES
        ]

    def _database_job(self, name: str, action: Action) -> ItemHandler:
        async def run(item: JobItem, batch: JobBatch) -> dict[str, Any]:
            change = action(batch.sponsor_id, item.payload, batch.data)
            try:
                return self.store.once(item.item_id, name, change)
            except Refused as exc:
                raise PermanentError(exc.code, exc.message) from None

        return run

    async def _send_email(self, item: JobItem, batch: JobBatch) -> dict[str, Any]:
        done = self.store.done(item.item_id)
        if done is not None:
            return done
        name = str(item.payload.get("name", ""))
        try:
            delivery = await self.email.send(
                to=item.payload["to"],
                subject=batch.data["subject"],
                body=batch.data["body"].replace("{name}", name),
                idempotency_key=item.item_id,
            )
        except ProviderError as exc:
            error = RetryableError if exc.retryable else PermanentError
            raise error(exc.code, exc.message, exc.category) from None
        answer = {"messageId": delivery.provider_message_id}
        return self.store.once(item.item_id, "notification:email", lambda _: answer)

    async def run(self) -> None:
        """Every type's worker, until :meth:`stop`."""
        try:
            await asyncio.gather(*(worker.run() for worker in self.workers))
        finally:
            await self.email.close()

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
