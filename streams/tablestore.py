"""Where the worker's Faust tables live: RocksDB without its write-ahead log.

Every table write is also a message on the table's changelog topic, and Faust stores, beside
the data, the changelog offset each partition's database holds. The changelog is what the
tables are rebuilt from; the local database only saves reading all of it again after a
restart. So the database need not survive a crash on its own: RocksDB's write-ahead log
(written on every put) is turned off, as Kafka Streams does for its stores.

Why nothing is lost: without the log a crash loses the memtable, and the database reopens as it
was at its last flush, a prefix of the writes. Data is written before the offset that covers
it, so the offset that survives never claims more than the data that survived; the worker
then reads the changelog from that offset on, as after any restart. A clean stop loses
nothing: RocksDB flushes a database without a log when it closes.

The log cost ~10 % of the worker's time per small operation: ``bulkops serve``'s CPU per
10-code operation in ``benchmarks/small_ops.py --operations 3000`` went from 10.1-10.4 ms to
9.2-10.0 ms (the memory store, which reads every changelog from its start on each start:
9.1 ms).
"""

from __future__ import annotations

from typing import Any

import rocksdict
from faust.stores import STORES
from faust.stores import rocksdb as faust_rocksdb

#: The store URL of each ``BULKOPS_TABLE_STORE``.
STORE_URLS = {"rocksdb": "bulkopsrocksdb://", "memory": "memory://"}


class Store(faust_rocksdb.Store):
    """Faust's RocksDB store, every partition's database opened without a write-ahead log."""

    def _open_for_partition(self, partition: int) -> Any:
        db = super()._open_for_partition(partition)
        options = rocksdict.WriteOptions()
        # A property at run time; rocksdict's stub declares it a method.
        options.disable_wal = True  # type: ignore[method-assign,assignment]
        db.set_write_options(options)
        return db


STORES.aliases.setdefault("bulkopsrocksdb", f"{__name__}:Store")
