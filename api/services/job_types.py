"""Registering, changing, disabling and listing job types.

The API writes a type's record to the compacted job-types topic itself (no worker takes part:
a submit copies the type's spec into its operation, so the worker never looks a type up) and
answers once its own view has read the record back, so the next request sees it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from confluent_kafka import KafkaException
from fastapi import Request

from api.auth import Principal
from api.deps import settings_of, sink_of
from api.errors import ApiError, validation_error
from api.job_types_view import JobTypeView
from api.producer import ProduceError
from core.topics import Topics, TopicSpec
from core.webhooks import UnsafeTarget, check_target
from schemas.jobs import JobExecutor, JobTypeList, JobTypeOut, JobTypeRecord, JobTypeSpec

log = logging.getLogger("bulkops.api")

# How long a change waits for the view to read it back before answering anyway (202).
APPLY_WAIT_SECONDS = 5.0


def job_type_view_of(request: Request) -> JobTypeView:
    return request.app.state.job_type_view


def topic_creator_of(request: Request) -> Callable[[TopicSpec], None]:
    """Creates a topic if it is missing (blocking); wired by the process (``bulkops.runtime``)."""
    return request.app.state.create_topic


def admin_only(principal: Principal) -> None:
    if not principal.is_admin:
        raise ApiError(403, "FORBIDDEN", "Only an Admin registers or changes job types")


def unknown_type(name: str) -> ApiError:
    return ApiError(404, "JOB_TYPE_NOT_FOUND", f"No job type {name}")


def visible_record(request: Request, principal: Principal, name: str) -> JobTypeRecord:
    """The type, if the caller may see it: an Admin sees every type, a sponsor the enabled
    ones it may use (the others do not exist for it)."""
    record = job_type_view_of(request).get(name)
    if record is None or not _visible(principal, record):
        raise unknown_type(name)
    return record


def listing(request: Request, principal: Principal) -> JobTypeList:
    topics = Topics(settings_of(request).topic_prefix)
    shown = [present(topics, r) for r in job_type_view_of(request).all() if _visible(principal, r)]
    return JobTypeList(job_types=shown, total=len(shown))


def present(topics: Topics, record: JobTypeRecord) -> JobTypeOut:
    spec = record.spec
    return JobTypeOut(
        name=spec.name,
        enabled=record.enabled,
        version=record.version,
        topic=topics.jobs(spec.name).name if spec.executor is JobExecutor.KAFKA else None,
        registered_at=record.registered_at,
        updated_at=record.updated_at,
        updated_by=record.updated_by,
        spec=spec,
    )


async def register(
    request: Request, principal: Principal, spec: JobTypeSpec
) -> tuple[JobTypeRecord, bool]:
    """A new type (created: True), or the same registration again (created: False, nothing
    written). Another spec under a taken name is a conflict: changes go through ``replace``."""
    admin_only(principal)
    current = job_type_view_of(request).get(spec.name)
    if current is not None:
        if current.spec == spec:
            return current, False
        raise ApiError(
            409,
            "JOB_TYPE_EXISTS",
            f"Job type {spec.name} exists (version {current.version}) with another spec: "
            f"PUT /job-types/{spec.name} changes it",
        )
    await _check_handler(spec)
    await _ensure_topic(request, spec)
    moment = datetime.now(UTC)
    record = JobTypeRecord(
        spec=spec,
        version=1,
        registered_at=moment,
        updated_at=moment,
        updated_by=principal.subject,
    )
    return await _publish(request, record, "registered"), True


async def replace(
    request: Request, principal: Principal, name: str, spec: JobTypeSpec
) -> JobTypeRecord:
    """The type's spec replaced whole (the name cannot change); operations already submitted
    keep the spec they were submitted with."""
    admin_only(principal)
    if spec.name != name:
        raise validation_error("name", f"the path names {name}; a type cannot be renamed")
    current = job_type_view_of(request).get(name)
    if current is None:
        raise unknown_type(name)
    if current.spec == spec:
        return current
    await _check_handler(spec)
    await _ensure_topic(request, spec)
    return await _publish(request, _changed(current, principal, spec=spec), "changed")


async def set_enabled(
    request: Request, principal: Principal, name: str, enabled: bool
) -> JobTypeRecord:
    """Disable (new submits of the type are refused; running operations finish) or enable."""
    admin_only(principal)
    current = job_type_view_of(request).get(name)
    if current is None:
        raise unknown_type(name)
    if current.enabled == enabled:
        return current
    what = "enabled" if enabled else "disabled"
    return await _publish(request, _changed(current, principal, enabled=enabled), what)


def _changed(current: JobTypeRecord, principal: Principal, **fields: object) -> JobTypeRecord:
    """The next version of ``current``, with ``fields`` changed by ``principal``."""
    return current.model_copy(
        update={
            **fields,
            "version": current.version + 1,
            "updated_at": datetime.now(UTC),
            "updated_by": principal.subject,
        }
    )


def _visible(principal: Principal, record: JobTypeRecord) -> bool:
    if principal.is_admin:
        return True
    sponsor = principal.sponsor_id
    return record.enabled and sponsor is not None and record.spec.may_use(sponsor)


async def _check_handler(spec: JobTypeSpec) -> None:
    """An HTTP executor has a URL, and it points where the Admin allowed."""
    if spec.handler_url is None:
        if spec.executor is JobExecutor.HTTP:
            raise validation_error("handlerUrl", "executor http needs handlerUrl")
        return
    try:
        await asyncio.to_thread(
            check_target,
            spec.handler_url,
            allow_private=spec.allow_private_handler,
            field="handlerUrl",
        )
    except UnsafeTarget as exc:
        raise validation_error("handlerUrl", str(exc)) from exc


async def _ensure_topic(request: Request, spec: JobTypeSpec) -> None:
    """A Kafka-executed type's topic exists before the type does, so its workers can
    subscribe as soon as they see it registered."""
    if spec.executor is not JobExecutor.KAFKA:
        return
    topic = Topics(settings_of(request).topic_prefix).jobs(spec.name)
    try:
        await asyncio.to_thread(topic_creator_of(request), topic)
    except KafkaException as exc:
        raise ApiError(
            503, "SYSTEM_ERROR", f"Queue service unavailable: topic {topic.name} not created: {exc}"
        ) from exc


async def _publish(request: Request, record: JobTypeRecord, what: str) -> JobTypeRecord:
    name = record.spec.name
    topic = Topics(settings_of(request).topic_prefix).job_types.name
    try:
        await sink_of(request).send(
            topic, name.encode(), record.model_dump_json(by_alias=True).encode()
        )
    except ProduceError as exc:
        raise ApiError(
            503, "SYSTEM_ERROR", f"Queue service unavailable: job type {name} not {what}: {exc}"
        ) from exc
    log.info(
        "job type %s %s by %s (version %d, executor %s)",
        name,
        what,
        record.updated_by,
        record.version,
        record.spec.executor.value,
    )
    if not await job_type_view_of(request).applied(name, record.version, APPLY_WAIT_SECONDS):
        log.warning("job type %s: version %d not read back yet", name, record.version)
    return record
