"""The Admin's overview across sponsors: the worker group's lag, the dead letters, and the
live operations by status and by sponsor."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime

from fastapi import Request

from api.status_view import StatusView
from core.lag import ConsumerLag
from core.topics import Topics
from schemas.responses import (
    AdminOverview,
    ConsumerLagOut,
    DeadLettersOut,
    PartitionLagOut,
    SponsorActivity,
    StatusCount,
)


async def build(request: Request) -> AdminOverview:
    probe: ConsumerLag = request.app.state.lag_probe
    view: StatusView = request.app.state.status_view
    dead_letter_topic = Topics(request.app.state.settings.topic_prefix).dead_letter.name
    lags, retained = await asyncio.gather(
        asyncio.to_thread(probe.read), asyncio.to_thread(probe.retained, dead_letter_topic)
    )
    partitions = [
        PartitionLagOut(topic=p.topic, partition=p.partition, lag=p.lag) for p in lags or ()
    ]
    snapshots = view.visible(None)
    running: Counter[int] = Counter(s.sponsor_id for s in snapshots if not s.status.is_terminal)
    live: Counter[int] = Counter(s.sponsor_id for s in snapshots)
    return AdminOverview(
        consumer_lag=ConsumerLagOut(
            group=probe.group,
            probe_ok=lags is not None,
            total_lag=sum(p.lag for p in partitions),
            partitions=partitions,
        ),
        dead_letters=DeadLettersOut(topic=dead_letter_topic, retained=retained),
        operations=[
            StatusCount(operation_type=kind, status=status, count=count)
            for (kind, status), count in sorted(view.counts().items())
        ],
        sponsors=[
            SponsorActivity(sponsor_id=sponsor, running=running[sponsor], live=count)
            for sponsor, count in sorted(live.items(), key=lambda kv: (-running[kv[0]], kv[0]))
        ],
        as_of=datetime.now(UTC),
    )
