"""Reads a stopped server's chDB directory and prints row counts as JSON (run as a process:
chDB lets one process own one data directory, and the test process may own another)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from analytics.store import AnalyticsStore


def main() -> None:
    path, operation_id, sponsor_id = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    store = AnalyticsStore.open(dsn=None, chdb_path=path, database="bulkops")
    try:
        counts = store.reader.code_counts(sponsor_id, operation_id)
        items = store.reader.item_counts(sponsor_id, operation_id)
        last_success = store.reader.last_success_at(sponsor_id, operation_id)
        print(
            json.dumps(
                {
                    "code_items": counts.items,
                    "unique_codes": counts.unique_codes,
                    "code_rows": counts.rows,
                    "success_items": items.get("Success", 0),
                    "all_items": sum(items.values()),
                    "duplicate_codes": store.reader.duplicate_codes(),
                    "history": store.reader.history_count(sponsor_id),
                    "last_success_at": last_success.timestamp() if last_success else None,
                }
            )
        )
    finally:
        store.close()


if __name__ == "__main__":
    main()
