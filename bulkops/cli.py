"""``bulkops``: run the system locally, manage the dev broker, mint dev tokens."""

from __future__ import annotations

import argparse
import contextlib
import logging
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from bulkops import localkafka
from bulkops.client import BulkopsClient, BulkopsError
from bulkops.local import ensure_topics, run_http, start_examples, start_simulator
from bulkops.processes import Processors
from core import logs
from core.settings import ApiSettings, ClientSettings, WorkerSettings
from core.topics import Topics

if TYPE_CHECKING:
    pass

log = logging.getLogger("bulkops")
BROKER_DIR = Path(".data/kafka")


def cmd_simulator(args: argparse.Namespace) -> int:
    """The provider simulator alone, until interrupted."""
    import threading

    start_simulator(args.http_port, args.smtp_port, args.rate, args.latency_ms)
    with contextlib.suppress(KeyboardInterrupt):
        threading.Event().wait()
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    """Broker (started here unless one already answers) + topics + API and worker in one process."""
    from bulkops.runtime import combined_app

    api_settings = ApiSettings()
    worker_settings = WorkerSettings()
    if args.simulator:
        start_simulator(8025, worker_settings.smtp_port, 0.0, 0.0)
    started_broker = False
    if not localkafka.is_reachable(api_settings.kafka_bootstrap, timeout=2):
        host, _, port = api_settings.kafka_bootstrap.rpartition(":")
        if host not in ("127.0.0.1", "localhost"):
            log.error("no Kafka broker answers at %s", api_settings.kafka_bootstrap)
            return 1
        localkafka.start(args.broker_dir, port=int(port))
        started_broker = True
    examples: list[subprocess.Popen[bytes]] = []
    try:
        ensure_topics(api_settings)
        app = combined_app(api_settings, worker_settings)
        base = f"http://{api_settings.host}:{api_settings.port}"
        print(
            f"Bulkops API on {base} — dashboard at {base}/dashboard — docs at {base}/docs\n"
            "Sign in to the dashboard with a token: bulkops token --sponsor-id 7",
            flush=True,
        )
        if args.examples:
            examples = start_examples(api_settings, base, worker_settings.smtp_port)
        with Processors(worker_settings.processors):
            run_http(app, api_settings)
    finally:
        for example in examples:
            example.terminate()
        for example in examples:
            example.wait(timeout=30)
        if started_broker and not args.keep_broker:
            localkafka.stop(args.broker_dir)
    return 0


def cmd_serve(_: argparse.Namespace) -> int:
    """API + worker in one process against an existing broker (what ``up`` runs)."""
    from bulkops.runtime import combined_app

    api_settings = ApiSettings()
    worker_settings = WorkerSettings()
    ensure_topics(api_settings)
    with Processors(worker_settings.processors):
        run_http(combined_app(api_settings, worker_settings), api_settings)
    return 0


def cmd_api(_: argparse.Namespace) -> int:
    from bulkops.runtime import api_only_app

    settings = ApiSettings()
    if settings.clickhouse_dsn is None:
        log.error(
            "the API alone needs BULKOPS_CLICKHOUSE_DSN "
            "(embedded chDB is single-process: use `serve`)"
        )
        return 2
    run_http(api_only_app(settings), settings)
    return 0


def cmd_worker(_: argparse.Namespace) -> int:
    from streams.worker import run as run_worker

    settings = WorkerSettings()
    if settings.clickhouse_dsn is None:
        log.error(
            "the worker alone needs BULKOPS_CLICKHOUSE_DSN "
            "(embedded chDB is single-process: use `serve`)"
        )
        return 2
    ensure_topics(settings)
    with Processors(settings.processors):
        run_worker(settings)
    return 0


def cmd_processor(args: argparse.Namespace) -> int:
    """One processor process (``serve``, ``up`` and ``worker`` start theirs)."""
    from streams import processor

    settings = WorkerSettings()
    ensure_topics(settings)
    processor.run(settings, args.index, watch_parent=args.watch_parent)
    return 0


def cmd_kafka(args: argparse.Namespace) -> int:
    if args.action == "fetch":
        print(localkafka.fetch())
    elif args.action == "start":
        broker = localkafka.start(args.broker_dir, port=args.port)
        print(broker.bootstrap)
    elif args.action == "stop" and not localkafka.stop(args.broker_dir):
        print("no broker was running", file=sys.stderr)
    return 0


def cmd_topics(_: argparse.Namespace) -> int:
    settings = ApiSettings()
    ensure_topics(settings)
    for spec in Topics(settings.topic_prefix).all():
        print(spec.name)
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    from api.auth import Role, mint_token

    settings = ApiSettings()
    role = Role(args.role)
    if role is Role.SPONSOR and args.sponsor_id is None:
        print("--sponsor-id is required for a Sponsor token", file=sys.stderr)
        return 2
    print(
        mint_token(
            settings.jwt_secret,
            subject=args.subject
            or (f"sponsor_user_{args.sponsor_id}" if args.sponsor_id else "admin"),
            role=role,
            sponsor_id=args.sponsor_id,
            ttl=timedelta(hours=args.hours),
        )
    )
    return 0


def _client(args: argparse.Namespace) -> BulkopsClient:
    settings = ClientSettings()
    token = args.token or settings.token
    if not token:
        raise SystemExit("a token is needed: --token or BULKOPS_TOKEN (see `bulkops token`)")
    return BulkopsClient(args.url or settings.api_url, token)


def _follow(client: BulkopsClient, operation_id: str) -> int:
    """A live progress bar until the operation ends; exit code 0 only for Completed."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = Console(stderr=True)
    console.print(f"operation [bold]{operation_id}[/bold]")
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("Queued", total=None)

        def show(status: dict[str, object]) -> None:
            metrics = status["metrics"]
            assert isinstance(metrics, dict)
            progress.update(
                task,
                total=metrics["totalItems"],
                completed=metrics["processedItems"],
                description=str(status["status"]),
            )

        final = client.wait(operation_id, on_progress=show)
    metrics = final["metrics"]
    console.print(
        f"{final['status']}: {metrics['successfulItems']} succeeded, "
        f"{metrics['failedItems']} failed, {metrics['skippedItems']} skipped"
    )
    for step in final.get("nextSteps", []):
        console.print(f"  next: {step}")
    return 0 if final["status"] == "Completed" else 1


def cmd_submit_codes(args: argparse.Namespace) -> int:
    with _client(args) as client:
        operation_id = client.generate_codes(
            operationName=args.name,
            subscriptionTierId=args.tier,
            quantity=args.quantity,
            codePrefix=args.prefix,
            validityDays=args.validity_days,
            processing={"batchSize": args.batch_size},
        )
        return _follow(client, operation_id)


def cmd_submit_links(args: argparse.Namespace) -> int:
    import orjson

    body = orjson.loads(args.file.read_bytes())
    with _client(args) as client:
        return _follow(client, client.send_links(**body))


def cmd_watch(args: argparse.Namespace) -> int:
    with _client(args) as client:
        return _follow(client, args.operation_id)


def cmd_sql(args: argparse.Namespace) -> int:
    """Print a JSON result as a table; write CSV to stdout or ``--output``, Parquet to
    ``--output`` only (it is binary)."""
    from rich.console import Console
    from rich.table import Table

    if args.format == "parquet" and args.output is None:
        raise SystemExit("--format parquet needs --output FILE")
    with _client(args) as client:
        try:
            response = client.sql(args.query, args.format)
        except BulkopsError as exc:
            Console(stderr=True).print(f"[red]{exc}[/red]")
            return 1
    if args.output is not None:
        args.output.write_bytes(response.content)
        return 0
    if args.format == "csv":
        sys.stdout.write(response.text)
        return 0
    data = response.json()["data"]
    table = Table(*(f"{c['name']}\n[dim]{c['type']}[/dim]" for c in data["columns"]))
    for row in data["rows"]:
        table.add_row(*(str(row[c["name"]]) for c in data["columns"]))
    Console().print(table)
    Console(stderr=True).print(
        f"{data['rowCount']} rows in {data['elapsedSeconds']:.3f} s ({data['rowsRead']} rows read)"
    )
    return 0


def cmd_export_schemas(args: argparse.Namespace) -> int:
    from schemas.export import write_schemas

    print(write_schemas(args.output))
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="bulkops", description=__doc__)
    sub = root.add_subparsers(dest="command", required=True)
    _running_commands(sub)
    _client_commands(sub)
    _tool_commands(sub)
    return root


def _running_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Running the system and its parts: up, simulator, serve, api, worker, kafka, topics."""
    up = sub.add_parser("up", help="start broker + API + worker locally (embedded ClickHouse)")
    up.add_argument("--broker-dir", type=Path, default=BROKER_DIR)
    up.add_argument("--keep-broker", action="store_true", help="leave the broker running on exit")
    up.add_argument(
        "--no-simulator",
        dest="simulator",
        action="store_false",
        help="do not start the provider simulator (real providers are configured)",
    )
    up.add_argument(
        "--no-examples",
        "--no-tickets",
        dest="examples",
        action="store_false",
        help="do not start the example systems (seed 003's tickets, seed 002's marketplace)",
    )
    up.set_defaults(func=cmd_up)

    sim = sub.add_parser("simulator", help="the SMS/WhatsApp/SMTP provider simulator on 127.0.0.1")
    sim.add_argument("--http-port", type=int, default=8025)
    sim.add_argument("--smtp-port", type=int, default=2525)
    sim.add_argument("--rate", type=float, default=0.0, help="sends/s per sender; 0 = unlimited")
    sim.add_argument("--latency-ms", type=float, default=0.0)
    sim.set_defaults(func=cmd_simulator)

    sub.add_parser(
        "serve", help="API + worker in one process, broker already running"
    ).set_defaults(func=cmd_serve)
    sub.add_parser("api", help="the API alone (ClickHouse server mode)").set_defaults(func=cmd_api)
    processor = sub.add_parser(
        "processor", help="a processor process: code batches beside a worker (any mode)"
    )
    processor.add_argument("--index", type=int, default=0, help="its number on this host")
    processor.add_argument(
        "--watch-parent", action="store_true", help="stop when the starting process is gone"
    )
    processor.set_defaults(func=cmd_processor)
    sub.add_parser("worker", help="the Faust worker alone (ClickHouse server mode)").set_defaults(
        func=cmd_worker
    )

    kafka = sub.add_parser("kafka", help="the local development broker")
    kafka.add_argument("action", choices=["fetch", "start", "stop"])
    kafka.add_argument("--broker-dir", type=Path, default=BROKER_DIR)
    kafka.add_argument("--port", type=int, default=9092)
    kafka.set_defaults(func=cmd_kafka)

    sub.add_parser("topics", help="create the topics (idempotent) and list them").set_defaults(
        func=cmd_topics
    )


def _tool_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Tokens and the exported JSON Schemas."""
    token = sub.add_parser("token", help="mint a bearer token signed with BULKOPS_JWT_SECRET")
    token.add_argument("--role", choices=["Sponsor", "Admin"], default="Sponsor")
    token.add_argument("--sponsor-id", type=int)
    token.add_argument("--subject")
    token.add_argument("--hours", type=float, default=12)
    token.set_defaults(func=cmd_token)

    export = sub.add_parser(
        "export-schemas", help="write the JSON Schemas of requests and messages"
    )
    export.add_argument("--output", type=Path, default=Path("schemas/jsonschema/v1.json"))
    export.set_defaults(func=cmd_export_schemas)


def _client_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Talking to a running API: submit, watch, query."""

    def client_options(command: argparse.ArgumentParser) -> None:
        command.add_argument("--url", help="API base URL (BULKOPS_API_URL)")
        command.add_argument("--token", help="bearer token (BULKOPS_TOKEN)")

    codes = sub.add_parser("submit-codes", help="generate codes and follow them to the end")
    client_options(codes)
    codes.add_argument("--quantity", type=int, required=True)
    codes.add_argument("--tier", type=int, default=1, help="subscriptionTierId")
    codes.add_argument("--prefix", default="BULK")
    codes.add_argument("--validity-days", type=int, default=365)
    codes.add_argument("--batch-size", type=int, default=500)
    codes.add_argument("--name", default="Bulk Code Generation")
    codes.set_defaults(func=cmd_submit_codes)

    links = sub.add_parser("submit-links", help="send links from a JSON body file and follow it")
    client_options(links)
    links.add_argument("file", type=Path, help="a send-links request body (JSON)")
    links.set_defaults(func=cmd_submit_links)

    watch = sub.add_parser("watch", help="follow an operation with a progress bar")
    client_options(watch)
    watch.add_argument("operation_id")
    watch.set_defaults(func=cmd_watch)

    sql = sub.add_parser(
        "sql", help="run a read-only SQL query on the analytics store (Admin token)"
    )
    client_options(sql)
    sql.add_argument("query", help='e.g. "SELECT channel, count() FROM v1_sends GROUP BY channel"')
    sql.add_argument("--format", choices=["json", "csv", "parquet"], default="json")
    sql.add_argument("--output", type=Path, help="write the result to this file")
    sql.set_defaults(func=cmd_sql)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings = ApiSettings()
    logs.configure(settings.log_level, settings.log_format)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
