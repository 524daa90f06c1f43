"""End-to-end benchmark: one job operation of no-op items through an SDK worker over Kafka.

Workload: register a no-op job type (``bench:noop``, batches of ``--batch-size``), start
``--workers`` processes of ``bulkops.jobs.JobWorker`` whose batch handler answers every item
``Success``, submit one operation of ``--items`` items over REST to a ``bulkops serve``
process (API + Faust worker + embedded chDB) on a local single-node broker, and poll status
until it is finished. Prints items/s end to end (submit → every item stored), the item latency
(submit → the item's outcome stored, p50/p99, from ClickHouse through the Admin SQL endpoint),
and the peak RSS of the Bulkops process, the job workers and the broker.

    .venv/bin/python benchmarks/jobs_e2e.py --items 1000000 --batch-size 1000

``benchmarks/jobs_celery.py`` runs the same jobs through Celery and Redis, for comparison.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import httpx
from harness import ROOT, PeakRss, bulkops_system
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

JOB_TYPE = "bench:noop"
TERMINAL = {"Completed", "PartiallyCompleted", "Failed", "Cancelled"}


def run_worker(bootstrap: str, prefix: str) -> None:
    """One job-worker process: every item of every batch succeeds at once."""
    from bulkops.jobs import JobWorker
    from schemas.common import ItemStatus
    from schemas.jobs import JobBatch, JobItemOutcome

    async def noop(batch: JobBatch) -> list[JobItemOutcome]:
        return [
            JobItemOutcome.model_construct(
                index=item.index, item_id=item.item_id, status=ItemStatus.SUCCESS
            )
            for item in batch.items
        ]

    JobWorker(
        JOB_TYPE, bootstrap=bootstrap, prefix=prefix, batch_handler=noop, poll_seconds=0.05
    ).run_forever()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=1, help="job-worker processes")
    parser.add_argument("--concurrency", type=int, default=16, help="batches out at once")
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument(
        "--worker", nargs=2, metavar=("BOOTSTRAP", "PREFIX"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.worker:
        run_worker(*args.worker)
        return 0
    console = Console()
    env = {
        "BULKOPS_MAX_ITEMS_PER_OPERATION": str(max(args.items, 5000)),
        "BULKOPS_PROCESS_CONCURRENCY": str(max(32, 2 * args.concurrency)),
    }
    with bulkops_system(partitions=args.partitions, env=env) as system:
        bootstrap = system.server.env["BULKOPS_KAFKA_BOOTSTRAP"]
        prefix = system.server.env["BULKOPS_TOPIC_PREFIX"]
        admin = httpx.Client(
            base_url=f"{system.base_url}/api/v1",
            headers={"Authorization": f"Bearer {system.admin_token()}"},
            timeout=120,
        )
        spec = {
            "name": JOB_TYPE,
            "executor": "kafka",
            "batchSize": args.batch_size,
            "maxConcurrency": args.concurrency,
            "timeoutSeconds": 120,
        }
        admin.post("/bulk-operations/job-types", json=spec).raise_for_status()
        workers = [
            subprocess.Popen(
                [sys.executable, __file__, "--worker", bootstrap, prefix],
                cwd=ROOT,
                env=system.server.env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
            )
            for _ in range(args.workers)
        ]
        worker_rss = [PeakRss(w.pid) for w in workers]
        for sampler in worker_rss:
            sampler.start()
        try:
            time.sleep(3)  # the workers join their group before the first batch arrives
            result = run_operation(system.client, args, console)
            latency = item_latency(admin)
        finally:
            for worker in workers:
                worker.terminate()
                worker.wait(timeout=30)
        report(console, args, result, latency, system, worker_rss)
        admin.close()
    return 0


def run_operation(client, args: argparse.Namespace, console: Console) -> dict:  # type: ignore[no-untyped-def]
    body = {
        "operationType": JOB_TYPE,
        "operationName": "benchmark",
        "items": [{"n": n} for n in range(args.items)],
    }
    submitted = time.monotonic()
    response = client.post("/jobs", json=body)
    response.raise_for_status()
    accepted_after = time.monotonic() - submitted
    operation_id = response.json()["data"]["operationId"]
    with Progress(
        TextColumn("[bold]jobs"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("jobs", total=args.items)
        while True:
            status = client.get(f"/status/{operation_id}").json()["data"]
            bar.update(task, completed=status["metrics"]["processedItems"])
            if status["status"] in TERMINAL:
                break
            if time.monotonic() - submitted > args.timeout:
                raise RuntimeError(f"not finished after {args.timeout}s: {status['status']}")
            time.sleep(0.2)
    return {
        "operationId": operation_id,
        "seconds": time.monotonic() - submitted,
        "acceptedAfter": accepted_after,
        "status": status,
    }


def item_latency(admin: httpx.Client) -> dict[str, float]:
    """The operation's creation (the API's accept) → each item's outcome stored, in ms, from
    ClickHouse (the benchmark's system holds this one operation)."""
    sql = (
        "SELECT quantiles(0.5, 0.99)(dateDiff('millisecond', o.created_at, i.processed_at)) "
        "AS q, count() AS n FROM v1_items AS i INNER JOIN v1_operations AS o USING (operation_id)"
    )
    answer = admin.post("/admin/sql", json={"sql": sql})
    answer.raise_for_status()
    (row,) = answer.json()["data"]["rows"]
    return {"p50": float(row["q"][0]), "p99": float(row["q"][1]), "stored": int(row["n"])}


def report(console, args, result, latency, system, worker_rss) -> None:  # type: ignore[no-untyped-def]
    metrics = result["status"]["metrics"]
    table = Table(title=f"{args.items:,} no-op jobs, batches of {args.batch_size}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("final status", result["status"]["status"])
    table.add_row("successful items", f"{metrics['successfulItems']:,}")
    table.add_row("items stored (ClickHouse)", f"{latency['stored']:,}")
    table.add_row("submit accepted after", f"{result['acceptedAfter']:.2f} s")
    table.add_row("submit → all stored", f"{result['seconds']:.2f} s")
    table.add_row("items/s end to end", f"{args.items / result['seconds']:,.0f}")
    table.add_row("item latency p50 / p99", f"{latency['p50']:,.0f} / {latency['p99']:,.0f} ms")
    table.add_row("peak RSS bulkops serve", f"{system.server_rss.peak / 2**20:,.0f} MiB")
    table.add_row(
        f"peak RSS job workers ({args.workers})",
        " + ".join(f"{w.peak / 2**20:,.0f}" for w in worker_rss) + " MiB",
    )
    if system.broker_rss is not None:
        table.add_row("peak RSS broker", f"{system.broker_rss.peak / 2**20:,.0f} MiB")
    console.print(table)
    print(json.dumps({"items": args.items, "seconds": result["seconds"], "latency": latency}))


if __name__ == "__main__":
    raise SystemExit(main())
