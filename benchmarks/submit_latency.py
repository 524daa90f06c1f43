"""Submit latency with and without the worker's quota verdict, replays and dry runs.

Workload: a ``bulkops serve`` process (API + worker + embedded chDB) on a local broker.
``--submits`` generate-codes requests of 10 codes each, ``--parallel`` at a time, spread over
``--sponsors`` sponsors, each with an ``Idempotency-Key``; first with quotas off (the API
answers once Kafka has the request), then on a fresh system with quotas on but high enough to
admit everything (the API also waits for the worker's verdict). Then every request again
with its key (replays, answered from ClickHouse) and as many dry runs. Prints submits/s and
latency percentiles for each, and the peak RSS of the server.

    .venv/bin/python benchmarks/submit_latency.py --submits 600 --parallel 8
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
from harness import Running, bulkops_system, percentile
from rich.console import Console
from rich.table import Table

BODY = {"subscriptionTierId": 1, "quantity": 10, "processing": {"batchSize": 10}}
QUOTAS_ON = {
    "BULKOPS_QUOTA_MAX_CONCURRENT_OPERATIONS": "100000",
    "BULKOPS_QUOTA_MAX_OPERATIONS_PER_DAY": "10000000",
    "BULKOPS_QUOTA_MAX_ITEMS_PER_DAY": "1000000000",
}


def timed(
    clients: list[httpx.Client], count: int, parallel: int, send: Callable[[httpx.Client, int], int]
) -> tuple[float, list[float]]:
    """(seconds for all, per-request seconds); every answer must be the expected one."""

    def one(n: int) -> float:
        started = time.perf_counter()
        status = send(clients[n % len(clients)], n)
        if status not in (200, 202):
            raise RuntimeError(f"request {n} answered {status}")
        return time.perf_counter() - started

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        latencies = list(pool.map(one, range(count)))
    return time.perf_counter() - started, latencies


def run(system: Running, args: argparse.Namespace) -> dict[str, tuple[float, list[float]]]:
    clients = [system.client_for(100 + s) for s in range(args.sponsors)]

    def submit(client: httpx.Client, n: int) -> int:
        return client.post(
            "/generate-codes", json=BODY, headers={"Idempotency-Key": f"k{n}"}
        ).status_code

    def dry(client: httpx.Client, n: int) -> int:
        return client.post("/generate-codes", params={"dryRun": "true"}, json=BODY).status_code

    try:
        results = {"submit": timed(clients, args.submits, args.parallel, submit)}
        if not args.no_keys:
            results["replay"] = timed(clients, args.submits, args.parallel, submit)
        results["dry run"] = timed(clients, args.submits, args.parallel, dry)
        return results
    finally:
        for client in clients:
            client.close()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--submits", type=int, default=600)
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--sponsors", type=int, default=20)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--no-keys", action="store_true", help="submit without Idempotency-Key")
    parser.add_argument("--bootstrap", help="use this running broker instead of starting one")
    args = parser.parse_args()
    console = Console()
    table = Table(
        title=f"{args.submits} requests, {args.parallel} at a time, {args.sponsors} sponsors"
    )
    for column in ("quotas", "kind", "req/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "peak RSS"):
        table.add_column(column, justify="right")
    for label, env in (("off", {}), ("on", QUOTAS_ON)):
        console.print(f"[bold]quotas {label}[/]: starting a system")
        with bulkops_system(
            partitions=args.partitions, env=env, bootstrap=args.bootstrap
        ) as system:
            results = run(system, args)
            rss = f"{system.server_rss.peak / 2**20:.0f} MiB"
        for kind, (seconds, latencies) in results.items():
            table.add_row(
                label,
                kind,
                f"{len(latencies) / seconds:,.0f}",
                *(f"{percentile(latencies, q) * 1000:.1f}" for q in (0.5, 0.95, 0.99)),
                f"{max(latencies) * 1000:.1f}",
                rss,
            )
    console.print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
