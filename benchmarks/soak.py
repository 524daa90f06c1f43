"""Soak: many small operations through one process, for memory that stays flat and a fast
restart.

Workload: ``--operations`` (20,000) operations of 10 to 100 items each, alternately code
generations and SMS link sends (to the provider simulator), from ``--sponsors`` (20) sponsors;
``--in-flight`` (32) submitters each submit one, follow its status until it ends, then submit
the next. One ``bulkops serve`` process (API + worker + embedded chDB) on a local broker,
finished operations retained ``--retention`` seconds (compressed time: production keeps them
an hour) before they are archived and evicted.

Prints: operations/s; the server's RSS after the warm-up (the first ``--warmup`` operations),
at the end and its peak after the warm-up; status latency at ``--rate`` requests/s (open
loop, ``--settle`` seconds after the soak) for running operations (link sends spread over
minutes, served from the live view) and for old ones (archived, served from ClickHouse), sent
by ``benchmarks/loadgen.py`` in a process of its own; and the restart: from the process start
until the status view caught up, until ``/readyz`` (the worker holds its partitions) and until
a new operation completed.

    .venv/bin/python benchmarks/soak.py                        # the issue's figures
    .venv/bin/python benchmarks/soak.py --operations 6000 --no-eviction --table-store memory
"""

from __future__ import annotations

import argparse
import itertools
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
import loadgen
from harness import Running, bulkops_system, percentile
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bulkops.localkafka import free_port
from bulkops.simulator import ProviderSimulator, SimulatorConfig, SimulatorThread

TERMINAL = {"Completed", "Failed", "Cancelled", "PartiallyCompleted"}
MIB = 2**20


def codes_body(size: int) -> dict[str, Any]:
    return {
        "operationName": f"soak {size} codes",
        "subscriptionTierId": 1 + size % 4,
        "quantity": size,
        "processing": {"batchSize": 50},
    }


def sends_body(size: int, offset: int, spread_minutes: float | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "operationName": f"soak {size} SMS",
        "recipients": [
            {
                "name": f"Kişi {offset + i}",
                "phoneNumber": f"+90532{(offset + i) % 10_000_000:07d}",
                "personalizationData": {"region": "Antalya"},
            }
            for i in range(size)
        ],
        "messageTemplate": "Merhaba {name}! {region} için: {link}",
        "channel": "SMS",
        "processing": {"batchSize": 10 if spread_minutes else 50, "retryDelaySeconds": 0},
    }
    if spread_minutes:
        body["scheduling"] = {"spreadOverTime": True, "spreadDurationMinutes": spread_minutes}
    return body


@dataclass
class Soak:
    system: Running
    sponsors: int
    operations: int
    done: int = 0
    finished: list[tuple[float, str]] = field(default_factory=list)  # (when, operation id)
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run_one(self, client: httpx.Client, index: int) -> None:
        size = 10 + (index * 37) % 91
        if index % 2:
            response = client.post("/send-links", json=sends_body(size, index * 100))
        else:
            response = client.post("/generate-codes", json=codes_body(size))
        if response.status_code != 202:
            with self.lock:
                self.failures.append(f"{index}: {response.status_code} {response.text[:200]}")
            return
        operation_id = response.json()["data"]["operationId"]
        while True:
            status = client.get(f"/status/{operation_id}")
            if status.is_success and status.json()["data"]["status"] in TERMINAL:
                break
            time.sleep(0.5)
        with self.lock:
            self.done += 1
            self.finished.append((time.monotonic(), operation_id))

    def submitter(self, counter: itertools.count[int]) -> None:
        clients = {s: self.system.client_for(s) for s in range(1, self.sponsors + 1)}
        try:
            while (index := next(counter)) < self.operations:
                self.run_one(clients[1 + index % self.sponsors], index)
        finally:
            for client in clients.values():
                client.close()


def soak(console: Console, system: Running, args: argparse.Namespace) -> dict[str, Any]:
    state = Soak(system, args.sponsors, args.operations)
    counter = itertools.count()
    samples: list[tuple[int, int]] = []  # (operations done, RSS)
    started = time.monotonic()
    with (
        ThreadPoolExecutor(args.in_flight) as pool,
        Progress(
            TextColumn("[bold]operations"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[rss]}"),
            console=console,
        ) as progress,
    ):
        task = progress.add_task("ops", total=args.operations, rss="")
        futures = [pool.submit(state.submitter, counter) for _ in range(args.in_flight)]
        while not all(f.done() for f in futures):
            rss = system.server.rss.latest if system.server.rss else 0
            samples.append((state.done, rss))
            progress.update(task, completed=state.done, rss=f"RSS {rss / MIB:,.0f} MiB")
            time.sleep(1)
        for future in futures:
            future.result()
    elapsed = time.monotonic() - started
    after_warmup = [rss for done, rss in samples if done >= args.warmup]
    return {
        "elapsed": elapsed,
        "state": state,
        "rss_warm": after_warmup[0] if after_warmup else 0,
        "rss_end": samples[-1][1],
        "rss_peak_after_warmup": max(after_warmup, default=0),
    }


def running_sends(system: Running, sponsor: int, count: int) -> list[str]:
    """Link sends spread over five minutes: Processing for the whole measurement."""
    client = system.client_for(sponsor)
    ids = []
    for i in range(count):
        response = client.post("/send-links", json=sends_body(100, 10_000_000 + i * 100, 5))
        response.raise_for_status()
        ids.append(response.json()["data"]["operationId"])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        statuses = [client.get(f"/status/{i}").json()["data"]["status"] for i in ids]
        if all(s == "Processing" for s in statuses):
            break
        time.sleep(0.5)
    client.close()
    return ids


def restart(system: Running) -> dict[str, float]:
    """Stop the server, start it again on the same data: seconds from the process start until
    the API's view caught up, until ``/readyz`` (the worker holds its partitions), and until a
    new operation submitted then completed."""
    system.server.stop()
    api_ready = system.server.start()
    started = time.monotonic() - api_ready
    while httpx.get(f"{system.base_url}/readyz", timeout=5).status_code != 200:
        time.sleep(0.05)
    ready = time.monotonic() - started
    response = system.client.post("/generate-codes", json=codes_body(10))
    response.raise_for_status()
    operation_id = response.json()["data"]["operationId"]
    while system.client.get(f"/status/{operation_id}").json()["data"]["status"] not in TERMINAL:
        time.sleep(0.05)
    return {"api_ready": api_ready, "ready": ready, "first_done": time.monotonic() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--operations", type=int, default=20_000)
    parser.add_argument("--sponsors", type=int, default=20)
    parser.add_argument("--in-flight", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=2_000)
    parser.add_argument("--retention", type=float, default=60.0)
    parser.add_argument("--no-eviction", action="store_true", help="retention of 30 days")
    parser.add_argument("--table-store", choices=["rocksdb", "memory"], default="rocksdb")
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--status-seconds", type=float, default=10.0)
    parser.add_argument("--settle", type=float, default=30.0, help="seconds before measuring")
    args = parser.parse_args()
    console = Console()
    retention = 30 * 86_400 if args.no_eviction else args.retention
    simulator = ProviderSimulator(SimulatorConfig(rate_per_second=0))
    sim = SimulatorThread(simulator, http_port=free_port(), smtp_port=free_port()).start()
    env = {
        "BULKOPS_SMS_API_URL": sim.http_url,
        "BULKOPS_SENDER_RATE_SMS": "100000",
        "BULKOPS_SPONSOR_RATE_PER_SECOND": "100000",
        "BULKOPS_FINISHED_RETENTION_SECONDS": str(retention),
        "BULKOPS_EVICTION_INTERVAL_SECONDS": "5",
        "BULKOPS_TABLE_STORE": args.table_store,
        "BULKOPS_INSTANCE_ID": "soak",
    }
    try:
        with bulkops_system(partitions=4, env=env) as system:
            result = soak(console, system, args)
            state: Soak = result["state"]
            running = running_sends(system, 1, 20)
            time.sleep(args.settle)  # the soak's last evictions and ClickHouse merges
            cutoff = time.monotonic() - retention - 2 * 5  # evicted by now (5-s ticks)
            old = [op for when, op in state.finished if when < cutoff][: args.operations // 2]
            admin = system.admin_token()
            latency = {
                name: (
                    len(ids),
                    loadgen.run(
                        system.base_url,
                        admin,
                        [f"/api/v1/bulk-operations/status/{i}" for i in ids],
                        args.rate,
                        args.status_seconds,
                    ),
                )
                for name, ids in (("running (live view)", running), ("old (archive)", old))
                if ids
            }
            rss_before_restart = system.server.rss.latest if system.server.rss else 0
            timings = restart(system)
    finally:
        sim.stop()
    report(console, args, retention, result, latency, timings, rss_before_restart)


def report(
    console: Console,
    args: argparse.Namespace,
    retention: float,
    result: dict[str, Any],
    latency: dict[str, tuple[int, loadgen.LoadResult]],
    timings: dict[str, float],
    rss_before_restart: int,
) -> None:
    state: Soak = result["state"]
    console.print(
        f"{state.done:,} operations in {result['elapsed']:.0f} s "
        f"({state.done / result['elapsed']:,.1f}/s), {len(state.failures)} refused; "
        f"store {args.table_store}, retention {retention:,.0f} s"
    )
    for failure in state.failures[:5]:
        console.print(f"  refused: {failure}")
    memory = Table(title="server RSS (API + worker + chDB, one process)")
    for column in ("after warm-up", "end", "peak after warm-up", "growth"):
        memory.add_column(column, justify="right")
    warm, end, peak = result["rss_warm"], result["rss_end"], result["rss_peak_after_warmup"]
    memory.add_row(
        f"{warm / MIB:,.0f} MiB",
        f"{end / MIB:,.0f} MiB",
        f"{peak / MIB:,.0f} MiB",
        f"{(end - warm) / MIB:+,.0f} MiB",
    )
    console.print(memory)
    status = Table(title=f"GET /status at {args.rate:,.0f}/s for {args.status_seconds:.0f} s")
    for column in ("operations", "ids", "achieved/s", "errors", "p50 ms", "p99 ms", "max ms"):
        status.add_column(column, justify="right")
    for name, (ids, load) in latency.items():
        ms = load.latencies_ms
        status.add_row(
            name,
            f"{ids:,}",
            f"{load.achieved_per_second:,.0f}",
            str(load.errors),
            f"{percentile(ms, 0.5):.1f}",
            f"{percentile(ms, 0.99):.1f}",
            f"{max(ms):.1f}",
        )
    console.print(status)
    console.print(
        f"restart after {state.done:,} operations (RSS before {rss_before_restart / MIB:,.0f} "
        f"MiB): status view caught up {timings['api_ready']:.1f} s, /readyz "
        f"{timings['ready']:.1f} s, first new operation completed "
        f"{timings['first_done']:.1f} s after the process started"
    )


if __name__ == "__main__":
    main()
