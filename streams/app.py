"""The Faust worker: the app, its topics and tables, and the wiring of agents and timers.

Flow (every topic keyed by sponsor id, same partition count, so one sponsor's work stays on
one partition of one worker)::

    operations --explode--> items --process--> results --sink--> ClickHouse
                                                           \\--> progress --count--> table
    table --(on change, and every second while running)--> operation-status (compacted)

Delivery is at-least-once (Faust flushes the producer before it commits offsets, and the
consumer never commits past a message in flight: :mod:`streams.delivery`); every effect is
idempotent. What each part does is in its own module: :mod:`streams.agents` (one module per
agent), :mod:`streams.kinds` (one module per operation kind), :mod:`streams.timers`,
:mod:`streams.tables`, :mod:`streams.context`.
"""

from __future__ import annotations

import functools

import faust

from analytics.interfaces import KeptState, ResultSink
from core.settings import WorkerSettings
from core.topics import Topics
from streams import agents, ownership, tables, timers
from streams.codes import CodeMinter
from streams.context import Outboxes, Registry, WorkerContext
from streams.delivery import App
from streams.providers.base import Provider
from streams.webhooks import WebhookLauncher


def faust_app(settings: WorkerSettings) -> App:
    """The Faust app with the worker's settings (static membership, raw bytes on the wire)."""
    settings.worker_data_dir.mkdir(parents=True, exist_ok=True)  # Faust makes only the last level
    return App(
        settings.app_id,
        gapless_topics=[spec.name for spec in Topics(settings.topic_prefix).internal()],
        in_flight_grace_seconds=settings.shutdown_grace_seconds,
        broker=f"kafka://{settings.kafka_bootstrap}",
        store=f"{settings.table_store}://",
        datadir=str(settings.worker_data_dir / "{conf.name}"),
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        topic_disable_leader=True,
        # Every topic, table changelogs included, is created (and configured) before the
        # worker starts (`bulkops serve|worker|topics`): Faust asking the broker for each
        # changelog again cost ~2 s of every start.
        topic_allow_declare=False,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        producer_max_request_size=1_048_576,
        producer_linger=settings.producer_linger_seconds,
        table_standby_replicas=0,
        web_enabled=False,
        consumer_group_instance_id=f"{settings.app_id}-{settings.instance_id}",
        broker_session_timeout=settings.session_timeout_seconds,
        broker_heartbeat_interval=settings.session_timeout_seconds / 4,
        broker_commit_every=1000,
        broker_commit_interval=1.0,
    )


def build_worker(
    settings: WorkerSettings,
    writer: ResultSink,
    state: KeptState,
    providers: dict[str, Provider],
) -> faust.App:
    """A Faust app on ``settings``' topics, storing through ``writer`` and ``state``,
    sending through ``providers``."""
    app = faust_app(settings)
    topics = Topics(settings.topic_prefix)

    def topic(name: str) -> faust.TopicT:
        return app.topic(name, partitions=settings.partitions, internal=False)

    sources = agents.Sources(
        operations=topic(topics.operations.name),
        items=topic(topics.items.name),
        results=topic(topics.results.name),
        progress=topic(topics.progress.name),
        control=topic(topics.control.name),
        job_results=topic(topics.job_results.name),
    )
    out = Outboxes(
        operations=sources.operations,
        items=sources.items,
        work=topic(topics.work.name),
        results=sources.results,
        progress=sources.progress,
        status=topic(topics.status.name),
        quotas=topic(topics.quotas.name),
        dead_letter=topic(topics.dead_letter.name),
        job_control=topic(topics.job_control.name),
        job_topic=functools.cache(lambda job_type: topic(topics.jobs(job_type).name)),
    )
    ctx = WorkerContext(
        settings=settings,
        writer=writer,
        state=state,
        tables=tables.declare(app, settings.partitions, settings.table_store),
        out=out,
        providers=providers,
        pacer=WorkerContext.pacer_for(settings),
        minter=CodeMinter(settings.code_secret),
        webhooks=WebhookLauncher(settings, out.progress),
        registry=Registry(hand_back=app.hand_back),
    )
    agents.declare(app, ctx, sources)
    timers.declare(app, ctx)
    ownership.declare(app, ctx)
    return app
