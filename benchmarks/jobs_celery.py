"""Baseline for ``jobs_e2e.py``: the same no-op jobs through Celery with a Redis broker.

What a team would otherwise run: Redis (Debian's ``redis-server``) as the broker, a Celery
worker with the prefork pool (one process per core), and the producer enqueueing the jobs.
Two shapes: ``--per item`` (one task per item, the way the ``003_*`` PRD and most Celery users
write it) and ``--per batch`` (one task per ``--batch-size`` items). Each task counts its items
into a Redis counter (how the producer knows every job is done: Celery has no per-operation
progress) and, for every 100th item, its latency (enqueued → done). Prints items/s end to end
(first enqueue → last item done), latency p50/p99 and the peak RSS of the Celery processes
and of Redis.

    apt-get install redis-server; pip install -e '.[bench]'
    .venv/bin/python benchmarks/jobs_celery.py --items 1000000 --per item
"""

from __future__ import annotations

import argparse
import json
import os
import time

import redis
from celery_base import Rss, WorkerRedis, bench_app, celery_worker, percentile, redis_server
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

DONE, LATENCIES = "bench:done", "bench:latency"

app = bench_app("jobs_celery")
_counter = WorkerRedis(app)


@app.task(name="noop_item")
def noop_item(index: int, payload: dict[str, object], enqueued: float) -> None:
    pipe = _counter().pipeline(transaction=False)
    pipe.incr(DONE)
    if index % 100 == 0:
        pipe.rpush(LATENCIES, (time.time() - enqueued) * 1000)
    pipe.execute()


@app.task(name="noop_batch")
def noop_batch(start: int, payloads: list[dict[str, object]], enqueued: float) -> None:
    took = (time.time() - enqueued) * 1000
    pipe = _counter().pipeline(transaction=False)
    pipe.incrby(DONE, len(payloads))
    for index in range(start, start + len(payloads)):
        if index % 100 == 0:
            pipe.rpush(LATENCIES, took)
    pipe.execute()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--per", choices=("item", "batch"), default="item")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--timeout", type=float, default=3600)
    args = parser.parse_args()
    console = Console()
    with (
        redis_server() as (url, server),
        celery_worker("jobs_celery", url, args.processes) as worker,
    ):
        store = redis.Redis.from_url(url)
        app.conf.broker_url = url
        rss = [Rss(worker.pid), Rss(server.pid)]
        started = time.monotonic()
        enqueued = _enqueue(args, rss)
        with Progress(
            TextColumn(f"[bold]celery per {args.per}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as bar:
            task = bar.add_task("jobs", total=args.items)
            while (done := int(store.get(DONE) or 0)) < args.items:
                bar.update(task, completed=done)
                for sampler in rss:
                    sampler.sample()
                if time.monotonic() - started > args.timeout:
                    raise RuntimeError(f"{done} of {args.items} done after {args.timeout}s")
                time.sleep(0.1)
        seconds = time.monotonic() - started
        latencies = sorted(float(v) for v in store.lrange(LATENCIES, 0, -1))
    table = Table(title=f"Celery + Redis: {args.items:,} no-op jobs, one task per {args.per}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("worker processes (prefork)", str(args.processes))
    table.add_row("enqueue time", f"{enqueued:.2f} s")
    table.add_row("first enqueue → all done", f"{seconds:.2f} s")
    table.add_row("items/s end to end", f"{args.items / seconds:,.0f}")
    table.add_row(
        "item latency p50 / p99",
        f"{percentile(latencies, 0.5):,.0f} / {percentile(latencies, 0.99):,.0f} ms",
    )
    table.add_row("peak RSS celery (all processes)", f"{rss[0].peak / 2**20:,.0f} MiB")
    table.add_row("peak RSS redis", f"{rss[1].peak / 2**20:,.0f} MiB")
    console.print(table)
    print(json.dumps({"per": args.per, "items": args.items, "seconds": seconds}))
    return 0


def _enqueue(args: argparse.Namespace, rss: list[Rss]) -> float:
    """Every job on the broker, as a Celery producer sends them; returns the seconds taken."""
    started = time.monotonic()
    if args.per == "item":
        for n in range(args.items):
            noop_item.apply_async((n, {"n": n}, time.time()))
            if n % 10_000 == 0:
                for sampler in rss:
                    sampler.sample()
    else:
        for start in range(0, args.items, args.batch_size):
            stop = min(args.items, start + args.batch_size)
            noop_batch.apply_async((start, [{"n": n} for n in range(start, stop)], time.time()))
    return time.monotonic() - started


if __name__ == "__main__":
    raise SystemExit(main())
