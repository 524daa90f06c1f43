"""``python -m examples.tickets``: the example ticket service in the foreground."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from examples.serving import add_bulkops_arguments, checked_bulkops_arguments
from examples.tickets.runner import TicketServiceConfig, TicketServiceThread

ADMIN_VARIABLE = "TICKETS_BULKOPS_ADMIN_TOKEN"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    add_bulkops_arguments(parser, ADMIN_VARIABLE)
    parser.add_argument("--db", type=Path, default=Path(".data/tickets/tickets.db"))
    parser.add_argument("--port", type=int, default=8030, help="the HTTP handler's port")
    parser.add_argument("--executor", choices=("kafka", "http"), default="kafka")
    parser.add_argument("--demo-tenant", type=int, help="seed demo tickets for this sponsor")
    parser.add_argument("--demo-tickets", type=int, default=1000)
    args = parser.parse_args()
    checked_bulkops_arguments(parser, args, ADMIN_VARIABLE)
    runner = TicketServiceThread(
        TicketServiceConfig(
            bulkops_url=args.bulkops_url,
            admin_token=args.admin_token,
            bootstrap=args.bootstrap,
            prefix=args.prefix,
            db_path=args.db,
            http_port=args.port,
            demo_tenant=args.demo_tenant,
            demo_tickets=args.demo_tickets,
            executor=args.executor,
        )
    ).start()
    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.set())
    stopped.wait()
    runner.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
