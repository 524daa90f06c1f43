"""Item exports of a large operation: time, size and the server's memory per format.

Workload: a ``bulkops serve`` process (API + worker + embedded chDB) on a local broker
generates ``--quantity`` codes (default 1,000,000) in batches of 1,000; then one sponsor
downloads ``GET /items/{id}/export`` as CSV, Excel and Parquet in turn, streaming each to
nothing. Prints per format: seconds, items/s, bytes, the server's RSS before the download
and its peak during it (constant memory means the peak does not grow with the operation).

    .venv/bin/python benchmarks/export_memory.py --quantity 1000000
"""

from __future__ import annotations

import argparse
import time

import psutil
from harness import PeakRss, bulkops_system
from rich.console import Console
from rich.table import Table

TERMINAL = ("Completed", "Failed", "PartiallyCompleted", "Cancelled")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quantity", type=int, default=1_000_000)
    parser.add_argument("--formats", default="csv,parquet,xlsx")
    args = parser.parse_args()
    console = Console()
    env = {
        "BULKOPS_MAX_ITEMS_PER_OPERATION": str(max(args.quantity, 5000)),
        # Measure Excel at any size (the API refuses it past 100,000 items by default).
        "BULKOPS_EXPORT_XLSX_MAX_ITEMS": str(min(max(args.quantity, 1), 1_000_000)),
    }
    table = Table(title=f"GET /items/{{id}}/export of {args.quantity:,} items")
    for column in ("format", "seconds", "items/s", "MiB", "RSS before MiB", "peak RSS MiB"):
        table.add_column(column, justify="right")
    with bulkops_system(partitions=4, env=env) as system:
        client = system.client
        body = {
            "subscriptionTierId": 1,
            "quantity": args.quantity,
            "processing": {"batchSize": 1000},
        }
        operation = client.post("/generate-codes", json=body).json()["data"]["operationId"]
        with console.status(f"generating {args.quantity:,} codes"):
            while client.get(f"/status/{operation}").json()["data"]["status"] not in TERMINAL:
                time.sleep(0.5)
        server = psutil.Process(system.server_rss.process.pid)
        for export_format in args.formats.split(","):
            before = server.memory_info().rss
            peak = PeakRss(server.pid)
            peak.start()
            size = 0
            started = time.perf_counter()
            with (
                console.status(f"exporting {export_format}"),
                client.stream(
                    "GET", f"/items/{operation}/export?format={export_format}", timeout=900
                ) as answer,
            ):
                answer.raise_for_status()
                for chunk in answer.iter_bytes():
                    size += len(chunk)
            seconds = time.perf_counter() - started
            peak.stopped.set()
            peak.join()
            table.add_row(
                export_format,
                f"{seconds:.1f}",
                f"{args.quantity / seconds:,.0f}",
                f"{size / 2**20:,.1f}",
                f"{before / 2**20:,.0f}",
                f"{max(peak.peak, before) / 2**20:,.0f}",
            )
    console.print(table)


if __name__ == "__main__":
    main()
