"""End-to-end benchmark: one bulk code-generation operation through the whole system.

Workload: submit one operation of ``--quantity`` codes (default 1,000,000) in batches of
``--batch-size`` over REST to a ``bulkops serve`` process (API + Faust worker + embedded chDB)
on a local single-node Kafka broker; poll status until ``Completed``; then check that every
code is queryable in ClickHouse. Prints items/s end to end, time to first processed item,
status freshness lag (now - lastUpdated as seen by polling clients) percentiles, and the peak
RSS of the Bulkops process and of the broker JVM.

    .venv/bin/python benchmarks/codegen_e2e.py --quantity 1000000 --batch-size 1000
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psutil
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

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


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quantity", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--bootstrap", help="use this running broker instead of starting one")
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    console = Console()

    workdir = Path(tempfile.mkdtemp(prefix="bulkops-bench-"))
    broker_dir = workdir / "kafka"
    bootstrap = args.bootstrap or localkafka.start(broker_dir).bootstrap
    broker_rss: PeakRss | None = None
    if not args.bootstrap:
        broker_rss = PeakRss(int((broker_dir / "broker.pid").read_text()))
        broker_rss.start()

    port = localkafka.free_port()
    jwt_secret = secrets.token_urlsafe(48)
    env = {
        **os.environ,
        "BULKOPS_ENV": "test",
        "BULKOPS_KAFKA_BOOTSTRAP": bootstrap,
        "BULKOPS_TOPIC_PREFIX": f"bench{uuid.uuid4().hex[:8]}",
        "BULKOPS_PARTITIONS": str(args.partitions),
        "BULKOPS_CHDB_PATH": str(workdir / "chdb"),
        "BULKOPS_PORT": str(port),
        "BULKOPS_JWT_SECRET": jwt_secret,
        "BULKOPS_CODE_SECRET": secrets.token_urlsafe(48),
        "BULKOPS_SMS_AUTH_TOKEN": secrets.token_urlsafe(16),
        "BULKOPS_WHATSAPP_TOKEN": secrets.token_urlsafe(16),
        "BULKOPS_MAX_ITEMS_PER_OPERATION": str(max(args.quantity, 5000)),
        "BULKOPS_LOG_LEVEL": "WARNING",
    }
    log_path = workdir / "server.log"
    with log_path.open("ab") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "bulkops.cli", "serve"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server_rss = PeakRss(server.pid)
    server_rss.start()
    base = f"http://127.0.0.1:{port}"
    token = mint_token(
        jwt_secret, subject="bench", role=Role.SPONSOR, sponsor_id=42, ttl=timedelta(hours=2)
    )
    client = httpx.Client(
        base_url=f"{base}/api/v1/bulk-operations",
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
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
                console.print(log_path.read_text()[-3000:])
                return 1
            time.sleep(0.2)

        body = {
            "operationName": "benchmark",
            "subscriptionTierId": 4,
            "quantity": args.quantity,
            "codePrefix": "BENCH",
            "processing": {"batchSize": args.batch_size},
        }
        submitted = time.monotonic()
        response = client.post("/generate-codes", json=body)
        response.raise_for_status()
        accepted_after = time.monotonic() - submitted
        operation_id = response.json()["data"]["operationId"]

        first_processed: float | None = None
        lags: list[float] = []
        status: dict = {}
        with Progress(
            TextColumn("[bold]codes"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            task = progress.add_task("codes", total=args.quantity)
            while time.monotonic() - submitted < args.timeout:
                status = client.get(f"/status/{operation_id}").json()["data"]
                now = datetime.now(UTC)
                processed = status["metrics"]["processedItems"]
                if status["status"] == "Processing":
                    lags.append(
                        (now - datetime.fromisoformat(status["lastUpdated"])).total_seconds()
                    )
                if processed and first_processed is None:
                    first_processed = time.monotonic() - submitted
                progress.update(task, completed=processed)
                if status["status"] in ("Completed", "Failed", "PartiallyCompleted", "Cancelled"):
                    break
                time.sleep(0.05)
        completed = time.monotonic() - submitted
        codes = client.get(f"/codes/{operation_id}", params={"limit": 1}).json()["data"]
        queryable = time.monotonic() - submitted

        table = Table(
            title=f"bulk code generation, {args.quantity:,} codes, batchSize {args.batch_size}"
        )
        table.add_column("metric")
        table.add_column("value", justify="right")
        table.add_row("final status", status.get("status", "?"))
        table.add_row("202 Accepted after", f"{accepted_after * 1000:.0f} ms")
        table.add_row("time to first processed item", f"{(first_processed or 0):.2f} s")
        table.add_row("submit -> Completed", f"{completed:.2f} s")
        table.add_row("end-to-end throughput", f"{args.quantity / completed:,.0f} codes/s")
        table.add_row(
            "codes queryable in ClickHouse",
            f"{codes['totalCodes']:,} ({codes['uniqueCodes']:,} unique)",
        )
        table.add_row("submit -> rows checked", f"{queryable:.2f} s")
        if lags:
            table.add_row(
                "status freshness lag p50 / p99 / max",
                f"{statistics.median(lags):.2f} / {percentile(lags, 0.99):.2f} / {max(lags):.2f} s",
            )
        table.add_row("peak RSS bulkops (API+worker+chDB)", f"{server_rss.peak / 2**20:,.0f} MiB")
        if broker_rss:
            table.add_row("peak RSS Kafka broker (JVM)", f"{broker_rss.peak / 2**20:,.0f} MiB")
        console.print(table)
        ok = status.get("status") == "Completed" and codes["uniqueCodes"] == args.quantity
        return 0 if ok else 1
    finally:
        client.close()
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        server_rss.stopped.set()
        if not args.bootstrap:
            localkafka.stop(broker_dir)


if __name__ == "__main__":
    raise SystemExit(main())
