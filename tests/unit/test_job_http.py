"""The HTTP executor against a real local HTTP server: signed requests, outcome lists read
back, 429 waited out without using an attempt, errors mapped to retryable or permanent, the
deadline kept, and private addresses refused unless the type allows them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web

from core.webhooks import sign
from schemas.jobs import JobBatch, JobItem, JobResult
from streams.jobs.executors import AttemptFailure
from streams.jobs.http import HttpExecutor
from tests.unit.conftest import LocalHttp

SECRET = "type-secret"
Route = Callable[[web.Request], Awaitable[web.StreamResponse]]


def job(seconds: float = 5) -> JobBatch:
    return JobBatch(
        operation_id="job_" + "d" * 32,
        sponsor_id=7,
        job_type="listing:update",
        batch_index=2,
        attempt=1,
        deadline=datetime.now(UTC) + timedelta(seconds=seconds),
        data={"price": 10},
        items=[JobItem(index=i, item_id=f"l-{i}", payload={"listingId": i}) for i in (4, 5)],
    )


def outcomes(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "outcomes": [
            {"index": i["index"], "itemId": i["itemId"], "status": "Success"} for i in body["items"]
        ]
    }


@pytest.fixture
def serve(local_http: LocalHttp) -> Callable[[Route], Awaitable[str]]:
    async def start(route: Route) -> str:
        return await local_http("/bulk", route) + "/bulk"

    return start


def executor(url: str, *, allow_private: bool = True, **kwargs: Any) -> HttpExecutor:
    return HttpExecutor(
        url, secret=SECRET, allow_private=allow_private, worker_id="bulkops-test", **kwargs
    )


async def test_a_signed_batch_is_answered_with_its_outcomes(serve: Any) -> None:
    seen: list[web.Request] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request)
        raw = await request.read()
        stamp = request.headers["X-Bulkops-Timestamp"]
        assert request.headers["X-Bulkops-Signature"] == sign(SECRET, stamp, raw)
        return web.json_response(outcomes(await request.json()))

    sent = job()
    answer = await executor(await serve(handler)).run(sent)
    assert isinstance(answer, JobResult)
    assert [(o.index, o.item_id) for o in answer.outcomes] == [(4, "l-4"), (5, "l-5")]
    assert (answer.batch_index, answer.attempt, answer.worker_id) == (2, 1, "bulkops-test")
    headers = seen[0].headers
    assert headers["Idempotency-Key"] == f"{sent.operation_id}:2:1"
    assert headers["X-Bulkops-Job-Type"] == "listing:update"


async def test_a_429_is_waited_out_and_asked_again(serve: Any) -> None:
    calls: list[int] = []

    async def handler(request: web.Request) -> web.Response:
        calls.append(1)
        if len(calls) == 1:
            return web.Response(status=429, headers={"Retry-After": "0.05"})
        if len(calls) == 2:  # an HTTP date: waited as the default second
            return web.Response(
                status=429, headers={"Retry-After": "Fri, 27 Nov 2026 10:00:00 GMT"}
            )
        return web.json_response(outcomes(await request.json()))

    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    answer = await executor(await serve(handler), sleep=sleep).run(job())
    assert isinstance(answer, JobResult) and len(calls) == 3
    assert waits == [0.05, 1.0]


@pytest.mark.parametrize(
    ("status", "body", "code", "retryable"),
    [
        (500, b"oops", "HANDLER_ERROR", True),
        (503, b"", "HANDLER_ERROR", True),
        (404, b"", "HANDLER_REFUSED", False),
        (302, b"", "HANDLER_REFUSED", False),
        (200, b"<html>not json</html>", "HANDLER_BAD_ANSWER", True),
        (200, b'{"outcomes": [{"index": 4}]}', "HANDLER_BAD_ANSWER", True),
    ],
)
async def test_bad_answers_fail_the_attempt(
    serve: Any, status: int, body: bytes, code: str, retryable: bool
) -> None:
    async def handler(request: web.Request) -> web.Response:
        headers = {"Location": "http://example.com/"} if status == 302 else {}
        return web.Response(status=status, body=body, headers=headers)

    answer = await executor(await serve(handler)).run(job())
    assert isinstance(answer, AttemptFailure)
    assert (answer.code, answer.retryable) == (code, retryable)


async def test_a_handler_slower_than_the_deadline_is_a_timeout(serve: Any) -> None:
    async def handler(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.json_response({"outcomes": []})

    started = asyncio.get_running_loop().time()
    assert await executor(await serve(handler)).run(job(seconds=0.3)) is None
    assert asyncio.get_running_loop().time() - started < 1.5


async def test_an_unreachable_handler_is_a_retryable_failure() -> None:
    answer = await executor("http://127.0.0.1:9/bulk").run(job())
    assert isinstance(answer, AttemptFailure)
    assert (answer.code, answer.retryable) == ("HANDLER_ERROR", True)


async def test_a_private_handler_needs_the_types_permission(serve: Any) -> None:
    async def handler(request: web.Request) -> web.Response:
        raise AssertionError("never called")

    answer = await executor(await serve(handler), allow_private=False).run(job())
    assert isinstance(answer, AttemptFailure)
    assert (answer.code, answer.retryable) == ("HANDLER_URL_REFUSED", False)
    assert "loopback/private/reserved" in answer.message
