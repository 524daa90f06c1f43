"""``GET /statistics`` latency over a large history.

Workload: ``--items`` items (default 10,000,000) of finished operations (sizes cycling
through ``--sizes``) over ``--sponsors`` sponsors and the last 30 days, written by
ClickHouse itself (:mod:`analytics.synthetic`) into a fresh embedded chDB directory; then a
``bulkops serve`` process on that directory and a local broker answers ``--requests``
sequential ``/statistics`` calls per caller: one sponsor (its own figures) and an Admin
(every sponsor). Prints the fill time, latency percentiles per caller and the server's peak
RSS.

    .venv/bin/python benchmarks/statistics_latency.py --items 10000000 --sizes 10
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from harness import bulkops_system, percentile
from rich.console import Console
from rich.table import Table

from analytics.store import AnalyticsStore
from analytics.synthetic import SyntheticHistory


def fill(
    chdb_path: Path, items: int, sponsors: int, sizes: tuple[int, ...]
) -> tuple[int, int, float]:
    started = time.perf_counter()
    store = AnalyticsStore.open(dsn=None, chdb_path=chdb_path, database="bulkops")
    history = SyntheticHistory.of_items(
        items, sizes=sizes, sponsors=sponsors, since=datetime.now(UTC) - timedelta(days=30)
    )
    history.write(store.connection)
    stored = int(store.connection.query("SELECT count() FROM items", {})[0][0])
    store.close()
    return history.operations, stored, time.perf_counter() - started


def measure(client: httpx.Client, requests: int) -> list[float]:
    deadline = time.monotonic() + 120
    while not client.get("/statistics").json()["data"]["total_operations"]:
        if time.monotonic() > deadline:
            raise RuntimeError("the statistics rollup was not refreshed within 120 s")
        time.sleep(0.5)
    latencies = []
    for _ in range(requests):
        started = time.perf_counter()
        client.get("/statistics").raise_for_status()
        latencies.append(time.perf_counter() - started)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=10_000_000)
    parser.add_argument("--sponsors", type=int, default=50)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument(
        "--sizes",
        default="10,100,1000,5000",
        help="operation sizes, cycled (10 gives 1,000,000 operations for 10,000,000 items)",
    )
    args = parser.parse_args()
    console = Console()
    workdir = Path(tempfile.mkdtemp(prefix="bulkops-stats-"))
    with console.status(f"storing {args.items:,} synthetic items"):
        sizes = tuple(int(size) for size in args.sizes.split(","))
        operations, stored, seconds = fill(workdir / "chdb", args.items, args.sponsors, sizes)
    console.print(
        f"stored {operations:,} operations, {stored:,} items in {seconds:.1f} s "
        f"({stored / seconds:,.0f} items/s)"
    )
    env = {"BULKOPS_CHDB_PATH": str(workdir / "chdb")}
    table = Table(title=f"GET /statistics, {operations:,} operations, {stored:,} items")
    for column in ("caller", "p50 ms", "p95 ms", "p99 ms", "max ms"):
        table.add_column(column, justify="right")
    with bulkops_system(partitions=2, env=env, sponsor_id=1) as system:
        admin = system.admin_token()
        callers = {
            "sponsor 1": system.client,
            "admin (all)": httpx.Client(
                base_url=f"{system.base_url}/api/v1/bulk-operations",
                headers={"Authorization": f"Bearer {admin}"},
                timeout=120,
            ),
        }
        for name, client in callers.items():
            with console.status(f"measuring {name}"):
                ms = [s * 1000 for s in measure(client, args.requests)]
            table.add_row(
                name,
                *(f"{percentile(ms, q):.1f}" for q in (0.5, 0.95, 0.99)),
                f"{max(ms):.1f}",
            )
        peak = system.server_rss.peak
    console.print(table)
    console.print(f"server peak RSS {peak / 2**20:,.0f} MiB")


if __name__ == "__main__":
    main()
