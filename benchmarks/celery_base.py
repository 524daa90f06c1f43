"""What the Celery + Redis baselines share: a private ``redis-server`` (Debian's package), a
prefork Celery worker on a benchmark module, and peak-RSS sampling of process families.

    apt-get install redis-server; pip install -e '.[bench]'
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import redis
from celery import Celery

HERE = Path(__file__).resolve().parent


def bench_app(name: str) -> Celery:
    """A Celery app on the benchmark's Redis (``BENCH_REDIS_URL``), results ignored."""
    app = Celery(name, broker=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
    app.conf.update(task_ignore_result=True, worker_prefetch_multiplier=4, task_acks_late=False)
    return app


class WorkerRedis:
    """The app's Redis as a client made on first use: in each prefork child, not the parent."""

    def __init__(self, app: Celery) -> None:
        self._app = app
        self._client: redis.Redis | None = None

    def __call__(self) -> redis.Redis:
        if self._client is None:
            self._client = redis.Redis.from_url(self._app.conf.broker_url)
        return self._client


class Rss:
    """Peak RSS of a process and its children, sampled by ``sample``."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = 0

    def sample(self) -> None:
        try:
            family = [self.process, *self.process.children(recursive=True)]
            self.peak = max(self.peak, sum(p.memory_info().rss for p in family))
        except psutil.NoSuchProcess:
            pass


@contextmanager
def redis_server() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A throwaway Redis (no persistence) on a free port: (its URL, its process)."""
    workdir = tempfile.mkdtemp(prefix="bulkops-celery-")
    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", workdir],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        store = redis.Redis.from_url(url)
        wait(lambda: pings(store), 10, "redis did not start")
        yield url, server
    finally:
        server.terminate()
        server.wait(timeout=30)


@contextmanager
def celery_worker(module: str, url: str, processes: int) -> Iterator[subprocess.Popen[bytes]]:
    """``celery -A module worker`` with the prefork pool, up before the clock starts."""
    env = {
        **os.environ,
        "BENCH_REDIS_URL": url,
        "PYTHONPATH": os.pathsep.join([str(HERE), str(HERE.parent)]),
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", module, "worker", "--pool", "prefork",
         "--concurrency", str(processes), "--loglevel", "WARNING", "--without-gossip",
         "--without-mingle", "--without-heartbeat"],
        cwd=HERE, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        time.sleep(5)  # the pool is up before the clock starts
        yield worker
    finally:
        worker.terminate()
        worker.wait(timeout=60)


def percentile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, round(q * (len(values) - 1)))] if values else 0.0


def pings(store: redis.Redis) -> bool:
    try:
        return bool(store.ping())
    except redis.ConnectionError:
        return False


def wait(condition: Callable[[], bool], timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(message)
        time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
