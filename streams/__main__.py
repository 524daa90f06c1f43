"""``python -m streams``: one worker process against a ClickHouse server."""

from __future__ import annotations

import sys

from core.settings import WorkerSettings
from streams.worker import run


def main() -> int:
    settings = WorkerSettings()
    if settings.clickhouse_dsn is None:
        print(
            "a worker on its own needs BULKOPS_CLICKHOUSE_DSN: embedded chDB lets one process "
            "own its data (run `bulkops serve` for API and worker in one process)",
            file=sys.stderr,
        )
        return 2
    run(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
