"""End-to-end benchmark: dealer invitations from an Excel upload (issue #5, seed ``001_*``).

Workload: one ``bulkops serve`` process (API + worker + embedded chDB) on a local Kafka
broker and the provider simulator (unthrottled, real HTTP on 127.0.0.1). The sponsor's
inventory is filled with ``generate-codes`` first; then, for each ``--dealers`` size, one
workbook (every dealer with ``--codes`` codes of tier S and an SMS) is uploaded and timed
from the upload until the job is ``Completed``. Seed targets: 10 < 10 s, 100 < 1 min,
500 < 3 min; ours: 2,000 in under 10 s.

    .venv/bin/python benchmarks/dealers_e2e.py --dealers 500 2000
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from harness import bulkops_system
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bulkops.localkafka import free_port
from bulkops.simulator import ProviderSimulator, SimulatorThread
from tests.unit.test_workbook import xlsx

DEALER = "/api/v1/sponsorship/dealer"
RUNNING = ("Pending", "Processing", "Paused")


def workbook_rows(n: int, start: int, codes: int) -> list[list[Any]]:
    return [
        [f"bayi{i}@example.com", f"0532{i:07d}", f"Çiftçi Bayi {i}", codes, "S"]
        for i in range(start, start + n)
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dealers", type=int, nargs="+", default=[500, 2000])
    parser.add_argument("--codes", type=int, default=2, help="codes per dealer")
    parser.add_argument("--partitions", type=int, default=8)
    args = parser.parse_args()
    console = Console()
    simulator = ProviderSimulator()
    sim = SimulatorThread(simulator, http_port=free_port(), smtp_port=free_port()).start()
    env = {
        "BULKOPS_SMS_API_URL": sim.http_url,
        "BULKOPS_SENDER_RATE_SMS": "1000000",
        "BULKOPS_SPONSOR_RATE_PER_SECOND": "1000000",
        "BULKOPS_DEALER_MAX_ROWS": str(max(args.dealers)),
    }
    results: list[dict[str, Any]] = []
    try:
        with bulkops_system(partitions=args.partitions, env=env) as system:
            client = system.client
            needed = sum(args.dealers) * args.codes
            made = client.post(
                "/generate-codes",
                json={
                    "subscriptionTierId": 1,
                    "quantity": needed,
                    "processing": {"batchSize": 1000},
                },
            ).json()["data"]["operationId"]
            while client.get(f"/status/{made}").json()["data"]["status"] != "Completed":
                time.sleep(0.2)
            start = 0
            for n in args.dealers:
                body = xlsx(workbook_rows(n, start, args.codes))
                start += n
                sent_before = len(simulator.entries("SMS"))
                began = time.monotonic()
                response = client.post(
                    f"{system.base_url}{DEALER}/invite-bulk",
                    files={"file": ("dealers.xlsx", body, "application/octet-stream")},
                    data={"useRowSpecificCounts": "true"},
                )
                response.raise_for_status()
                accepted = time.monotonic() - began
                job_id = response.json()["data"]["jobId"]
                job: dict[str, Any] = {}
                with Progress(
                    TextColumn(f"[bold]{n} dealers"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TimeElapsedColumn(),
                    console=console,
                ) as progress:
                    task = progress.add_task("dealers", total=n)
                    while time.monotonic() - began < 600:
                        reply = client.get(f"{system.base_url}{DEALER}/bulk-status/{job_id}")
                        if reply.status_code == 200:
                            job = reply.json()["data"]
                            progress.update(task, completed=job["processedDealers"])
                            if job["status"] not in RUNNING:
                                break
                        time.sleep(0.05)
                elapsed = time.monotonic() - began
                results.append(
                    {
                        "dealers": n,
                        "bytes": len(body),
                        "status": job.get("status"),
                        "accepted": accepted,
                        "elapsed": elapsed,
                        "invited": job.get("successfulInvitations", 0),
                        "sms": len(simulator.entries("SMS")) - sent_before,
                    }
                )
            server_rss, broker_rss = system.server_rss.peak, system.broker_rss
    finally:
        sim.stop()
    table = Table(title=f"dealer invitations from Excel, {args.codes} codes each, SMS on")
    for column in ("dealers", "status", "file", "202 after", "upload->done", "dealers/s", "SMS"):
        table.add_column(column, justify="right")
    for r in results:
        table.add_row(
            f"{r['dealers']:,}",
            str(r["status"]),
            f"{r['bytes'] / 1024:,.0f} KiB",
            f"{r['accepted']:.2f} s",
            f"{r['elapsed']:.2f} s",
            f"{r['dealers'] / r['elapsed']:,.0f}",
            f"{r['sms']:,}",
        )
    console.print(table)
    console.print(
        f"peak RSS bulkops (API+worker+chDB) {server_rss / 2**20:,.0f} MiB, "
        f"broker {broker_rss.peak / 2**20 if broker_rss else 0:,.0f} MiB"
    )
    ok = all(r["status"] == "Completed" and r["invited"] == r["dealers"] for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
