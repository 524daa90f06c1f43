"""The worker's table store (streams/tablestore.py): RocksDB with no write-ahead log, and a
database that a crash leaves as a prefix of its writes."""

from __future__ import annotations

from pathlib import Path

import faust
import pytest

from streams import tablestore
from streams.tables import ROCKSDB_OPTIONS
from tests.support import run_script

_VALUE = b"v" * 10_000


def _store(data_dir: Path, url: str) -> faust.stores.rocksdb.Store:
    app = faust.App("tablestore-test", store=url, datadir=str(data_dir))
    table = app.Table("kept", partitions=1, options=ROCKSDB_OPTIONS)
    store = table.data
    assert isinstance(store, faust.stores.rocksdb.Store)
    return store


def _log_bytes(directory: Path) -> int:
    return sum(path.stat().st_size for path in directory.glob("*.log"))


@pytest.mark.parametrize(
    ("url", "logged"),
    [(tablestore.STORE_URLS["rocksdb"], False), ("rocksdb://", True)],
    ids=["ours", "faust's"],
)
def test_puts_write_no_log_in_our_store(tmp_path: Path, url: str, logged: bool) -> None:
    store = _store(tmp_path, url)
    db = store._db_for_partition(0)
    for i in range(100):
        db.put(f"key-{i}".encode(), _VALUE)
    written = _log_bytes(store.partition_path(0))
    if logged:  # the same puts through Faust's own store: the check sees a log when there is one
        assert written >= 100 * len(_VALUE)
    else:
        assert written == 0
    assert db.get(b"key-99") == _VALUE


_CRASHING_WRITER = """
import os
import sys
from pathlib import Path

import faust

from streams import tablestore
from streams.tables import ROCKSDB_OPTIONS

app = faust.App("tablestore-test", store=tablestore.STORE_URLS["rocksdb"], datadir=sys.argv[1])
store = app.Table("kept", partitions=1, options=ROCKSDB_OPTIONS).data
db = store._db_for_partition(0)
value = b"v" * 10_000
for i in range(1000):
    db.put(f"key-{i:04d}".encode(), value)
    db.put(store.offset_key, str(i).encode())  # as Faust does once a change is on the changelog
for i in range(1000, 1100):  # a tail far smaller than a write buffer: in the memtable at the end
    db.put(f"key-{i:04d}".encode(), value[:100])
    db.put(store.offset_key, str(i).encode())
os._exit(0)  # a crash: nothing closed, nothing flushed
"""


def test_a_crash_leaves_the_data_the_surviving_offset_claims(tmp_path: Path) -> None:
    """Without the log a crash loses the last memtable; the database reopens as a prefix of
    its writes, so every change up to the offset that survived is there (the worker reads
    the changelog on from that offset)."""
    run_script(_CRASHING_WRITER, str(tmp_path))
    store = _store(tmp_path, tablestore.STORE_URLS["rocksdb"])
    db = store._db_for_partition(0)
    offset = db.get(store.offset_key)
    assert offset is not None, "10 MB of puts through 2 MiB write buffers: flushes happened"
    survived = int(offset)
    assert survived < 1099, "the last memtable was lost with the crash"
    missing = [
        i for i in range(min(survived + 1, 1000)) if db.get(f"key-{i:04d}".encode()) != _VALUE
    ]
    missing += [i for i in range(1000, survived + 1) if db.get(f"key-{i:04d}".encode()) is None]
    assert missing == []


_STOPPING_WRITER = """
import asyncio
import sys

import faust

from streams import tablestore
from streams.tables import ROCKSDB_OPTIONS

app = faust.App("tablestore-test", store=tablestore.STORE_URLS["rocksdb"], datadir=sys.argv[1])
store = app.Table("kept", partitions=1, options=ROCKSDB_OPTIONS).data
db = store._db_for_partition(0)
for i in range(10):
    db.put(f"key-{i}".encode(), b"kept")
del db
asyncio.run(store.stop())  # a worker stopping: Faust lets go of its databases
"""


def test_a_clean_stop_keeps_every_write(tmp_path: Path) -> None:
    """RocksDB flushes a database without a log when it closes: a worker that stopped
    cleanly reads no changelog again for what it wrote."""
    run_script(_STOPPING_WRITER, str(tmp_path))
    db = _store(tmp_path, tablestore.STORE_URLS["rocksdb"])._db_for_partition(0)
    assert [db.get(f"key-{i}".encode()) for i in range(10)] == [b"kept"] * 10
