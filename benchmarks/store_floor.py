"""What storing generated codes costs the process that owns embedded chDB, and nothing else.

Workload: ``--quantity`` codes (default 1,000,000) as result batches of ``--batch-size``
(1,000), made beforehand with the real minter (not timed), stored the way the sink stores
them: ``--per-insert`` batches (50) per call of ``ResultWriter.insert_results``, one
``codes`` row and one ``items`` row per code, in a fresh embedded chDB directory. No Kafka,
no API, no counting: the floor under what one ``bulkops serve`` can sink per second.

Prints, per phase (building the Arrow tables in Python; chDB's insert), wall seconds, CPU
seconds of the whole process (all threads, chDB's included), microseconds of each per code,
CPU milliseconds per call, and the codes/s the owning process could store at best.

    .venv/bin/python benchmarks/store_floor.py
    # what each insert costs whatever it holds: small operations' inserts
    .venv/bin/python benchmarks/store_floor.py --quantity 6000 --batch-size 30 --per-insert 1
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
from harness import cpu_seconds
from rich.console import Console
from rich.table import Table

from analytics import rows
from analytics.store import AnalyticsStore
from analytics.writer import merged_by_table
from schemas.common import ItemStatus, OperationType
from schemas.messages import ResultBatch
from streams.codes import CodeMinter


def result_batches(quantity: int, batch_size: int) -> list[ResultBatch]:
    minter = CodeMinter("store-floor-benchmark-secret-" + "x" * 32)
    made = datetime.now(UTC)
    operation_id = "codegen_" + "f" * 32
    return [
        ResultBatch(
            operation_id=operation_id,
            sponsor_id=42,
            operation_type=OperationType.CODE_GENERATION,
            batch_index=index,
            start_index=start,
            statuses=[ItemStatus.SUCCESS] * count,
            results=list(minter.codes("AGRI", 42, start, count)),
            errors=[],
            processed_at=made,
            duration_ms=3.0,
            tier_id=2,
            expires_at=made + timedelta(days=365),
        )
        for index, start in enumerate(range(0, quantity, batch_size))
        for count in [min(batch_size, quantity - start)]
    ]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quantity", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--per-insert", type=int, default=50)
    args = parser.parse_args()
    console = Console()
    batches = result_batches(args.quantity, args.batch_size)
    groups = [batches[i : i + args.per_insert] for i in range(0, len(batches), args.per_insert)]
    process = psutil.Process()
    with tempfile.TemporaryDirectory(prefix="bulkops-floor-") as workdir:
        store = AnalyticsStore.open(
            dsn=None, chdb_path=Path(workdir) / "chdb", database="bulkops_floor"
        )
        connection = store.connection
        build = insert = 0.0
        build_cpu = insert_cpu = 0.0
        for group in groups:
            cpu, wall = cpu_seconds(process), time.perf_counter()
            tables = merged_by_table([*map(rows.code_rows, group), rows.item_rows(group)])
            arrows = [(t.table, t.arrow()) for t in tables]
            middle_cpu, middle = cpu_seconds(process), time.perf_counter()
            for table, arrow in arrows:
                connection.insert_arrow(table, arrow)
            end_cpu, end = cpu_seconds(process), time.perf_counter()
            build += middle - wall
            insert += end - middle
            build_cpu += middle_cpu - cpu
            insert_cpu += end_cpu - middle_cpu
        stored = store.reader.code_counts(42, batches[0].operation_id)
        connection.close()
    n = args.quantity
    table = Table(title=f"storing {n:,} codes ({len(groups)} inserts of each table)")
    columns = ("phase", "wall s", "CPU s", "wall µs/code", "CPU µs/code", "CPU ms/call")
    for column in (*columns, "codes/s at best"):
        table.add_column(column, justify="right")
    for phase, wall, cpu in (
        ("Arrow tables (Python)", build, build_cpu),
        ("chDB insert", insert, insert_cpu),
        ("both", build + insert, build_cpu + insert_cpu),
    ):
        table.add_row(
            phase,
            f"{wall:.2f}",
            f"{cpu:.2f}",
            f"{wall / n * 1e6:.2f}",
            f"{cpu / n * 1e6:.2f}",
            f"{cpu / len(groups) * 1e3:.2f}",
            f"{n / wall:,.0f}",
        )
    console.print(table)
    console.print(
        f"stored: {stored.items:,} items, {stored.rows:,} code rows "
        f"({stored.unique_codes:,} unique)"
    )
    return 0 if stored.items == stored.rows == stored.unique_codes == n else 1


if __name__ == "__main__":
    raise SystemExit(main())
