"""``python -m streams``: one worker process against a ClickHouse server (``bulkops worker``:
it creates and configures the topics first, then runs the worker)."""

from __future__ import annotations

import sys

from bulkops.cli import main

if __name__ == "__main__":
    sys.exit(main(["worker"]))
