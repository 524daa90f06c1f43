"""Process shapes: API + worker in one process (embedded chDB), API only, worker only."""

from __future__ import annotations

import asyncio
import logging
from functools import partial

import faust
from fastapi import FastAPI

from analytics.store import AnalyticsStore
from api.app import create_api
from api.job_types_view import JobTypeView
from api.observability import LiveOperations
from api.producer import KafkaMessageSink
from api.services.submission import delivery_timeout
from api.status_view import KafkaViewFollower, QuotaView, StatusView
from bulkops import topicadmin
from core import heap
from core.lag import LagMetrics, processor_lag, worker_lag
from core.settings import ApiSettings, WorkerSettings
from core.topics import Topics, TopicSpec
from streams.app import build_worker
from streams.providers.factory import build_providers

log = logging.getLogger("bulkops")


def _start_api_parts(app: FastAPI, settings: ApiSettings) -> None:
    """Start following the status, quota and job-type topics (and what else the routes use); the
    views catch up meanwhile: :func:`_api_parts_ready` waits for them."""
    view = StatusView(archive=app.state.store.reader.archived_snapshots)
    quotas = QuotaView()
    job_types = JobTypeView()
    topics = Topics(settings.topic_prefix)
    follower = KafkaViewFollower(
        settings.kafka_bootstrap,
        {topics.status.name: view, topics.quotas.name: quotas, topics.job_types.name: job_types},
        view.ready,
    )
    follower.start()
    app.state.status_view = view
    app.state.quota_view = quotas
    app.state.job_type_view = job_types
    app.state.status_follower = follower
    app.state.lag_probe = worker_lag(settings)
    app.state.metrics_collectors = [
        LiveOperations(view),
        LagMetrics(app.state.lag_probe, processor_lag(settings)),
    ]
    app.state.message_sink = KafkaMessageSink(
        settings.kafka_bootstrap, delivery_timeout=delivery_timeout(settings)
    )
    app.state.create_topic = partial(_create_topic, settings)


def _create_topic(settings: ApiSettings, spec: TopicSpec) -> None:
    """A topic made at run time (a job type's), configured like those made on start."""
    topicadmin.create_topics(
        settings.kafka_bootstrap,
        {
            spec.name: spec.config(
                retention_hours=settings.topic_retention_hours,
                dead_letter_retention_hours=settings.dead_letter_retention_hours,
            )
        },
        partitions=settings.partitions,
        replication_factor=settings.replication_factor,
    )


async def _api_parts_ready(app: FastAPI, settings: ApiSettings) -> None:
    view: StatusView = app.state.status_view
    caught_up = await asyncio.to_thread(view.ready.wait, settings.status_view_ready_timeout_seconds)
    if not caught_up:
        log.warning(
            "status view not caught up after %.0fs; serving anyway",
            settings.status_view_ready_timeout_seconds,
        )


async def _stop_api_parts(app: FastAPI) -> None:
    app.state.message_sink.close()
    app.state.status_follower.close()


def combined_app(api_settings: ApiSettings, worker_settings: WorkerSettings) -> FastAPI:
    """The API and the Faust worker sharing one process and one embedded ClickHouse."""

    async def start(app: FastAPI) -> None:
        store = await asyncio.to_thread(AnalyticsStore.from_settings, worker_settings)
        app.state.store = store
        app.state.providers = build_providers(worker_settings)
        worker: faust.App = build_worker(
            worker_settings, store.writer, store.state, app.state.providers
        )
        app.state.worker = worker
        _start_api_parts(app, api_settings)  # the views catch up while the worker starts
        await worker.start()
        await _api_parts_ready(app, api_settings)
        heap.settle()

    async def stop(app: FastAPI) -> None:
        await _stop_api_parts(app)
        await app.state.worker.stop()
        for provider in app.state.providers.values():
            await provider.close()
        app.state.store.close()

    return create_api(api_settings, start=start, stop=stop)


def api_only_app(settings: ApiSettings) -> FastAPI:
    """The API alone; needs a ClickHouse server (``BULKOPS_CLICKHOUSE_DSN``) shared with workers."""

    async def start(app: FastAPI) -> None:
        app.state.store = await asyncio.to_thread(AnalyticsStore.from_settings, settings)
        _start_api_parts(app, settings)
        await _api_parts_ready(app, settings)
        heap.settle()

    async def stop(app: FastAPI) -> None:
        await _stop_api_parts(app)
        app.state.store.close()

    return create_api(settings, start=start, stop=stop)
