"""Open-loop GET load in a process of its own, so what it measures is the server.

Each request is sent at its planned time (``rate`` per second for ``seconds``), whatever the
answers before it, and its latency is measured from that send. The generator runs apart from
the benchmark that calls it: measured in the soak, the benchmark's own process (provider
simulator, RSS samplers, a large heap) paused 60-100 ms in its full garbage collections, and
every request in flight then counted the pause as server latency. Here the heap is small,
frozen after the imports, and not collected during the run.

    python benchmarks/loadgen.py URL TOKEN RATE SECONDS < paths  # one per line; prints JSON

aiohttp, not httpx: httpx's async client tops out near 150 requests/s of one core here.
"""

from __future__ import annotations

import asyncio
import gc
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp


@dataclass
class LoadResult:
    latencies_ms: list[float]
    errors: int
    achieved_per_second: float


async def _open_loop(
    base_url: str, token: str, paths: list[str], rate: float, seconds: float
) -> LoadResult:
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=256)
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(base_url, connector=connector, headers=headers) as client:

        async def one(path: str) -> None:
            nonlocal errors
            sent = time.perf_counter()
            async with client.get(path) as response:
                await response.read()
                errors += response.status != 200
            latencies.append((time.perf_counter() - sent) * 1000)

        total = int(rate * seconds)
        start = time.perf_counter()
        tasks = []
        for i in range(total):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(paths[i % len(paths)])))
        await asyncio.gather(*tasks)
        achieved = total / (time.perf_counter() - start)
    return LoadResult(latencies, errors, achieved)


def run(base_url: str, token: str, paths: list[str], rate: float, seconds: float) -> LoadResult:
    """Run the load in a fresh interpreter and return what it measured."""
    done = subprocess.run(
        [sys.executable, str(Path(__file__)), base_url, token, str(rate), str(seconds)],
        input="\n".join(paths),
        check=True,
        capture_output=True,
        text=True,
    )
    measured = json.loads(done.stdout)
    return LoadResult(measured["latencies_ms"], measured["errors"], measured["achieved"])


def main() -> None:
    base_url, token, rate, seconds = sys.argv[1:]
    paths = sys.stdin.read().split()
    gc.collect()
    gc.freeze()
    gc.disable()  # a 10-s run allocates little; a collection would pause every request
    result = asyncio.run(_open_loop(base_url, token, paths, float(rate), float(seconds)))
    json.dump(
        {
            "latencies_ms": result.latencies_ms,
            "errors": result.errors,
            "achieved": result.achieved_per_second,
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
