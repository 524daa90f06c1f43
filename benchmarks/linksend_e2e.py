"""End-to-end benchmark: bulk link sends against the provider simulator.

Workload: one send-links operation of ``--recipients`` SMS recipients (default 100,000; the
request is ~20 MB of JSON and goes to Kafka in <1 MB chunks) through a ``bulkops serve``
process (API + worker + embedded chDB) on a local Kafka broker, to the simulator's SMS API
over real HTTP on 127.0.0.1. Two runs:

1. unthrottled: sends/s end to end (submit -> Completed) and delivery latency percentiles
   (time from submit until the simulator accepted each message);
2. paced: simulator and worker both at ``--rate`` sends/s: achieved rate as a share of the
   limit, and how many requests the simulator refused with 429 (over-limit sends).

    .venv/bin/python benchmarks/linksend_e2e.py --recipients 100000 --rate 500 \\
        --paced-recipients 10000
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from harness import bulkops_system, percentile
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bulkops.localkafka import free_port
from bulkops.simulator import ProviderSimulator, SimulatorConfig, SimulatorThread

TERMINAL = ("Completed", "Failed", "PartiallyCompleted", "Cancelled")


def request_body(n: int) -> dict[str, Any]:
    return {
        "operationName": "benchmark campaign",
        "recipients": [
            {
                "name": f"Çiftçi {i}",
                "phoneNumber": f"+90532{i:07d}",
                "personalizationData": {"region": "Antalya", "cropType": "domates"},
            }
            for i in range(n)
        ],
        "messageTemplate": (
            "Merhaba {name}! {region} {cropType} üreticilerine özel sponsorluk: {link}"
        ),
        "channel": "SMS",
        "processing": {
            "batchSize": 500,
            "maxConcurrency": 100,
            "retryAttempts": 2,
            "retryDelaySeconds": 1,
        },
    }


def run(console: Console, n: int, rate: float | None, partitions: int) -> dict[str, Any]:
    simulator = ProviderSimulator(SimulatorConfig(rate_per_second=rate or 0))
    sim = SimulatorThread(simulator, http_port=free_port(), smtp_port=free_port()).start()
    sender_rate = rate or 1_000_000
    env = {
        "BULKOPS_SMS_API_URL": sim.http_url,
        "BULKOPS_SENDER_RATE_SMS": str(sender_rate),
        "BULKOPS_SPONSOR_RATE_PER_SECOND": str(sender_rate),
        "BULKOPS_MAX_ITEMS_PER_OPERATION": str(max(n, 5000)),
    }
    try:
        with bulkops_system(partitions=partitions, env=env) as system:
            body = request_body(n)
            submitted_wall = time.time()
            submitted = time.monotonic()
            response = system.client.post("/send-links", json=body)
            response.raise_for_status()
            accepted_after = time.monotonic() - submitted
            operation_id = response.json()["data"]["operationId"]
            status: dict[str, Any] = {}
            with Progress(
                TextColumn("[bold]sends"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
            ) as progress:
                task = progress.add_task("sends", total=n)
                while time.monotonic() - submitted < 1800:
                    status = system.client.get(f"/status/{operation_id}").json()["data"]
                    progress.update(task, completed=status["metrics"]["processedItems"])
                    if status["status"] in TERMINAL:
                        break
                    time.sleep(0.1)
            elapsed = time.monotonic() - submitted
            entries = simulator.entries("SMS")
            stamps = sorted(e["accepted_at"] for e in entries)
            summary = simulator.summary()
            return {
                "status": status.get("status"),
                "accepted_after": accepted_after,
                "elapsed": elapsed,
                "delivered": len(entries),
                "unique": len({e["key"] for e in entries}),
                "latencies": [t - submitted_wall for t in stamps],
                "send_rate": (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else 0,
                "rate_limited": summary["rateLimited"],
                "server_rss": system.server_rss.peak,
                "broker_rss": system.broker_rss.peak if system.broker_rss else 0,
            }
    finally:
        sim.stop()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--paced-recipients", type=int, default=10_000)
    parser.add_argument("--partitions", type=int, default=8)
    args = parser.parse_args()
    console = Console()

    free = run(console, args.recipients, None, args.partitions)
    table = Table(title=f"send-links, {args.recipients:,} SMS recipients, simulator unthrottled")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("final status", str(free["status"]))
    table.add_row(
        "202 Accepted after (validate + chunk + produce)", f"{free['accepted_after']:.2f} s"
    )
    table.add_row("submit -> Completed", f"{free['elapsed']:.2f} s")
    table.add_row("end-to-end sends/s", f"{args.recipients / free['elapsed']:,.0f}")
    table.add_row("delivered / unique in ledger", f"{free['delivered']:,} / {free['unique']:,}")
    lat = free["latencies"]
    table.add_row(
        "delivery latency from submit p50 / p99",
        f"{percentile(lat, 0.5):.2f} / {percentile(lat, 0.99):.2f} s",
    )
    table.add_row("peak RSS bulkops (API+worker+chDB)", f"{free['server_rss'] / 2**20:,.0f} MiB")
    table.add_row("peak RSS Kafka broker (JVM)", f"{free['broker_rss'] / 2**20:,.0f} MiB")
    console.print(table)

    paced = run(console, args.paced_recipients, args.rate, args.partitions)
    table = Table(
        title=f"send-links, {args.paced_recipients:,} SMS recipients, limit {args.rate:.0f}/s"
    )
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("final status", str(paced["status"]))
    table.add_row("achieved send rate", f"{paced['send_rate']:.1f}/s")
    table.add_row("share of the limit", f"{paced['send_rate'] / args.rate * 100:.1f} %")
    table.add_row("over-limit sends (429 from simulator)", str(paced["rate_limited"]))
    table.add_row("delivered / unique in ledger", f"{paced['delivered']:,} / {paced['unique']:,}")
    console.print(table)
    ok = free["unique"] == args.recipients and paced["unique"] == args.paced_recipients
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
