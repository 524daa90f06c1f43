"""Running the example ticket service: its Kafka workers and its HTTP handler on a thread of
their own (``bulkops up``, the tests), or in the foreground (``python -m examples.tickets``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from examples.serving import ServiceThread, admin_client
from examples.tickets.service import TicketService, register
from examples.tickets.store import TicketStore

log = logging.getLogger("tickets")


@dataclass
class TicketServiceConfig:
    bulkops_url: str  # the API's base, e.g. http://127.0.0.1:8000
    admin_token: str  # registers the ticket:* types
    bootstrap: str
    prefix: str
    db_path: Path
    http_port: int
    demo_tenant: int | None = None
    demo_tickets: int = 1000
    restricted_every: int = 0
    executor: str = "kafka"  # or "http": Bulkops POSTs batches to this service
    concurrency: int = 8


@dataclass
class TicketServiceThread:
    config: TicketServiceConfig
    store: TicketStore = field(init=False)
    service: TicketService = field(init=False)
    _thread: ServiceThread | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        config = self.config
        self.store = TicketStore(config.db_path)
        if config.demo_tenant is not None:
            self.store.seed(
                config.demo_tenant,
                range(1, config.demo_tickets + 1),
                restricted_every=config.restricted_every,
            )
        self.service = TicketService(
            self.store,
            bootstrap=config.bootstrap,
            prefix=config.prefix,
            concurrency=config.concurrency,
        )

    @property
    def handler_base_url(self) -> str:
        return f"http://127.0.0.1:{self.config.http_port}"

    def start(self) -> TicketServiceThread:
        """Register the types, then start the workers and the HTTP handler."""
        config = self.config
        http = config.executor == "http"
        with admin_client(config.bulkops_url, config.admin_token) as client:
            secrets = register(client, handler_base_url=self.handler_base_url if http else None)
        self._thread = ServiceThread(
            "tickets", self.service, self.service.http_app(secrets), config.http_port
        )
        self._thread.start()
        log.info(
            "example ticket service: %s executor, HTTP on %s, database %s",
            config.executor,
            self.handler_base_url,
            config.db_path,
        )
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._thread.stop()
        self.store.close()
