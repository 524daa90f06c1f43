"""The HTTP executor: each attempt of a batch is POSTed to the type's ``handlerUrl``.

The request body is the :class:`~schemas.jobs.JobBatch`; it is signed like the webhooks
(``X-Bulkops-Timestamp``, ``X-Bulkops-Signature: sha256=HMAC(secret, "{timestamp}.{body}")``
with the type's own secret, derived from ``BULKOPS_WEBHOOK_SECRET``) and carries
``Idempotency-Key: <operation>:<batch>:<attempt>``. The answer is a 2xx with
``{"outcomes": [...]}`` (:class:`~schemas.jobs.JobHttpAnswer`), one outcome per item.

* a 429 waits its ``Retry-After`` (1 s without one) and asks again, within the deadline: a
  throttled request is not an attempt;
* a 5xx, a 408, an answer that is not one outcome list, or no connection: the attempt failed,
  retryable (``HANDLER_ERROR``, ``HANDLER_BAD_ANSWER``);
* another 4xx or a redirect: permanent (``HANDLER_REFUSED``); a URL that resolves to a
  private address without ``allowPrivateHandler``: permanent (``HANDLER_URL_REFUSED``);
* no answer by the deadline: ``None``, a ``TIMEOUT`` like the Kafka executor's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import aiohttp
from pydantic import ValidationError

from core.webhooks import UnsafeTarget, check_target, sign
from schemas.common import ErrorCategory
from schemas.jobs import JobBatch, JobHttpAnswer, JobResult
from streams.jobs.executors import AttemptFailure

#: Answers longer than this are not read (a batch of 10,000 outcomes is far below it).
MAX_ANSWER_BYTES = 16 * 1024 * 1024
DEFAULT_RETRY_AFTER = 1.0


class HttpExecutor:
    def __init__(
        self,
        url: str,
        *,
        secret: str,
        allow_private: bool,
        worker_id: str,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._url = url
        self._secret = secret
        self._allow_private = allow_private
        self._worker_id = worker_id
        self._sleep = sleep

    async def run(self, job: JobBatch) -> JobResult | AttemptFailure | None:
        try:
            await asyncio.to_thread(
                check_target, self._url, allow_private=self._allow_private, field="handlerUrl"
            )
        except UnsafeTarget as exc:
            return AttemptFailure("HANDLER_URL_REFUSED", str(exc), ErrorCategory.SYSTEM, False)
        body = job.model_dump_json().encode()
        while (left := (job.deadline - datetime.now(UTC)).total_seconds()) > 0:
            try:
                answer = await self._post(job, body, left)
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                if isinstance(exc, TimeoutError) or job.deadline <= datetime.now(UTC):
                    return None
                message = f"{type(exc).__name__}: {exc}"[:300]
                return AttemptFailure("HANDLER_ERROR", message, ErrorCategory.NETWORK, True)
            if not isinstance(answer, float):
                return answer
            await self._sleep(min(answer, max(0.0, left)))
        return None

    async def _post(
        self, job: JobBatch, body: bytes, left: float
    ) -> JobResult | AttemptFailure | float:
        """The answer, its failure, or how long a 429 asked to wait."""
        timestamp = str(int(time.time()))
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=left)) as session,
            session.post(
                self._url,
                data=body,
                headers={
                    "Content-Type": "application/json",
                    "Idempotency-Key": f"{job.operation_id}:{job.batch_index}:{job.attempt}",
                    "X-Bulkops-Job-Type": job.job_type,
                    "X-Bulkops-Timestamp": timestamp,
                    "X-Bulkops-Signature": sign(self._secret, timestamp, body),
                },
                allow_redirects=False,
            ) as response,
        ):
            status = response.status
            if status == 429:
                return _retry_after(response.headers.get("Retry-After"))
            if status >= 500 or status == 408:
                return AttemptFailure(
                    "HANDLER_ERROR", f"handler answered {status}", ErrorCategory.SYSTEM, True
                )
            if not 200 <= status < 300:
                return AttemptFailure(
                    "HANDLER_REFUSED", f"handler answered {status}", ErrorCategory.SYSTEM, False
                )
            raw = await response.content.read(MAX_ANSWER_BYTES + 1)
        try:
            if len(raw) > MAX_ANSWER_BYTES:
                raise ValueError(f"answer over {MAX_ANSWER_BYTES} bytes")
            outcomes = JobHttpAnswer.model_validate_json(raw).outcomes
        except (ValidationError, ValueError) as exc:
            message = f"handler's answer is not an outcome list: {exc}"[:300]
            return AttemptFailure("HANDLER_BAD_ANSWER", message, ErrorCategory.SYSTEM, True)
        return JobResult(
            operation_id=job.operation_id,
            sponsor_id=job.sponsor_id,
            job_type=job.job_type,
            batch_index=job.batch_index,
            attempt=job.attempt,
            worker_id=self._worker_id,
            outcomes=outcomes,
            completed_at=datetime.now(UTC),
        )


def _retry_after(header: str | None) -> float:
    try:
        return max(0.0, float(header)) if header is not None else DEFAULT_RETRY_AFTER
    except ValueError:  # an HTTP date: not worth parsing for a wait this short
        return DEFAULT_RETRY_AFTER
