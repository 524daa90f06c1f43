"""What the example systems share: registering their job types with Bulkops (an Admin's
client), and running their SDK workers, and an HTTP app if they have one, on a thread with an
event loop of its own (``bulkops up``, the tests) or in the foreground."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import threading
import time
from collections.abc import Iterable
from typing import Any, Protocol

import httpx
import uvicorn
from fastapi import FastAPI

log = logging.getLogger("examples")


def register_types(client: httpx.Client, specs: Iterable[dict[str, Any]]) -> dict[str, str]:
    """Register (or bring up to date) each type with an Admin's ``client`` on
    ``…/api/v1/bulk-operations``; each type's signing secret (for an HTTP handler)."""
    secrets: dict[str, str] = {}
    for spec in specs:
        answer = client.post("/job-types", json=spec)
        if answer.status_code == 409:  # registered before with another spec: this one now
            answer = client.put(f"/job-types/{spec['name']}", json=spec)
        answer.raise_for_status()
        shown = client.get(f"/job-types/{spec['name']}/signing-secret")
        shown.raise_for_status()
        secrets[spec["name"]] = shown.json()["data"]["secret"]
    return secrets


def admin_client(bulkops_url: str, admin_token: str) -> httpx.Client:
    return httpx.Client(
        base_url=f"{bulkops_url}/api/v1/bulk-operations",
        headers={"Authorization": f"Bearer {admin_token}"},
        timeout=30,
    )


def add_bulkops_arguments(parser: argparse.ArgumentParser, admin_variable: str) -> None:
    """Where Bulkops is and how to reach it, as every example's command line takes them."""
    parser.add_argument("--bulkops-url", default="http://127.0.0.1:8000")
    parser.add_argument(
        "--admin-token",
        default=os.environ.get(admin_variable),
        help=f"an Admin's token for Bulkops (or {admin_variable})",
    )
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--prefix", default="bulkops", help="Bulkops' topic prefix")
    parser.add_argument(
        "--wait-seconds", type=float, default=0, help="wait this long for Bulkops to answer"
    )


def checked_bulkops_arguments(
    parser: argparse.ArgumentParser, args: argparse.Namespace, admin_variable: str
) -> None:
    """Refuse to start without a token, or when Bulkops does not answer in time."""
    if not args.admin_token:
        parser.error(f"--admin-token (or {admin_variable}) is required")
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if not bulkops_answers(args.bulkops_url, args.wait_seconds):
        parser.error(f"Bulkops does not answer at {args.bulkops_url}")


def bulkops_answers(url: str, seconds: float) -> bool:
    """Whether Bulkops' API answers at ``url`` within ``seconds`` (it may still be starting)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.5)


class Workers(Protocol):
    """A system's SDK workers: run until stopped."""

    async def run(self) -> None: ...

    def stop(self) -> None: ...


class ServiceThread:
    """``workers`` (and ``app`` on ``port``, if given) on a thread of their own."""

    def __init__(
        self, name: str, workers: Workers, app: FastAPI | None = None, port: int = 0
    ) -> None:
        self._workers = workers
        self._server = (
            uvicorn.Server(
                uvicorn.Config(
                    app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"
                )
            )
            if app is not None
            else None
        )
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._main())
        finally:
            self._loop.close()

    async def _main(self) -> None:
        parts = [self._workers.run()]
        if self._server is not None:
            parts.append(self._server.serve())
        await asyncio.gather(*parts)

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._workers.stop)
            if self._server is not None:
                self._server.should_exit = True
            self._thread.join(timeout=30)
