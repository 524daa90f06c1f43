"""End-to-end benchmark: one bulk code-generation operation through the whole system.

Workload: submit one operation of ``--quantity`` codes (default 1,000,000) in batches of
``--batch-size`` over REST to a ``bulkops serve`` process (API + Faust worker + embedded chDB)
on a local single-node Kafka broker; poll status until ``Completed``; then check that every
code is queryable in ClickHouse. Prints items/s end to end, time to first processed item,
status freshness lag (now - lastUpdated as seen by polling clients) percentiles, and the peak
RSS of the Bulkops process and of the broker JVM.

    .venv/bin/python benchmarks/codegen_e2e.py --quantity 1000000 --batch-size 1000 --baseline

``--baseline`` then runs ``codegen_celery.py`` (the same codes and rows through Celery + Redis,
one task per batch) on the same machine and prints both figures and their ratio.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime

from harness import ROOT, bulkops_system, percentile
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quantity", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--bootstrap", help="use this running broker instead of starting one")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument(
        "--baseline", action="store_true", help="then run the Celery + Redis baseline"
    )
    args = parser.parse_args()
    if args.baseline and (missing := baseline_missing()):
        parser.error(f"--baseline needs {', '.join(missing)} (see benchmarks/celery_base.py)")
    console = Console()
    env = {"BULKOPS_MAX_ITEMS_PER_OPERATION": str(max(args.quantity, 5000))}
    with bulkops_system(partitions=args.partitions, env=env, bootstrap=args.bootstrap) as system:
        client = system.client
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
        server_peak = system.server_rss.peak
        broker_peak = system.broker_rss.peak if system.broker_rss else 0

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
    table.add_row("peak RSS bulkops (API+worker+chDB)", f"{server_peak / 2**20:,.0f} MiB")
    if broker_peak:
        table.add_row("peak RSS Kafka broker (JVM)", f"{broker_peak / 2**20:,.0f} MiB")
    console.print(table)
    ok = status.get("status") == "Completed" and codes["uniqueCodes"] == args.quantity
    if args.baseline:
        ours = args.quantity / completed
        theirs = celery_baseline(args.quantity, args.batch_size)
        console.print(
            f"Bulkops {ours:,.0f} codes/s, Celery + Redis {theirs:,.0f} codes/s: "
            f"ratio {ours / theirs:.2f}"
        )
    return 0 if ok else 1


def baseline_missing() -> list[str]:
    """What the Celery baseline lacks here, found before the Bulkops half is spent."""
    missing = [
        f"the {name} package"
        for name in ("celery", "redis")
        if importlib.util.find_spec(name) is None
    ]
    if shutil.which("redis-server") is None:
        missing.append("Debian's redis-server")
    return missing


def celery_baseline(quantity: int, batch_size: int) -> float:
    """``codegen_celery.py`` in a process of its own (it needs the ``bench`` extra)."""
    script = ROOT / "benchmarks" / "codegen_celery.py"
    command = [sys.executable, str(script), "--quantity", str(quantity)]
    run = subprocess.run(
        [*command, "--batch-size", str(batch_size)], capture_output=True, text=True, check=False
    )
    if run.returncode != 0:
        sys.stderr.write(run.stderr)
        raise SystemExit(f"the Celery baseline failed (exit {run.returncode})")
    print(run.stdout.rsplit("\n", 2)[0])
    result = json.loads(run.stdout.strip().splitlines()[-1])
    return float(result["quantity"]) / float(result["seconds"])


if __name__ == "__main__":
    raise SystemExit(main())
