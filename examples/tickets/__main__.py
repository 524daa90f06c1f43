"""``python -m examples.tickets``: the example ticket service in the foreground."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from pathlib import Path

from examples.serving import bulkops_answers
from examples.tickets.runner import TicketServiceConfig, TicketServiceThread


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bulkops-url", default="http://127.0.0.1:8000")
    parser.add_argument(
        "--admin-token",
        default=os.environ.get("TICKETS_BULKOPS_ADMIN_TOKEN"),
        help="an Admin's token for Bulkops (or TICKETS_BULKOPS_ADMIN_TOKEN)",
    )
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--prefix", default="bulkops", help="Bulkops' topic prefix")
    parser.add_argument("--db", type=Path, default=Path(".data/tickets/tickets.db"))
    parser.add_argument("--port", type=int, default=8030, help="the HTTP handler's port")
    parser.add_argument("--executor", choices=("kafka", "http"), default="kafka")
    parser.add_argument("--demo-tenant", type=int, help="seed demo tickets for this sponsor")
    parser.add_argument("--demo-tickets", type=int, default=1000)
    parser.add_argument(
        "--wait-seconds", type=float, default=0, help="wait this long for Bulkops to answer"
    )
    args = parser.parse_args()
    if not args.admin_token:
        parser.error("--admin-token (or TICKETS_BULKOPS_ADMIN_TOKEN) is required")
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if not bulkops_answers(args.bulkops_url, args.wait_seconds):
        parser.error(f"Bulkops does not answer at {args.bulkops_url}")
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
