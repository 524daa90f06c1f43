"""Jobs: operation kinds another system defines and executes (:mod:`schemas.jobs`).

Items come in chunks like a link send's recipients and are stored with their batches; each
batch is run by :func:`streams.jobs.running.run_job_batch` through the type's executor.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, ClassVar

from core.topics import sponsor_key
from core.webhooks import job_type_secret
from schemas.common import OperationType
from schemas.job_wire import JobExecutor, JobRun
from schemas.messages import ItemBatch, ItemsChunk, JobItemsChunk, ResultBatch
from streams.context import InvalidMessage
from streams.gates import TableGate
from streams.jobs.executors import Executor, KafkaExecutor
from streams.jobs.http import HttpExecutor
from streams.jobs.running import SlotPacer, run_job_batch, unless_set
from streams.kinds.base import OperationKind
from streams.plan import job_item_batches
from streams.progress import OperationState

if TYPE_CHECKING:
    from streams.context import WorkerContext

log = logging.getLogger("bulkops.worker")


class JobKind(OperationKind):
    operation_type: ClassVar[OperationType] = OperationType.JOB

    async def explode_chunk(
        self, ctx: WorkerContext, chunk: ItemsChunk, state: OperationState
    ) -> list[ItemBatch]:
        if not isinstance(chunk, JobItemsChunk):
            raise InvalidMessage(f"job operation {chunk.operation_id} takes job items")
        batches = list(job_item_batches(state, chunk))
        await ctx.with_retry(
            f"operation {chunk.operation_id}: storing chunk {chunk.chunk_index}",
            ctx.state.record_chunk,
            chunk,
            batches,
        )
        return batches

    async def process(self, ctx: WorkerContext, batch: ItemBatch) -> ResultBatch | None:
        """The batch's outcome; or, when a rebalance asks for it first, None: the batch went
        back on the items topic, to start over wherever its partition goes (its waits for
        another system would hold the whole group's rebalance meanwhile)."""
        run = batch.job
        if run is None:
            raise InvalidMessage("a job batch needs its job run")
        result = await unless_set(
            ctx.registry.hand_back,
            run_job_batch(
                batch,
                executor=executor_for(ctx, run),
                gate=TableGate(ctx),
                pacer=pacer_for(ctx, run),
            ),
        )
        if result is None:
            await ctx.send(ctx.out.items, sponsor_key(batch.sponsor_id), batch)
            log.info(
                "operation %s: batch %d handed back for a rebalance; it starts over",
                batch.operation_id,
                batch.batch_index,
            )
        return result


def executor_for(ctx: WorkerContext, run: JobRun) -> Executor:
    if run.executor is JobExecutor.KAFKA:
        return KafkaExecutor(ctx.out.job_topic(run.job_type), ctx.registry.job_waits)
    if run.handler_url is None:
        raise InvalidMessage(f"job type {run.job_type}: executor http without a handlerUrl")
    return HttpExecutor(
        run.handler_url,
        secret=job_type_secret(ctx.settings.webhook_secret, run.job_type),
        allow_private=run.allow_private_handler,
        worker_id=ctx.settings.instance_id,
    )


def pacer_for(ctx: WorkerContext, run: JobRun) -> SlotPacer | None:
    """The type's pace in this process (at the rate of the newest version seen)."""
    rate = run.rate_limit_per_second
    if rate is None:
        return None
    pacer = ctx.registry.job_pacers.get(run.job_type)
    if pacer is None:
        pacer = ctx.registry.job_pacers[run.job_type] = SlotPacer(rate)
    pacer.rate = rate
    return pacer
