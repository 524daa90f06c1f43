"""Fair turns: how long a small operation takes while a big one runs on the same partition.

Workload: one ``bulkops serve`` process (API + worker + embedded chDB) on a local broker.
First a small code operation (``--small`` codes) alone, ``--runs`` times; then a big one
(``--big`` codes in batches of 1,000) of sponsor 42, and once it has started, the same small
operation ``--runs`` times from a sponsor whose key lands on the **same partition** as 42
and ``--runs`` times from one on **another partition**. Prints submit → Completed latencies
(median and max), how far the big operation had got when each small one finished, and the
big one's codes/s. Set ``--window-items 0`` to see the system without release windows.

Then priorities: two operations of ``--big`` / 5 codes from one sponsor, the first of priority
1 and, once it has done a tenth, the second of priority 9; prints when each completed.

    .venv/bin/python benchmarks/fairness.py --big 300000 --small 100 --runs 3
"""

from __future__ import annotations

import argparse
import statistics
import time

import httpx
from aiokafka.partitioner import DefaultPartitioner
from harness import bulkops_system
from rich.console import Console
from rich.table import Table

BIG_SPONSOR = 42


def partition_of(sponsor_id: int, partitions: int) -> int:
    """The partition the worker and the API put a sponsor's messages on (murmur2)."""
    every = list(range(partitions))
    return int(DefaultPartitioner()(str(sponsor_id).encode(), every, every))


def sponsors(partitions: int) -> tuple[int, int]:
    """A sponsor on the big operation's partition, and one on another."""
    home = partition_of(BIG_SPONSOR, partitions)
    candidates = range(BIG_SPONSOR + 1, BIG_SPONSOR + 10_000)
    near = next(s for s in candidates if partition_of(s, partitions) == home)
    far = next(s for s in candidates if partition_of(s, partitions) != home)
    return near, far


def status(client: httpx.Client, operation_id: str) -> dict[str, object]:
    response = client.get(f"/status/{operation_id}")
    return dict(response.json()["data"]) if response.status_code == 200 else {}


def start(client: httpx.Client, quantity: int, tier: int = 1, priority: int = 5) -> str:
    response = client.post(
        "/generate-codes",
        json={
            "subscriptionTierId": tier,
            "quantity": quantity,
            "processing": {"batchSize": min(1000, quantity)},
            "priority": priority,
        },
    )
    response.raise_for_status()
    return str(response.json()["data"]["operationId"])


def wait_completed(client: httpx.Client, operation_id: str, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while status(client, operation_id).get("status") != "Completed":
        if time.monotonic() > deadline:
            raise TimeoutError(operation_id)
        time.sleep(0.01)


def run_to_end(client: httpx.Client, quantity: int) -> tuple[str, float]:
    """Submit a code operation and wait for it to complete; (operation id, seconds)."""
    started = time.monotonic()
    operation_id = start(client, quantity)
    wait_completed(client, operation_id)
    return operation_id, time.monotonic() - started


def priorities(client: httpx.Client, quantity: int) -> list[tuple[int, float]]:
    """A priority-1 operation, then (once it has done a tenth) a priority-9 one; (priority,
    seconds from the first submit to its completion), in the order they completed."""
    started = time.monotonic()
    low = start(client, quantity, priority=1)
    while processed(client, low) < quantity // 10:
        time.sleep(0.02)
    high = start(client, quantity, priority=9)
    pending = {low: 1, high: 9}
    done: list[tuple[int, float]] = []
    while pending:
        for operation_id in list(pending):
            if status(client, operation_id).get("status") == "Completed":
                done.append((pending.pop(operation_id), time.monotonic() - started))
        time.sleep(0.02)
    return done


def processed(client: httpx.Client, operation_id: str) -> int:
    metrics = status(client, operation_id).get("metrics")
    return int(metrics["processedItems"]) if isinstance(metrics, dict) else 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--big", type=int, default=300_000)
    parser.add_argument("--small", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--window-items", type=int, help="BULKOPS_RELEASE_WINDOW_ITEMS")
    parser.add_argument("--bootstrap", help="use this running broker instead of starting one")
    args = parser.parse_args()
    console = Console()
    env = {"BULKOPS_MAX_ITEMS_PER_OPERATION": str(max(args.big, 5000))}
    if args.window_items is not None:
        env["BULKOPS_RELEASE_WINDOW_ITEMS"] = str(args.window_items)
    near, far = sponsors(args.partitions)
    rows: list[tuple[str, list[float], list[int]]] = []
    with bulkops_system(
        partitions=args.partitions, env=env, sponsor_id=BIG_SPONSOR, bootstrap=args.bootstrap
    ) as system:
        big_client = system.client
        with system.client_for(near) as near_client, system.client_for(far) as far_client:
            alone = [run_to_end(near_client, args.small)[1] for _ in range(args.runs)]
            rows.append(("alone", alone, []))

            started = time.monotonic()
            big_id = start(big_client, args.big, tier=4)
            while processed(big_client, big_id) < args.big * 0.05:
                time.sleep(0.02)
            for label, client in (("same partition", near_client), ("other partition", far_client)):
                latencies, progress = [], []
                for _ in range(args.runs):
                    latencies.append(run_to_end(client, args.small)[1])
                    progress.append(processed(big_client, big_id))
                rows.append((label, latencies, progress))
            wait_completed(big_client, big_id)
            big_seconds = time.monotonic() - started
            order = priorities(big_client, max(args.big // 5, 1000))

    table = Table(title=f"{args.small}-code operations while {args.big:,} codes run (sponsor 42)")
    table.add_column("small operation")
    table.add_column("median s", justify="right")
    table.add_column("max s", justify="right")
    table.add_column("big op processed when each ended", justify="right")
    for label, latencies, progress in rows:
        table.add_row(
            label,
            f"{statistics.median(latencies):.2f}",
            f"{max(latencies):.2f}",
            ", ".join(f"{p:,}" for p in progress) or "-",
        )
    console.print(table)
    console.print(
        f"big operation: {args.big:,} codes in {big_seconds:.1f} s "
        f"= {args.big / big_seconds:,.0f} codes/s (submit → Completed)"
    )
    console.print(
        "priorities (one sponsor; priority 9 submitted once priority 1 had done a tenth), "
        "in the order they completed: "
        + ", ".join(f"priority {p} at {seconds:.2f} s" for p, seconds in order)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
