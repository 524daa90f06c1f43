"""Running the example ticket service: its Kafka workers and its HTTP handler on a thread of
their own (``bulkops up``, the tests), or in the foreground (``python -m examples.tickets``)."""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import uvicorn

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
    _loop: asyncio.AbstractEventLoop = field(init=False)
    _thread: threading.Thread = field(init=False)
    _server: uvicorn.Server | None = field(default=None, init=False)

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
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="tickets", daemon=True)

    @property
    def handler_base_url(self) -> str:
        return f"http://127.0.0.1:{self.config.http_port}"

    def start(self) -> TicketServiceThread:
        """Register the types, then start the workers and the HTTP handler."""
        config = self.config
        with httpx.Client(
            base_url=f"{config.bulkops_url}/api/v1/bulk-operations",
            headers={"Authorization": f"Bearer {config.admin_token}"},
            timeout=30,
        ) as client:
            http = config.executor == "http"
            secrets = register(client, handler_base_url=self.handler_base_url if http else None)
        self._server = uvicorn.Server(
            uvicorn.Config(
                self.service.http_app(secrets),
                host="127.0.0.1",
                port=config.http_port,
                log_level="warning",
                lifespan="off",
            )
        )
        self._thread.start()
        log.info(
            "example ticket service: %s executor, HTTP on %s, database %s",
            config.executor,
            self.handler_base_url,
            config.db_path,
        )
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._main())
        finally:
            self._loop.close()

    async def _main(self) -> None:
        assert self._server is not None
        await asyncio.gather(self.service.run(), self._server.serve())

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self.service.stop)
            if self._server is not None:
                self._server.should_exit = True
            self._thread.join(timeout=30)
        self.store.close()
