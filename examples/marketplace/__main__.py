"""``python -m examples.marketplace``: the example marketplace back office in the foreground."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from pathlib import Path

from examples.marketplace.service import MarketplaceService, SmtpServer, register
from examples.marketplace.store import MarketplaceStore
from examples.serving import (
    ServiceThread,
    add_bulkops_arguments,
    admin_client,
    checked_bulkops_arguments,
)

log = logging.getLogger("marketplace")


ADMIN_VARIABLE = "MARKETPLACE_BULKOPS_ADMIN_TOKEN"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    add_bulkops_arguments(parser, ADMIN_VARIABLE)
    parser.add_argument("--db", type=Path, default=Path(".data/marketplace/marketplace.db"))
    parser.add_argument("--smtp-host", default="127.0.0.1")
    parser.add_argument("--smtp-port", type=int, default=2525, help="the simulator's in dev")
    parser.add_argument("--demo-tenant", type=int, help="seed demo inventory for this sponsor")
    args = parser.parse_args()
    checked_bulkops_arguments(parser, args, ADMIN_VARIABLE)
    store = MarketplaceStore(args.db)
    if args.demo_tenant is not None:
        store.seed(
            args.demo_tenant,
            skus=[f"SKU-{i}" for i in range(1, 101)],
            devices=[f"device-{i:04d}" for i in range(1, 101)],
        )
    with admin_client(args.bulkops_url, args.admin_token) as client:
        register(client)
    service = MarketplaceService(
        store,
        bootstrap=args.bootstrap,
        prefix=args.prefix,
        smtp=SmtpServer(args.smtp_host, args.smtp_port),
    )
    thread = ServiceThread("marketplace", service)
    thread.start()
    log.info("example marketplace: 8 job types, database %s", args.db)
    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.set())
    stopped.wait()
    thread.stop()
    store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
