"""Job operations end to end on the real broker and ClickHouse, through the REST API, with a
worker of the owning system written with ``bulkops.jobs``: exact counts with the owner's
refusals as item errors and each ticket changed once, every item shown as a job of the
``002`` plan from pending to completed, a batch that misses its timeout retried
(its late answer ignored), and a cancel after which nothing more is handed out and the type's
workers are told; malformed, foreign-keyed, replayed and unknown results changing nothing
(dead-lettered or ignored) while the stream goes on; and the HTTP executor against a real
handler (a timeout retried, a 429 waited out, requests signed with the type's secret)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
import orjson
from aiohttp import web
from confluent_kafka import Producer

from api.auth import Role
from api.producer import producer_config
from bulkops import localkafka
from bulkops.jobs import JobWorker, PermanentError, RetryableError
from core.topics import sponsor_key
from core.webhooks import sign
from schemas.jobs import SEED_JOB_TYPE_EXAMPLE, JobBatch, JobItem
from tests.integration.conftest import Server
from tests.integration.test_codegen_flow import submit, wait_terminal
from tests.integration.test_metrics import scrape, total
from tests.integration.test_processors import messages_on
from tests.integration.test_resilience import dead_letters
from tests.support import wait_for

TYPE = "ticket:update_status"
Handler = Callable[[JobItem, JobBatch], Awaitable[dict[str, Any] | None]]


class WorkerThread:
    """An SDK worker of the owning system, on a thread of its own (its own event loop)."""

    def __init__(self, server: Server, handler: Handler) -> None:
        self.worker = JobWorker(
            TYPE,
            bootstrap=server.env["BULKOPS_KAFKA_BOOTSTRAP"],
            prefix=server.env["BULKOPS_TOPIC_PREFIX"],
            handler=handler,
            poll_seconds=0.1,
        )
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self._loop.run_until_complete(self.worker.run())
        finally:
            self._loop.close()

    def __enter__(self) -> WorkerThread:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._loop.call_soon_threadsafe(self.worker.stop)
        self._thread.join(timeout=30)


def register(server: Server, **changes: Any) -> None:
    with server.client(None, Role.ADMIN) as admin:
        spec = SEED_JOB_TYPE_EXAMPLE | {"batchSize": 100} | changes
        answer = admin.post("/job-types", json=spec)
        assert answer.status_code == 201, answer.text


def tickets(count: int, status: str = "closed", **fields: Any) -> dict[str, Any]:
    return {
        "operationType": TYPE,
        "items": [{"ticketId": i} for i in range(1, count + 1)],
        "data": {"status": status},
        **fields,
    }


def all_items(client: httpx.Client, operation_id: str, status: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor: int | None = 0
    while cursor is not None:
        page = client.get(
            f"/items/{operation_id}", params={"status": status, "cursor": cursor, "limit": 500}
        )
        assert page.status_code == 200, page.text
        found.extend(page.json()["data"]["items"])
        cursor = page.json()["data"]["nextCursor"]
    return found


def test_tickets_updated_with_refusals_counted_exactly(make_server: Any) -> None:
    server: Server = make_server().start()
    register(server)
    changed: Counter[int] = Counter()

    async def update(item: JobItem, batch: JobBatch) -> dict[str, Any]:
        ticket = int(item.payload["ticketId"])
        if ticket % 50 == 0:
            raise PermanentError("FORBIDDEN", f"Insufficient permissions for ticket {ticket}")
        changed[ticket] += 1
        return {"ticketId": ticket, "status": batch.data["status"]}

    client = server.client(sponsor_id=61)
    total = 3000
    with WorkerThread(server, update):
        operation_id = submit(client, tickets(total), "/jobs")
        status = wait_terminal(client, operation_id, timeout=120)

    metrics = status["metrics"]
    assert (status["status"], status["jobType"]) == ("PartiallyCompleted", TYPE)
    assert (metrics["successfulItems"], metrics["failedItems"], metrics["skippedItems"]) == (
        2940,
        60,
        0,
    )
    assert set(changed) == {t for t in range(1, total + 1) if t % 50} and set(changed.values()) == {
        1
    }
    failed = all_items(client, operation_id, "Failed")
    assert sorted(i["index"] for i in failed) == [t - 1 for t in range(50, total + 1, 50)]
    assert {i["errorCode"] for i in failed} == {"FORBIDDEN"}
    assert failed[0]["errorMessage"].startswith("Insufficient permissions for ticket")
    done = client.get(f"/items/{operation_id}", params={"status": "Success", "limit": 1})
    first = done.json()["data"]["items"][0]
    assert first["resultData"] == '{"ticketId":1,"status":"closed"}'
    aggregates = client.get(f"/aggregates/{operation_id}").json()["data"]
    assert aggregates["byStatus"] == {"Success": 2940, "Failed": 60}
    assert aggregates["byError"][0] | {"errorCategory": None} == {
        "errorCode": "FORBIDDEN",
        "errorCategory": None,
        "count": 60,
        "retryable": 0,
    }
    assert server.client(sponsor_id=62).get(f"/status/{operation_id}").status_code == 404


def test_a_batch_that_misses_its_timeout_is_retried_and_its_late_answer_ignored(
    make_server: Any,
) -> None:
    server: Server = make_server().start()
    register(server, timeoutSeconds=2, backoffSeconds=0.2, maxRetries=2)
    attempts: Counter[tuple[int, int]] = Counter()

    async def slow_first_attempt(item: JobItem, batch: JobBatch) -> dict[str, Any]:
        attempts[(batch.batch_index, batch.attempt)] += 1
        late = batch.batch_index == 1 and batch.attempt == 1
        if late and item.index == batch.items[0].index:
            await asyncio.sleep(3)  # past the 2 s deadline: the batch is answered late
        return {"ok": True}

    client = server.client(sponsor_id=63)
    with WorkerThread(server, slow_first_attempt):
        operation_id = submit(client, tickets(300), "/jobs")
        status = wait_terminal(client, operation_id, timeout=120)
    assert status["status"] == "Completed"
    assert status["metrics"]["successfulItems"] == 300
    assert attempts[(1, 1)] == 100 and attempts[(1, 2)] == 100
    # (A batch queued behind the late one may have missed its deadline too: the SDK skips
    # a batch past its deadline, and it goes again as a TIMEOUT retry.)
    log = server.log_path.read_text(errors="replace")
    assert f"operation {operation_id}: answer to batch 1 attempt 1" in log


def test_a_stop_does_not_wait_for_a_job_batch_and_the_restart_runs_it(make_server: Any) -> None:
    """A worker asked to stop while a job batch waits for its owner (for up to the type's
    two-minute timeout) stops within its grace, and the batch runs after the restart."""
    server: Server = make_server(BULKOPS_SHUTDOWN_GRACE_SECONDS="1").start()
    register(server, timeoutSeconds=120)
    client = server.client(sponsor_id=66)
    operation_id = submit(client, tickets(5), "/jobs")
    wait_for(
        lambda: messages_on(server, server.topics.jobs(TYPE).name) >= 1,
        timeout=60,
        message="the batch handed out to the type's workers",
    )
    assert server.process is not None
    stopping = time.monotonic()
    server.stop(timeout=60)
    took = time.monotonic() - stopping
    assert server.process.returncode == 0, server.log_tail()
    assert took < 15, f"the stop took {took:.1f} s"
    assert "messages still in flight after 1.0 s" in server.log_path.read_text(errors="replace")

    changed: Counter[int] = Counter()

    async def update(item: JobItem, batch: JobBatch) -> dict[str, Any]:
        changed[int(item.payload["ticketId"])] += 1
        return {"ok": True}

    server.start()
    with WorkerThread(server, update):
        status = wait_terminal(client, operation_id, timeout=120)
    assert status["status"] == "Completed", status
    assert status["metrics"]["successfulItems"] == 5
    assert set(changed) == {1, 2, 3, 4, 5}


def second_worker(server: Server, name: str) -> Server:
    """Another ``serve`` on ``server``'s topics, joining its worker group (its own chDB and
    table store, no processors)."""
    port = localkafka.free_port()
    data = server.log_path.parent / name
    return Server(
        env={
            **server.env,
            "BULKOPS_INSTANCE_ID": name,
            "BULKOPS_CHDB_PATH": str(data / "chdb"),
            "BULKOPS_WORKER_DATA_DIR": str(data / "worker"),
            "BULKOPS_PORT": str(port),
            "BULKOPS_METRICS_PORT": str(localkafka.free_port()),
            "BULKOPS_PROCESSORS": "0",
        },
        log_path=server.log_path.parent / f"serve-{name}.log",
        port=port,
        jwt_secret=server.jwt_secret,
    )


def test_a_rebalance_does_not_wait_for_a_job_batch_and_the_batch_starts_over(
    make_server: Any,
) -> None:
    """A worker joining the group while a job batch waits for its owner (for up to the
    type's two-minute timeout) gets its partitions within the grace: the batch is handed
    back and handed out again, and still counts once."""
    grace = {"BULKOPS_SHUTDOWN_GRACE_SECONDS": "1"}
    server: Server = make_server(BULKOPS_INSTANCE_ID="first", **grace).start()
    register(server, timeoutSeconds=120)
    client = server.client(sponsor_id=67)
    operation_id = submit(client, tickets(5), "/jobs")
    job_topic = server.topics.jobs(TYPE).name
    wait_for(
        lambda: messages_on(server, job_topic) >= 1,
        timeout=60,
        message="the batch handed out to the type's workers",
    )
    joining = second_worker(server, "second")
    try:
        joined = time.monotonic()
        joining.start()  # its API is ready once its worker has joined the group
        wait_for(
            lambda: messages_on(server, job_topic) >= 2,
            timeout=60,
            message="the batch handed out again after the rebalance",
        )
        took = time.monotonic() - joined
        # Before, the rebalance waited for the batch until the broker gave up on the first
        # worker (Faust's rebalance timeout, 60 s), which then had to join again: 77 s.
        assert took < 45, f"joining and handing the batch out again took {took:.1f} s"
        log = server.log_path.read_text(errors="replace")
        assert "messages still in flight after 1.0 s; job batches are handed back" in log
        assert f"operation {operation_id}: batch 0 handed back for a rebalance" in log
    finally:
        joining.stop(timeout=60)
        joining.close_clients()
    assert joining.process is not None and joining.process.returncode == 0, joining.log_tail()

    changed: Counter[int] = Counter()

    async def update(item: JobItem, batch: JobBatch) -> dict[str, Any]:
        changed[int(item.payload["ticketId"])] += 1
        return {"ok": True}

    with WorkerThread(server, update):
        status = wait_terminal(client, operation_id, timeout=120)
    assert status["status"] == "Completed", status
    assert status["metrics"]["successfulItems"] == 5
    assert status["metrics"]["processedItems"] == 5
    assert set(changed) == {1, 2, 3, 4, 5}


def test_a_cancel_hands_out_nothing_more_and_batches_in_flight_settle(make_server: Any) -> None:
    server: Server = make_server().start()
    timeout = 30.0
    register(server, batchSize=20, maxConcurrency=2, timeoutSeconds=timeout)
    handed_out: list[JobBatch] = []

    async def slowly(item: JobItem, batch: JobBatch) -> dict[str, Any]:
        if item.index == batch.items[0].index:
            handed_out.append(batch)
        await asyncio.sleep(0.005)
        return {"ok": True}

    client = server.client(sponsor_id=64)
    total = 4000
    with WorkerThread(server, slowly) as owner:
        operation_id = submit(client, tickets(total), "/jobs")
        wait_for(lambda: len(handed_out) >= 5, timeout=60, message="jobs under way")
        answer = client.post(f"/cancel/{operation_id}")
        acknowledged = time.time()
        assert answer.status_code == 200, answer.text
        status = wait_terminal(client, operation_id, timeout=120)
        wait_for(
            lambda: owner.worker.is_cancelled(operation_id),
            timeout=30,
            message="the type's worker told of the cancel",
        )

    metrics = status["metrics"]
    assert status["status"] == "Cancelled"
    assert metrics["successfulItems"] + metrics["skippedItems"] + metrics["failedItems"] == total
    assert 0 < metrics["successfulItems"] < total and metrics["skippedItems"] > 0
    assert metrics["successfulItems"] == 20 * len({b.batch_index for b in handed_out})
    sent_at = [(b.deadline - timedelta(seconds=timeout)).timestamp() for b in handed_out]
    assert max(sent_at) <= acknowledged + 0.5, "a batch was handed out after the cancel answer"


class HandlerThread:
    """An owning system's HTTP handler (aiohttp), on a thread and event loop of its own."""

    def __init__(self, route: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> None:
        self.port = localkafka.free_port()
        self._route = route
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bulk"

    def _run(self) -> None:
        async def start() -> None:
            app = web.Application()
            app.router.add_post("/bulk", self._route)
            self._runner = web.AppRunner(app)
            await self._runner.setup()
            await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
            self._started.set()

        self._loop.run_until_complete(start())
        self._loop.run_forever()
        assert self._runner is not None
        self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()

    def __enter__(self) -> HandlerThread:
        self._thread.start()
        assert self._started.wait(10)
        return self

    def __exit__(self, *_: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)


def test_the_http_executor_retries_timeouts_and_waits_out_429s(make_server: Any) -> None:
    server: Server = make_server().start()
    calls: Counter[tuple[int, int]] = Counter()
    secret: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        raw = await request.read()
        stamp = request.headers["X-Bulkops-Timestamp"]
        if request.headers["X-Bulkops-Signature"] != sign(secret[0], stamp, raw):
            return web.Response(status=401)
        batch = JobBatch.model_validate_json(raw)
        calls[(batch.batch_index, batch.attempt)] += 1
        if batch.batch_index == 1 and batch.attempt == 1:
            await asyncio.sleep(3)  # past the 2 s timeout
        if batch.batch_index == 2 and calls[(2, batch.attempt)] == 1:
            return web.Response(status=429, headers={"Retry-After": "0.2"})
        answer = {
            "outcomes": [
                {"index": i.index, "itemId": i.item_id, "status": "Success", "resultData": {}}
                for i in batch.items
            ]
        }
        return web.json_response(answer)

    with HandlerThread(handle) as handler:
        with server.client(None, Role.ADMIN) as admin:
            spec = {
                "name": "listing:update",
                "executor": "http",
                "handlerUrl": handler.url,
                "allowPrivateHandler": True,
                "batchSize": 50,
                "timeoutSeconds": 2,
                "backoffSeconds": 0.2,
            }
            assert admin.post("/job-types", json=spec).status_code == 201
            shown = admin.get("/job-types/listing:update/signing-secret")
            secret.append(shown.json()["data"]["secret"])
        client = server.client(sponsor_id=65)
        body = {"operationType": "listing:update", "items": [{"id": n} for n in range(200)]}
        operation_id = submit(client, body, "/jobs")
        status = wait_terminal(client, operation_id, timeout=120)
    assert status["status"] == "Completed", status
    assert status["metrics"]["successfulItems"] == 200
    assert calls[(1, 1)] == 1 and calls[(1, 2)] == 1  # timed out, then retried
    assert calls[(2, 1)] == 2 and calls[(2, 2)] == 0  # a 429 is not an attempt
    assert {k for k in calls if k[0] in (0, 3)} == {(0, 1), (3, 1)}


def test_retry_failed_runs_only_the_retryable_failures_again_with_their_item_ids(
    make_server: Any,
) -> None:
    server: Server = make_server().start()
    register(server, maxRetries=0)
    seen: list[str] = []
    first_round = True

    async def flaky(item: JobItem, batch: JobBatch) -> dict[str, Any]:
        ticket = int(item.payload["ticketId"])
        seen.append(item.item_id)
        if ticket % 10 == 0:
            raise PermanentError("FORBIDDEN", "Insufficient permissions")
        if ticket % 10 == 5 and first_round:
            raise RetryableError("LOCKED", "The ticket is being edited")
        return {"ticketId": ticket}

    client = server.client(sponsor_id=66)
    with WorkerThread(server, flaky):
        operation_id = submit(client, tickets(200), "/jobs")
        status = wait_terminal(client, operation_id)
        assert status["metrics"]["failedItems"] == 40
        plan = client.post(f"/retry/{operation_id}", params={"dryRun": "true"})
        assert plan.status_code == 200 and plan.json()["data"]["totalItems"] == 20
        first_round = False
        seen.clear()
        answer = client.post(f"/retry/{operation_id}")
        assert answer.status_code == 202, answer.text
        data = answer.json()["data"]
        assert (data["retryableItemsCount"], data["nonRetryableItemsCount"]) == (20, 20)
        retried = wait_terminal(client, data["retryOperationId"])
    assert retried["status"] == "Completed" and retried["retryOf"] == operation_id
    assert retried["metrics"]["successfulItems"] == 20
    assert sorted(seen) == sorted(f"{operation_id}:{t - 1}" for t in range(5, 201, 10))


def jobs(client: httpx.Client, operation_id: str, **params: Any) -> list[dict[str, Any]]:
    answer = client.get(f"/jobs/{operation_id}", params={"limit": 1000, **params})
    assert answer.status_code == 200, answer.text
    page: list[dict[str, Any]] = answer.json()["data"]["jobs"]
    return page


def test_each_item_shows_as_a_job_of_the_002_plan_pending_to_completed(
    make_server: Any,
) -> None:
    server: Server = make_server().start()
    register(server, batchSize=10, maxConcurrency=1, maxRetries=2, backoffSeconds=0.1)
    held = threading.Event()
    tried: Counter[int] = Counter()

    async def work(item: JobItem, batch: JobBatch) -> dict[str, Any]:
        tried[item.index] += 1
        if batch.batch_index == 0:
            await asyncio.to_thread(held.wait, 60)
        if item.index == 15 and tried[15] == 1:
            raise RetryableError("LOCKED", "The ticket is being edited")
        if item.index == 25:
            raise PermanentError("FORBIDDEN", "Insufficient permissions for ticket 26")
        return {"ok": True}

    client = server.client(sponsor_id=67)
    with WorkerThread(server, work):
        operation_id = submit(client, tickets(40, priority=7), "/jobs")
        wait_for(
            lambda: len(jobs(client, operation_id, status="processing")) == 10,
            timeout=60,
            message="the first batch shown as processing",
        )
        shown = {job["index"]: job for job in jobs(client, operation_id)}
        assert [shown[i]["status"] for i in (0, 9, 10, 39)] == [
            "processing",
            "processing",
            "pending",
            "pending",
        ]
        assert shown[0]["id"] is None and shown[0]["processedAt"] is None
        held.set()
        wait_terminal(client, operation_id)
    finished = {job["index"]: job for job in jobs(client, operation_id)}
    assert len(finished) == 40
    assert Counter(job["status"] for job in finished.values()) == {"completed": 39, "failed": 1}
    failed = finished[25]
    assert (failed["error"], failed["errorCode"], failed["retryCount"]) == (
        "Insufficient permissions for ticket 26",
        "FORBIDDEN",
        0,
    )
    retried = finished[15]
    assert (retried["status"], retried["retryCount"], retried["maxRetries"]) == ("completed", 1, 2)
    assert retried["id"] == f"{operation_id}:15" and retried["processedAt"] is not None
    assert {job["priority"] for job in finished.values()} == {7}
    assert {job["type"] for job in finished.values()} == {TYPE}
    assert [j["index"] for j in jobs(client, operation_id, status="failed")] == [25]
    assert server.client(sponsor_id=68).get(f"/jobs/{operation_id}").status_code == 404


def ignored_results(server: Server) -> float:
    return total(scrape(server), "bulkops_job_results_total", result="ignored")


def test_bad_replayed_and_foreign_results_change_nothing_and_the_stream_goes_on(
    make_server: Any,
) -> None:
    server: Server = make_server().start()
    register(server, batchSize=50)
    answered: list[JobBatch] = []

    async def work(item: JobItem, batch: JobBatch) -> dict[str, Any]:
        if item.index == batch.items[0].index:
            answered.append(batch)
        return {"ok": True}

    client = server.client(sponsor_id=69)
    with WorkerThread(server, work):
        first = submit(client, tickets(100), "/jobs")
        before = wait_terminal(client, first)
        replay = answered[0]
        failing = [
            {"index": i.index, "itemId": i.item_id, "status": "Failed", "errorCode": "LATE"}
            | {"errorMessage": "a copy", "isRetryable": False}
            for i in replay.items
        ]
        result = {
            "operationId": first,
            "sponsorId": 69,
            "jobType": TYPE,
            "batchIndex": replay.batch_index,
            "attempt": replay.attempt,
            "workerId": "replayer",
            "outcomes": failing,
            "completedAt": "2026-11-28T00:00:00Z",
        }
        bad = [
            (sponsor_key(69), b"{not json"),
            (sponsor_key(70), orjson.dumps(result)),  # keyed by another sponsor
        ]
        ignored = [
            (sponsor_key(69), orjson.dumps(result)),  # a second answer to a settled batch
            (sponsor_key(69), orjson.dumps(result | {"operationId": f"job_{'0' * 32}"})),
        ]
        producer = Producer(producer_config(server.env["BULKOPS_KAFKA_BOOTSTRAP"]))
        for key, value in bad + ignored:
            producer.produce(server.topics.job_results.name, key=key, value=value)
        assert producer.flush(10) == 0
        letters = dead_letters(
            server.env["BULKOPS_KAFKA_BOOTSTRAP"], server.topics.dead_letter.name, expected=2
        )
        wait_for(lambda: ignored_results(server) >= 2, timeout=60, message="answers ignored")
        second = submit(client, tickets(100), "/jobs")
        assert wait_terminal(client, second)["metrics"]["successfulItems"] == 100

    assert {letter.source_topic for letter in letters} == {server.topics.job_results.name}
    assert "{not json" in {letter.payload for letter in letters}  # (two partitions: any order)
    after = client.get(f"/status/{first}").json()["data"]
    assert after["metrics"] == before["metrics"] and after["status"] == "Completed"
    assert jobs(client, first, status="failed") == []
