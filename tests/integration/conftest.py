"""Integration fixtures: a real Kafka broker for the session, and Bulkops server processes.

Each test gets its own topic prefix (so its own topics, consumer group and table changelogs)
and its own chDB data directory: no test sees another's data, in any order.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from analytics.store import AnalyticsStore
from analytics.synthetic import SyntheticHistory
from api.auth import Role, mint_token
from bulkops import localkafka
from bulkops.simulator import ProviderSimulator, SimulatorThread
from core.topics import Topics
from tests.support import wait_for

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The broker of BULKOPS_TEST_KAFKA_BOOTSTRAP, or one started (and stopped) for this session."""
    external = os.environ.get("BULKOPS_TEST_KAFKA_BOOTSTRAP")
    if external:
        yield external
        return
    data_dir = tmp_path_factory.mktemp("kafka")
    broker = localkafka.start(data_dir)
    try:
        yield broker.bootstrap
    finally:
        localkafka.stop(data_dir)


@pytest.fixture(scope="session")
def chdb_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The one chDB data directory of this test process (chDB allows one per process): tests
    that open a store here use a database of their own."""
    return tmp_path_factory.mktemp("chdb-store")


@contextmanager
def store_with_history(chdb_dir: Path, history: SyntheticHistory) -> Iterator[AnalyticsStore]:
    """A store in a database of its own on ``chdb_dir``, holding ``history``; dropped after."""
    opened = AnalyticsStore.open(
        dsn=None, chdb_path=chdb_dir, database=f"t_{uuid.uuid4().hex[:12]}"
    )
    history.write(opened.connection)
    try:
        yield opened
    finally:
        opened.drop_database()
        opened.close()


@dataclass
class Server:
    """One ``bulkops serve`` process (API + worker + embedded ClickHouse), or with
    ``command`` another deployable (``api`` or ``worker`` against a ClickHouse server)."""

    env: dict[str, str]
    log_path: Path
    port: int
    command: str = "serve"
    process: subprocess.Popen[bytes] | None = None
    jwt_secret: str = ""
    _clients: list[httpx.Client] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def topics(self) -> Topics:
        return Topics(self.env["BULKOPS_TOPIC_PREFIX"])

    @property
    def chdb_path(self) -> Path:
        return Path(self.env["BULKOPS_CHDB_PATH"])

    def start(self, timeout: float = 90.0, *, ready_when_logged: str | None = None) -> Server:
        """Start and wait until ready: the status view caught up, or (a worker, which has no
        HTTP side) once ``ready_when_logged`` appears in its log."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bulkops.cli", self.command],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

        def ready() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"server exited early:\n{self.log_tail()}")
            if ready_when_logged is not None:
                return ready_when_logged in self.log_path.read_text(errors="replace")
            try:
                body = httpx.get(f"{self.base_url}/healthz", timeout=1).json()
            except httpx.HTTPError:
                return False
            return bool(body.get("statusViewReady"))

        wait_for(ready, timeout=timeout, interval=0.2, message="server ready")
        return self

    def stop(self, *, kill: bool = False, timeout: float = 30.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGKILL if kill else signal.SIGINT)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def token(
        self, sponsor_id: int | None = 7, role: Role = Role.SPONSOR, ttl: float = 3600
    ) -> str:
        return mint_token(
            self.jwt_secret,
            subject=f"user_{sponsor_id or 'admin'}",
            role=role,
            sponsor_id=sponsor_id,
            ttl=timedelta(seconds=ttl),
        )

    def client(self, sponsor_id: int | None = 7, role: Role = Role.SPONSOR) -> httpx.Client:
        client = httpx.Client(
            base_url=f"{self.base_url}/api/v1/bulk-operations",
            headers={"Authorization": f"Bearer {self.token(sponsor_id, role)}"},
            timeout=30,
        )
        self._clients.append(client)
        return client

    def close_clients(self) -> None:
        for client in self._clients:
            client.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[localkafka.Broker]:
    """A broker of the test's own, for tests that stop or kill it. Ask for it before
    ``make_server``, so it is torn down after the servers that use it."""
    data_dir = tmp_path / "kafka"
    broker = localkafka.start(data_dir)
    try:
        yield broker
    finally:
        localkafka.stop(data_dir, timeout=5)  # a throwaway broker: no need to wait it out


@pytest.fixture
def make_server(
    kafka_bootstrap: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Any]:
    """Build (not start) a server with a fresh topic prefix and chDB directory."""
    servers: list[Server] = []

    def make(command: str = "serve", **overrides: str) -> Server:
        prefix = f"t{uuid.uuid4().hex[:12]}"
        port = localkafka.free_port()
        env = {
            **os.environ,
            "BULKOPS_ENV": "test",
            "BULKOPS_KAFKA_BOOTSTRAP": kafka_bootstrap,
            "BULKOPS_TOPIC_PREFIX": prefix,
            "BULKOPS_PARTITIONS": "4",
            "BULKOPS_CHDB_PATH": str(tmp_path / f"chdb-{prefix}"),
            "BULKOPS_WORKER_DATA_DIR": str(tmp_path / f"worker-{prefix}"),
            "BULKOPS_PORT": str(port),
            "BULKOPS_JWT_SECRET": secrets.token_urlsafe(48),
            "BULKOPS_CODE_SECRET": secrets.token_urlsafe(48),
            "BULKOPS_WEBHOOK_SECRET": secrets.token_urlsafe(48),
            "BULKOPS_SMS_AUTH_TOKEN": secrets.token_urlsafe(16),
            "BULKOPS_WHATSAPP_TOKEN": secrets.token_urlsafe(16),
            "BULKOPS_LOG_LEVEL": "INFO",
            "BULKOPS_METRICS_PORT": str(localkafka.free_port()),  # a worker on its own
            # The seed's quotas would refuse most tests' operations: test_quotas.py sets them.
            "BULKOPS_QUOTA_MAX_CONCURRENT_OPERATIONS": "0",
            "BULKOPS_QUOTA_MAX_OPERATIONS_PER_DAY": "0",
            "BULKOPS_QUOTA_MAX_ITEMS_PER_DAY": "0",
            **overrides,
        }
        server = Server(
            env=env,
            log_path=tmp_path / f"{command}-{prefix}.log",
            port=port,
            command=command,
            jwt_secret=env["BULKOPS_JWT_SECRET"],
        )
        servers.append(server)
        return server

    yield make
    failed = getattr(request.node, "report_call", None)
    for server in servers:
        server.close_clients()
        server.stop()
        if failed is not None and failed.failed:  # the server's side of the story, for CI logs
            lines = [
                line
                for line in server.log_path.read_text(errors="replace").splitlines()
                if "GET /api" not in line and not line.startswith("|")
            ]
            print(f"--- {server.log_path.name} (last 120 lines)\n" + "\n".join(lines[-120:]))


@pytest.fixture
def server(make_server: Any) -> Server:
    """A started server with default settings."""
    return make_server().start()


@pytest.fixture
def simulator() -> Iterator[SimulatorThread]:
    """The provider simulator on free loopback ports, with a fresh ledger."""
    thread = SimulatorThread(
        ProviderSimulator(), http_port=localkafka.free_port(), smtp_port=localkafka.free_port()
    ).start()
    try:
        yield thread
    finally:
        thread.stop()


def provider_env(simulator: SimulatorThread, **rates: float) -> dict[str, str]:
    """Server settings that point every channel at ``simulator``."""
    env = {
        "BULKOPS_SMS_API_URL": simulator.http_url,
        "BULKOPS_WHATSAPP_API_URL": simulator.http_url,
        "BULKOPS_SMTP_HOST": simulator.host,
        "BULKOPS_SMTP_PORT": str(simulator.smtp_port),
        "BULKOPS_MAX_ITEMS_PER_OPERATION": "200000",
    }
    for name, value in rates.items():
        env[f"BULKOPS_{name.upper()}"] = str(value)
    return env


def probe_every_code_once(
    server: Server, operation_id: str, sponsor_id: int, quantity: int
) -> dict[str, int]:
    """Stop ``server`` and check in its chDB directory that each of the ``quantity`` codes
    was stored once, as a successful item; returns the counts for further checks."""
    server.stop()
    probe = run_probe(server.chdb_path, operation_id, sponsor_id)
    assert probe["code_items"] == probe["unique_codes"] == probe["success_items"] == quantity
    assert probe["duplicate_codes"] == 0
    return probe


def run_probe(chdb_path: Path, operation_id: str, sponsor_id: int) -> dict[str, int]:
    """Count rows straight from a stopped server's chDB directory, in a separate process."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.integration.chdb_probe",
            str(chdb_path),
            operation_id,
            str(sponsor_id),
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    import json

    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


class Receiver:
    """A webhook endpoint on loopback that answers from a script and keeps what it got."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.failures_left: dict[str, int] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                event = self.headers["X-Bulkops-Event"]
                receiver.received.append(
                    {
                        "event": event,
                        "body": body,
                        "timestamp": self.headers["X-Bulkops-Timestamp"],
                        "signature": self.headers["X-Bulkops-Signature"],
                        "delivery": self.headers["X-Bulkops-Delivery"],
                    }
                )
                left = receiver.failures_left.get(event, 0)
                receiver.failures_left[event] = max(0, left - 1)
                self.send_response(500 if left else 204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/bulk"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver; set ``failures_left`` to have it answer 500 first."""
    r = Receiver()
    r.thread.start()
    try:
        yield r
    finally:
        r.server.shutdown()
        r.server.server_close()
