"""One code path to ClickHouse: clickhouse-connect over HTTP to a server, or its chDB backend.

chDB runs a real ClickHouse engine inside this process. It lets one OS process own a data
directory, so in embedded mode the API and the worker share one process (``bulkops up``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import clickhouse_connect
from clickhouse_connect.driver import options as driver_options
from clickhouse_connect.driver.client import Client


def connect(
    *, dsn: str | None, chdb_path: Path, database: str, settings: dict[str, Any] | None = None
) -> Client:
    """A client on ``database``, creating the database first if it is missing.

    ``settings``: session settings, applied in order (put ``readonly`` last: once it is set,
    no other setting can change)."""
    if dsn:
        bootstrap = clickhouse_connect.get_client(dsn=dsn)
    else:
        chdb_path.mkdir(parents=True, exist_ok=True)
        bootstrap = clickhouse_connect.get_client(interface="chdb", path=str(chdb_path))
    _import_pandas_now()
    try:
        # ``database`` is configuration, validated by its settings pattern, never user input.
        bootstrap.command(f"CREATE DATABASE IF NOT EXISTS `{database}`")
    finally:
        bootstrap.close()
    if dsn:
        return clickhouse_connect.get_client(dsn=dsn, database=database, settings=settings)
    return clickhouse_connect.get_client(
        interface="chdb", path=str(chdb_path), database=database, settings=settings
    )


def _import_pandas_now() -> None:
    """Have clickhouse-connect import pandas (when installed) now, not in the first insert.

    Every row insert asks whether its rows are a pandas DataFrame, and the first answer
    imports pandas: 0.3-0.6 s holding the GIL inside the worker's first insert, which the
    event loop waited out, so the first operation after a start stalled. A client opens
    before anything is served.
    """
    _ = driver_options.pd
