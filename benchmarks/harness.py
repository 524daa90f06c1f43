"""Shared benchmark plumbing: a broker, a `bulkops serve` process, RSS sampling, percentiles."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.auth import Role, mint_token  # noqa: E402
from bulkops import localkafka  # noqa: E402


class PeakRss(threading.Thread):
    """Samples a process's resident set size every 100 ms and keeps the maximum."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.peak = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                self.peak = max(self.peak, self.process.memory_info().rss)
            except psutil.NoSuchProcess:
                return
            time.sleep(0.1)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass
class Running:
    base_url: str
    client: httpx.Client
    server_rss: PeakRss
    broker_rss: PeakRss | None
    log_path: Path
    jwt_secret: str

    def client_for(self, sponsor_id: int) -> httpx.Client:
        """A client of another sponsor (close it when done)."""
        token = mint_token(
            self.jwt_secret,
            subject=f"bench-{sponsor_id}",
            role=Role.SPONSOR,
            sponsor_id=sponsor_id,
            ttl=timedelta(hours=2),
        )
        return httpx.Client(
            base_url=f"{self.base_url}/api/v1/bulk-operations",
            headers={"Authorization": f"Bearer {token}"},
            timeout=120,
        )


@contextmanager
def bulkops_system(
    *, partitions: int, env: dict[str, str], sponsor_id: int = 42, bootstrap: str | None = None
) -> Iterator[Running]:
    """A broker (unless ``bootstrap``) and one ``bulkops serve`` process, stopped afterwards."""
    workdir = Path(tempfile.mkdtemp(prefix="bulkops-bench-"))
    broker_dir = workdir / "kafka"
    broker_rss: PeakRss | None = None
    if bootstrap is None:
        bootstrap = localkafka.start(broker_dir).bootstrap
        broker_rss = PeakRss(int((broker_dir / "broker.pid").read_text()))
        broker_rss.start()
    port = localkafka.free_port()
    jwt_secret = secrets.token_urlsafe(48)
    full_env = {
        **os.environ,
        "BULKOPS_ENV": "test",
        "BULKOPS_KAFKA_BOOTSTRAP": bootstrap,
        "BULKOPS_TOPIC_PREFIX": f"bench{uuid.uuid4().hex[:8]}",
        "BULKOPS_PARTITIONS": str(partitions),
        "BULKOPS_CHDB_PATH": str(workdir / "chdb"),
        "BULKOPS_WORKER_DATA_DIR": str(workdir / "worker"),
        "BULKOPS_PORT": str(port),
        "BULKOPS_JWT_SECRET": jwt_secret,
        "BULKOPS_CODE_SECRET": secrets.token_urlsafe(48),
        "BULKOPS_WEBHOOK_SECRET": secrets.token_urlsafe(48),
        "BULKOPS_SMS_AUTH_TOKEN": secrets.token_urlsafe(16),
        "BULKOPS_WHATSAPP_TOKEN": secrets.token_urlsafe(16),
        "BULKOPS_LOG_LEVEL": "WARNING",
        # Benchmarks measure the engine, not the seed's per-sponsor quotas (unless they ask).
        "BULKOPS_QUOTA_MAX_CONCURRENT_OPERATIONS": "0",
        "BULKOPS_QUOTA_MAX_OPERATIONS_PER_DAY": "0",
        "BULKOPS_QUOTA_MAX_ITEMS_PER_DAY": "0",
        **env,
    }
    log_path = workdir / "server.log"
    with log_path.open("ab") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "bulkops.cli", "serve"],
            cwd=ROOT,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server_rss = PeakRss(server.pid)
    server_rss.start()
    base = f"http://127.0.0.1:{port}"
    token = mint_token(
        jwt_secret,
        subject="bench",
        role=Role.SPONSOR,
        sponsor_id=sponsor_id,
        ttl=timedelta(hours=2),
    )
    client = httpx.Client(
        base_url=f"{base}/api/v1/bulk-operations",
        headers={"Authorization": f"Bearer {token}"},
        timeout=120,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).json().get("statusViewReady"):
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.2)
        yield Running(base, client, server_rss, broker_rss, log_path, jwt_secret)
    finally:
        client.close()
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        server_rss.stopped.set()
        if broker_rss is not None:
            localkafka.stop(broker_dir)
