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
from contextlib import contextmanager, suppress
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
    """Samples the resident set size of a process and of every process it started (the API's
    address-check pool, the processors) every 100 ms, and keeps the maximum (and the latest
    sample).

    The sizes are added up, so pages they share count more than once: an upper bound. The
    process tree is listed once a second: listing it scans every process in /proc, which at
    every sample took ~10 % of a core from the benchmark process (and from the provider
    simulator running in it)."""

    SAMPLE_SECONDS = 0.1
    TREE_SECONDS = 1.0

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.peak = 0
        self.latest = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        tree: list[psutil.Process] = []
        listed = 0.0
        while not self.stopped.is_set():
            if time.monotonic() - listed >= self.TREE_SECONDS:
                with suppress(psutil.NoSuchProcess):
                    tree = self.process.children(recursive=True)
                listed = time.monotonic()
            try:
                self.latest = self.process.memory_info().rss
            except psutil.NoSuchProcess:
                return
            for child in tree:
                with suppress(psutil.NoSuchProcess):
                    self.latest += child.memory_info().rss
            self.peak = max(self.peak, self.latest)
            self.stopped.wait(self.SAMPLE_SECONDS)


def cpu_seconds(process: psutil.Process) -> float:
    """CPU time ``process`` has used so far (user + system, every thread)."""
    times = process.cpu_times()
    return float(times.user + times.system)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class ServeProcess:
    """One ``bulkops serve`` process on ``env``, which can be stopped and started again."""

    def __init__(self, env: dict[str, str], log_path: Path, base_url: str) -> None:
        self.env = env
        self.log_path = log_path
        self.base_url = base_url
        self.process: subprocess.Popen[bytes] | None = None
        self.rss: PeakRss | None = None

    def start(self, timeout: float = 120.0) -> float:
        """Start, wait until the API's status view has caught up; returns the seconds taken."""
        started = time.monotonic()
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bulkops.cli", "serve"],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.rss = PeakRss(self.process.pid)
        self.rss.start()
        while True:
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=1).json().get("statusViewReady"):
                    return time.monotonic() - started
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.monotonic() - started > timeout:
                raise RuntimeError(f"server did not start:\n{self.log_path.read_text()[-3000:]}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        if self.rss is not None:
            self.rss.stopped.set()


@dataclass
class Running:
    base_url: str
    client: httpx.Client
    server_rss: PeakRss
    broker_rss: PeakRss | None
    log_path: Path
    jwt_secret: str
    server: ServeProcess

    def admin_token(self) -> str:
        return mint_token(
            self.jwt_secret,
            subject="bench-admin",
            role=Role.ADMIN,
            sponsor_id=None,
            ttl=timedelta(hours=2),
        )

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
    base = f"http://127.0.0.1:{port}"
    server = ServeProcess(full_env, log_path, base)
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
        server.start()
        assert server.rss is not None
        yield Running(base, client, server.rss, broker_rss, log_path, jwt_secret, server)
    finally:
        client.close()
        server.stop()
        if broker_rss is not None:
            localkafka.stop(broker_dir)
