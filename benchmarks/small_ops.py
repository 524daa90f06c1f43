"""Many small operations: how many code operations of 10 codes the system completes per second.

Workload: one ``bulkops serve`` process (API + worker + embedded chDB) on a local broker;
``--operations`` (10,000) code generations of ``--size`` (10) codes each from ``--sponsors``
(20) sponsors, submitted as fast as the API takes them (``--concurrency`` requests in flight,
aiohttp). Completion is read from the status topic itself (the first terminal snapshot of each
operation, stamped when this process receives it), so following 10,000 operations adds no load
to the API.

Prints operations/s from the first submit to the last completion, submit answers/s,
submit → Completed latency (p50, p99, max), the server's CPU time per operation (user +
system, all its threads: steadier than operations/s on a shared machine) and its peak RSS.

    .venv/bin/python benchmarks/small_ops.py                     # the issue's figures
    .venv/bin/python benchmarks/small_ops.py --operations 2000   # a quicker look
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import time
import uuid
from datetime import timedelta
from typing import Any

import aiohttp
from confluent_kafka import Consumer
from harness import Running, bulkops_system, cpu_seconds, percentile
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from api.auth import Role, mint_token
from core.topics import Topics

TERMINAL = {"Completed", "Failed", "Cancelled", "PartiallyCompleted"}
MIB = 2**20


class Completions(threading.Thread):
    """Follows the status topic; keeps when each operation was first seen terminal."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(daemon=True)
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"small-ops-{uuid.uuid4().hex}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        self.consumer.subscribe([topic])
        self.finished: dict[str, tuple[float, str]] = {}
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            for message in self.consumer.consume(1000, timeout=0.1):
                value = message.value()
                if message.error() or not value:
                    continue
                snapshot = json.loads(value)
                status = snapshot.get("status")
                op_id = snapshot.get("operationId")
                if status in TERMINAL and op_id not in self.finished:
                    self.finished[op_id] = (time.monotonic(), status)
        self.consumer.close()


async def submit_all(
    system: Running, args: argparse.Namespace, submitted: dict[str, float], failures: list[str]
) -> float:
    """Submit every operation; returns when the first was sent (monotonic)."""
    tokens = [
        mint_token(
            system.jwt_secret,
            subject=f"small-{s}",
            role=Role.SPONSOR,
            sponsor_id=s,
            ttl=timedelta(hours=2),
        )
        for s in range(1, args.sponsors + 1)
    ]
    body: dict[str, Any] = {"subscriptionTierId": 1, "quantity": args.size}
    next_index = iter(range(args.operations))
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(system.base_url, connector=connector) as session:

        async def submitter() -> None:
            for index in next_index:
                token = tokens[index % len(tokens)]
                sent = time.monotonic()
                async with session.post(
                    "/api/v1/bulk-operations/generate-codes",
                    json={**body, "operationName": f"small {index}"},
                    headers={"Authorization": f"Bearer {token}"},
                ) as response:
                    answer = await response.json()
                    if response.status != 202:
                        failures.append(f"{index}: {response.status} {str(answer)[:200]}")
                        continue
                submitted[answer["data"]["operationId"]] = sent

        started = time.monotonic()
        await asyncio.gather(*(submitter() for _ in range(args.concurrency)))
    return started


def run(console: Console, system: Running, args: argparse.Namespace) -> dict[str, Any]:
    env = system.server.env
    completions = Completions(
        env["BULKOPS_KAFKA_BOOTSTRAP"], Topics(env["BULKOPS_TOPIC_PREFIX"]).status.name
    )
    completions.start()
    submitted: dict[str, float] = {}
    failures: list[str] = []
    holder: dict[str, float] = {}

    def submitting() -> None:
        holder["started"] = asyncio.run(submit_all(system, args, submitted, failures))
        holder["submitted"] = time.monotonic()

    serve = system.server_rss.process
    cpu_before = cpu_seconds(serve)
    thread = threading.Thread(target=submitting, daemon=True)
    thread.start()
    deadline = time.monotonic() + args.timeout
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        sent = progress.add_task("submitted", total=args.operations)
        done = progress.add_task("completed", total=args.operations)
        while time.monotonic() < deadline:
            finished = sum(1 for op in list(submitted) if op in completions.finished)
            progress.update(sent, completed=len(submitted) + len(failures))
            progress.update(done, completed=finished)
            if not thread.is_alive() and finished == len(submitted):
                break
            time.sleep(0.2)
    cpu = cpu_seconds(serve) - cpu_before
    completions.stopped.set()
    thread.join(timeout=5)
    latencies = [
        (completions.finished[op][0] - at) * 1000
        for op, at in submitted.items()
        if op in completions.finished
    ]
    ends = [completions.finished[op][0] for op in submitted if op in completions.finished]
    statuses: dict[str, int] = {}
    for op in submitted:
        status = completions.finished.get(op, (0.0, "unfinished"))[1]
        statuses[status] = statuses.get(status, 0) + 1
    return {
        "started": holder.get("started", 0.0),
        "submit_seconds": holder.get("submitted", 0.0) - holder.get("started", 0.0),
        "last_done": max(ends, default=0.0),
        "cpu_seconds": cpu,
        "latencies": latencies,
        "statuses": statuses,
        "failures": failures,
        "submitted": len(submitted),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--operations", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=10, help="codes per operation")
    parser.add_argument("--sponsors", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=64, help="submits in flight")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=1800.0)
    args = parser.parse_args()
    console = Console()
    with bulkops_system(partitions=args.partitions, env={}) as system:
        result = run(console, system, args)
        peak = system.server.rss.peak if system.server.rss else 0
    report(console, args, result, peak)


def report(console: Console, args: argparse.Namespace, result: dict[str, Any], peak: int) -> None:
    ms: list[float] = result["latencies"]
    elapsed = result["last_done"] - result["started"]
    completed = len(ms)
    table = Table(
        title=f"{args.operations:,} operations of {args.size} codes, {args.sponsors} sponsors, "
        f"{args.partitions} partitions"
    )
    columns = ("completed", "ops/s", "submits/s", "p50 ms", "p99 ms", "max ms", "CPU/op")
    for column in (*columns, "peak RSS"):
        table.add_column(column, justify="right")
    table.add_row(
        f"{completed:,}/{result['submitted']:,}",
        f"{completed / elapsed:,.1f}" if elapsed > 0 else "-",
        f"{result['submitted'] / result['submit_seconds']:,.0f}"
        if result["submit_seconds"] > 0
        else "-",
        f"{percentile(ms, 0.5):,.0f}" if ms else "-",
        f"{percentile(ms, 0.99):,.0f}" if ms else "-",
        f"{max(ms):,.0f}" if ms else "-",
        f"{result['cpu_seconds'] * 1000 / completed:.2f} ms" if completed else "-",
        f"{peak / MIB:,.0f} MiB",
    )
    console.print(table)
    console.print(f"statuses: {result['statuses']}; refused submits: {len(result['failures'])}")
    for failure in result["failures"][:5]:
        console.print(f"  refused: {failure}")


if __name__ == "__main__":
    main()
