"""Baseline for ``codegen_e2e.py``: the same code generation through Celery and Redis.

What a team would otherwise run: Redis (Debian's ``redis-server``) as the broker, a Celery
worker with the prefork pool (one process per core), one task per batch of ``--batch-size``
codes minting them with Bulkops' own ``CodeMinter`` (the same AES codes, byte for byte, for
the same sponsor and serials), and one collector process that pops the minted batches from
Redis and writes the same ``codes`` and ``items`` rows to embedded ClickHouse (chDB) with
Bulkops' own row builders and writer. Prints codes/s end to end (first enqueue → every row
stored and counted), and the peak RSS of the Celery processes, the collector and Redis.

    apt-get install redis-server; pip install -e '.[bench]'
    .venv/bin/python benchmarks/codegen_celery.py --quantity 1000000 --batch-size 1000
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import redis
from celery_base import HERE, Rss, WorkerRedis, bench_app, celery_worker, redis_server
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

MINTED, STORED = "bench:minted", "bench:stored"
SPONSOR, TIER, PREFIX, VALIDITY_DAYS = 42, 4, "BULK", 365

app = bench_app("codegen_celery")
_store = WorkerRedis(app)
_minter = None


@app.task(name="mint_batch")
def mint_batch(operation_id: str, batch_index: int, start: int, count: int, secret: str) -> None:
    """Mint one batch as Bulkops' process agent does, and hand it to the collector."""
    global _minter
    from streams.codes import CodeMinter

    if _minter is None:
        _minter = CodeMinter(secret)
    started = time.perf_counter()
    now = time.time()
    codes = _minter.codes(PREFIX, SPONSOR, start, count)
    batch = {
        "operation_id": operation_id,
        "batch_index": batch_index,
        "start": start,
        "codes": codes,
        "processed_at": now,
        "duration_ms": (time.perf_counter() - started) * 1000,
    }
    _store().rpush(MINTED, orjson.dumps(batch))


def collect(url: str, chdb_path: Path, quantity: int) -> None:
    """The collector: minted batches → ``items`` and ``codes`` rows, as Bulkops' sink writes
    them, many batches per insert; counts what it stored in Redis."""
    from analytics import rows
    from analytics.store import AnalyticsStore
    from schemas.common import ItemStatus, OperationType
    from schemas.messages import ResultBatch

    store = AnalyticsStore.open(dsn=None, chdb_path=chdb_path, database="bench")
    queue = redis.Redis.from_url(url)
    stored = 0
    while stored < quantity:
        popped = queue.lpop(MINTED, 50)
        if not popped:
            time.sleep(0.01)
            continue
        batches = []
        for raw in popped:
            minted = orjson.loads(raw)
            processed_at = datetime.fromtimestamp(minted["processed_at"], UTC)
            batches.append(
                ResultBatch(
                    operation_id=minted["operation_id"],
                    sponsor_id=SPONSOR,
                    operation_type=OperationType.CODE_GENERATION,
                    batch_index=minted["batch_index"],
                    start_index=minted["start"],
                    statuses=[ItemStatus.SUCCESS] * len(minted["codes"]),
                    results=minted["codes"],
                    processed_at=processed_at,
                    duration_ms=minted["duration_ms"],
                    tier_id=TIER,
                    expires_at=processed_at + timedelta(days=VALIDITY_DAYS),
                )
            )
        stored += store.writer.insert_results(batches, [rows.code_rows(b) for b in batches])
        queue.set(STORED, stored)
    (row,) = store.connection.query("SELECT count(), uniqExact(code) FROM codes", {})
    queue.set("bench:check", orjson.dumps(list(row)))
    store.close()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quantity", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--collect", nargs=2, metavar=("URL", "CHDB"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.collect:
        collect(args.collect[0], Path(args.collect[1]), args.quantity)
        return 0
    console = Console()
    chdb_path = Path(tempfile.mkdtemp(prefix="bulkops-celery-chdb-"))
    with (
        redis_server() as (url, server),
        celery_worker("codegen_celery", url, args.processes) as worker,
    ):
        queue = redis.Redis.from_url(url)
        app.conf.broker_url = url
        collector = subprocess.Popen(
            [sys.executable, str(HERE / "codegen_celery.py"), "--quantity", str(args.quantity),
             "--collect", url, str(chdb_path)],
            cwd=HERE.parent, env={**os.environ, "PYTHONPATH": str(HERE.parent)},
        )  # fmt: skip
        rss = [Rss(worker.pid), Rss(collector.pid), Rss(server.pid)]
        time.sleep(3)  # the collector has opened chDB
        secret, operation_id = secrets.token_urlsafe(32), f"codegen_{uuid.uuid4().hex}"
        started = time.monotonic()
        for index, start in enumerate(range(0, args.quantity, args.batch_size)):
            count = min(args.batch_size, args.quantity - start)
            mint_batch.apply_async((operation_id, index, start, count, secret))
        with Progress(
            TextColumn("[bold]celery codes"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as bar:
            task = bar.add_task("codes", total=args.quantity)
            while collector.poll() is None:
                bar.update(task, completed=int(queue.get(STORED) or 0))
                for sampler in rss:
                    sampler.sample()
                if time.monotonic() - started > args.timeout:
                    collector.kill()
                    raise RuntimeError(f"not done after {args.timeout}s")
                time.sleep(0.1)
        seconds = time.monotonic() - started
        if collector.returncode != 0:
            raise RuntimeError(f"the collector failed ({collector.returncode})")
        count, unique = orjson.loads(queue.get("bench:check") or b"[0, 0]")
    table = Table(title=f"Celery + Redis: {args.quantity:,} codes, one task per {args.batch_size}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("worker processes (prefork) + collector", f"{args.processes} + 1")
    table.add_row("first enqueue → all rows stored", f"{seconds:.2f} s")
    table.add_row("codes/s end to end", f"{args.quantity / seconds:,.0f}")
    table.add_row("codes stored (unique)", f"{count:,} ({unique:,})")
    table.add_row("peak RSS celery (all processes)", f"{rss[0].peak / 2**20:,.0f} MiB")
    table.add_row("peak RSS collector (with chDB)", f"{rss[1].peak / 2**20:,.0f} MiB")
    table.add_row("peak RSS redis", f"{rss[2].peak / 2**20:,.0f} MiB")
    console.print(table)
    print(json.dumps({"quantity": args.quantity, "seconds": seconds, "unique": unique}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
