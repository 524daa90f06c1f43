"""Starting the parts of a system on one machine: its topics, the HTTP server, the provider
simulator and the example systems (what ``bulkops up`` and the single-role commands use)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from bulkops import topicadmin
from core.settings import ApiSettings, WorkerSettings
from core.topics import Topics

if TYPE_CHECKING:
    from fastapi import FastAPI

log = logging.getLogger("bulkops")


def run_http(app: FastAPI, settings: ApiSettings) -> None:
    """uvicorn, its own log lines going through the root logger in ``BULKOPS_LOG_FORMAT`` and
    at ``BULKOPS_LOG_LEVEL`` (the access log is INFO: one line per request).

    HTTP is parsed by httptools (C), not h11: measured under 500 status requests/s beside a
    running worker, the event loop's busy share fell from ~49 % to ~27 %, and with it the
    latency tail of every request sharing the loop."""
    import uvicorn

    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        http="httptools",
        timeout_keep_alive=settings.http_keep_alive_seconds,
        log_level=settings.log_level.lower(),
        log_config=None,
    )


def ensure_topics(settings: ApiSettings | WorkerSettings) -> None:
    """Every topic of the prefix, created where missing, with its retention and compaction."""
    configs = {
        spec.name: spec.config(
            retention_hours=settings.topic_retention_hours,
            dead_letter_retention_hours=settings.dead_letter_retention_hours,
        )
        for spec in Topics(settings.topic_prefix).all()
    }
    created = topicadmin.create_topics(
        settings.kafka_bootstrap,
        configs,
        partitions=settings.partitions,
        replication_factor=settings.replication_factor,
    )
    if created:
        log.info("created topics: %s", ", ".join(created))


def start_simulator(http_port: int, smtp_port: int, rate: float, latency_ms: float) -> object:
    from bulkops.simulator import ProviderSimulator, SimulatorConfig, SimulatorThread

    simulator = ProviderSimulator(SimulatorConfig(rate_per_second=rate, latency_ms=latency_ms))
    thread = SimulatorThread(simulator, http_port=http_port, smtp_port=smtp_port).start()
    log.info(
        "provider simulator: HTTP %s (ledger at /_ledger), SMTP 127.0.0.1:%d",
        thread.http_url,
        smtp_port,
    )
    return thread


def start_examples(
    settings: ApiSettings, base_url: str, smtp_port: int
) -> list[subprocess.Popen[bytes]]:
    """The example systems beside a dev system, each registering its job types once the API
    answers: the ticket service (seed 003, ``ticket:*``, demo tickets 1-1,000 of sponsor 7)
    and the marketplace (seed 002, ``inventory:*``, ``listing:*``, ``notification:*``, demo
    SKU-1..100 and devices of sponsor 7, e-mail through the simulator's SMTP server).

    Only in dev (they are given an Admin token minted with the dev secret) and from a
    checkout (the examples are not part of the installed package)."""
    from api.auth import Role, mint_token

    root = Path(__file__).resolve().parent.parent
    if settings.env != "dev" or not (root / "examples").is_dir():
        return []
    token = mint_token(
        settings.jwt_secret,
        subject="example-systems",
        role=Role.ADMIN,
        sponsor_id=None,
        ttl=timedelta(days=30),
    )
    common = [
        "--bulkops-url", base_url, "--bootstrap", settings.kafka_bootstrap,
        "--prefix", settings.topic_prefix, "--demo-tenant", "7", "--wait-seconds", "120",
    ]  # fmt: skip
    data = root / ".data"
    marketplace_db = str(data / "marketplace" / "marketplace.db")
    commands = {
        "tickets": ["--db", str(data / "tickets" / "tickets.db")],
        "marketplace": ["--db", marketplace_db, "--smtp-port", str(smtp_port)],
    }
    env = {
        **os.environ,
        "TICKETS_BULKOPS_ADMIN_TOKEN": token,
        "MARKETPLACE_BULKOPS_ADMIN_TOKEN": token,
    }
    log.info("example systems starting: tickets (seed 003) and marketplace (seed 002)")
    return [
        subprocess.Popen(
            [sys.executable, "-m", f"examples.{name}", *common, *extra], cwd=root, env=env
        )
        for name, extra in commands.items()
    ]
