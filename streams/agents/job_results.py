"""The job-results agent, on the job-results topic: other systems' workers' answers, handed
to the batch attempt waiting for each (:mod:`streams.jobs.waits`).

An answer nothing waits for is ignored, never counted: its attempt already timed out (and the
items went on to a retry), it is a second copy, or it names a batch this worker did not hand
out. Its operation is then exactly as the waiting attempts make it. A message that is not a
``JobResult``, or is keyed by another sponsor than it names, goes to the dead-letter topic.
"""

from __future__ import annotations

import logging

from faust.types import EventT

from core import logs
from core.metrics import JOB_RESULTS
from schemas.jobs import JobResult
from streams.context import WorkerContext, check_key

log = logging.getLogger("bulkops.worker")


async def handle(ctx: WorkerContext, event: EventT[bytes]) -> None:
    result = JobResult.model_validate_json(event.value)
    check_key(event, result.sponsor_id)
    if ctx.registry.job_waits.deliver(result):
        JOB_RESULTS.labels("taken").inc()
        return
    JOB_RESULTS.labels("ignored").inc()
    log.info(
        "operation %s: answer to batch %d attempt %d from %s ignored: nothing waits for it "
        "(late, repeated or not handed out here)",
        result.operation_id,
        result.batch_index,
        result.attempt,
        result.worker_id,
        extra=logs.about(result.operation_id, result.sponsor_id),
    )
