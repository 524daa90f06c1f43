"""Job types: operation kinds that another system defines and executes.

An Admin registers a job type (``ticket:update_status``, ``inventory:create``): the JSON
Schemas its items and its operation data must satisfy, who executes it (a worker of the owning
system over Kafka, or its HTTP handler), the timeout per batch, the retries with exponential
backoff, a rate limit and a concurrency bound, and which sponsors may use it. Registrations are
records on a compacted topic keyed by the type's name: durable, listed by every API, disabled
rather than deleted (operations that ran on a type keep meaning something).

The contract with the owning system's workers is two messages: a :class:`JobBatch` on the
type's topic, answered by a :class:`JobResult` on the job-results topic (``bulkops.jobs`` is a
worker for Python; other languages use the exported JSON Schemas).
"""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

import jsonschema_rs
from pydantic import AnyHttpUrl, Field, ValidationInfo, field_validator, model_validator

from schemas.common import ApiModel, ErrorCategory, ItemStatus, WireModel
from schemas.job_wire import JobExecutor, JobItem, JobRun
from schemas.requests import BoundedMetadata, Priority, SchedulingOptions
from schemas.responses import OutModel

#: ``system:action``, lower case: also the suffix of the type's Kafka topic.
JOB_TYPE_NAME = r"^[a-z][a-z0-9_-]{0,49}:[a-z][a-z0-9_-]{0,49}$"
# Each schema; the whole registration is also under the API's default body limit (64 KiB).
MAX_SCHEMA_BYTES = 16 * 1024
# Nesting of a schema's objects and arrays: far above real schemas, far below the JSON parsers'
# recursion limits (a record the API's own view could not parse back would be lost).
MAX_SCHEMA_DEPTH = 32
# The drafts a schema may declare in ``$schema`` (any other would be fetched from its URL).
KNOWN_DRAFTS = frozenset(
    f"{scheme}://json-schema.org/{path}{end}"
    for scheme in ("http", "https")
    for path in (
        "draft-04/schema",
        "draft-06/schema",
        "draft-07/schema",
        "draft/2019-09/schema",
        "draft/2020-12/schema",
    )
    for end in ("", "#")
)
MAX_ALLOWED_SPONSORS = 10_000
ANY_OBJECT: dict[str, Any] = {"type": "object"}


class JobTypeSpec(ApiModel):
    """What an Admin registers (and sends again, whole, to change a type)."""

    name: str = Field(
        pattern=JOB_TYPE_NAME,
        description="`system:action`, lower case (letters, digits, `_`, `-`).",
        examples=["ticket:update_status"],
    )
    description: str | None = Field(default=None, max_length=500)
    executor: JobExecutor = Field(
        description="`kafka`: batches go to `<prefix>.jobs.<name>` for the owning system's "
        "workers; `http`: each batch is POSTed to `handlerUrl`."
    )
    handler_url: str | None = Field(
        default=None,
        max_length=2000,
        description="The HTTP executor's URL (http or https); only with `executor: http`.",
    )
    allow_private_handler: bool = Field(
        default=False,
        description="Let `handlerUrl` resolve to a loopback or private address (an internal "
        "service); refused otherwise, like webhook callbacks.",
    )
    item_schema: dict[str, Any] = Field(
        default_factory=lambda: dict(ANY_OBJECT),
        description="JSON Schema every item must satisfy (checked at submit, all rows at once).",
    )
    data_schema: dict[str, Any] = Field(
        default_factory=lambda: dict(ANY_OBJECT),
        description="JSON Schema the operation's `data` must satisfy.",
    )
    batch_size: int = Field(default=100, ge=1, le=10_000, description="Items per batch.")
    timeout_seconds: float = Field(
        default=30.0, ge=1, le=3600, description="A batch not answered by then fails (TIMEOUT)."
    )
    max_retries: int = Field(default=3, ge=0, le=20, description="Retries of a retryable failure.")
    backoff_seconds: float = Field(
        default=1.0, ge=0.1, le=3600, description="Wait before the first retry."
    )
    backoff_multiplier: float = Field(
        default=2.0, ge=1, le=10, description="Each further retry waits this many times longer."
    )
    max_backoff_seconds: float = Field(default=300.0, ge=0.1, le=86_400)
    rate_limit_per_second: float | None = Field(
        default=None, gt=0, le=1_000_000, description="Items per second across all operations."
    )
    max_concurrency: int = Field(
        default=10, ge=1, le=10_000, description="Batches of one operation handed out at once."
    )
    allowed_sponsors: list[int] | None = Field(
        default=None,
        max_length=MAX_ALLOWED_SPONSORS,
        description="Sponsors that may submit jobs of this type; absent: every sponsor.",
    )

    @field_validator("item_schema", "data_schema")
    @classmethod
    def _a_json_schema(cls, schema: dict[str, Any]) -> dict[str, Any]:
        """Bounded, valid against its draft's meta-schema, and self-contained: a remote
        ``$ref`` would make every submit fetch a URL someone else controls."""
        if _depth(schema) > MAX_SCHEMA_DEPTH:
            raise ValueError(f"a schema nests at most {MAX_SCHEMA_DEPTH} levels")
        if len(json.dumps(schema)) > MAX_SCHEMA_BYTES:
            raise ValueError(f"a schema is at most {MAX_SCHEMA_BYTES // 1024} KiB of JSON")
        if "$schema" in schema and schema["$schema"] not in KNOWN_DRAFTS:
            raise ValueError("$schema names a draft: 4, 6, 7, 2019-09 or 2020-12 (its URI)")
        try:
            jsonschema_rs.meta.validate(schema)
            jsonschema_rs.validator_for(schema, offline=True)
        except jsonschema_rs.ValidationError as exc:
            raise ValueError(f"not a usable JSON Schema: {exc.message}") from None
        except jsonschema_rs.ReferencingError as exc:
            raise ValueError(f"not a usable JSON Schema: {exc}") from None
        return schema

    @field_validator("handler_url")
    @classmethod
    def _only_for_http(cls, url: str | None, info: ValidationInfo) -> str | None:
        """(That ``executor: http`` has one is checked where the URL is: pydantic names a
        missing field by its Python name, and the caller should read ``handlerUrl``.)"""
        if info.data.get("executor") is JobExecutor.KAFKA and url:
            raise ValueError("handlerUrl is for executor http only")
        return url

    @field_validator("allowed_sponsors")
    @classmethod
    def _distinct_sponsors(cls, sponsors: list[int] | None) -> list[int] | None:
        if sponsors is None:
            return None
        if any(s < 1 for s in sponsors):
            raise ValueError("sponsor ids are positive")
        return sorted(set(sponsors))

    def may_use(self, sponsor_id: int) -> bool:
        return self.allowed_sponsors is None or sponsor_id in self.allowed_sponsors


def _depth(value: object) -> int:
    """How deeply ``value``'s dicts and lists nest (iteratively: no recursion to exhaust)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        children = (
            node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        )
        for child in children:
            if isinstance(child, dict | list):
                if level + 1 > MAX_SCHEMA_DEPTH:
                    return level + 1
                stack.append((child, level + 1))
        deepest = max(deepest, level)
    return deepest


class JobTypeRecord(WireModel):
    """A registration as kept on the job-types topic (its key: the name)."""

    spec: JobTypeSpec
    enabled: bool = True
    version: int = Field(ge=1, description="1 at registration, +1 at every change.")
    registered_at: datetime
    updated_at: datetime
    updated_by: str = Field(description="The Admin (token subject) who made the last change.")

    def run(self, data: dict[str, Any]) -> JobRun:
        """How an operation submitted now runs: this version of the type, with ``data``."""
        spec = self.spec
        return JobRun(
            job_type=spec.name,
            type_version=self.version,
            executor=spec.executor,
            handler_url=spec.handler_url,
            allow_private_handler=spec.allow_private_handler,
            batch_size=spec.batch_size,
            timeout_seconds=spec.timeout_seconds,
            max_retries=spec.max_retries,
            backoff_seconds=spec.backoff_seconds,
            backoff_multiplier=spec.backoff_multiplier,
            max_backoff_seconds=spec.max_backoff_seconds,
            rate_limit_per_second=spec.rate_limit_per_second,
            max_concurrency=spec.max_concurrency,
            data=data,
        )


class JobTypeOut(OutModel):
    """A job type as the API shows it."""

    name: str
    enabled: bool
    version: int
    topic: str | None = Field(
        description="Where batches go for the owning system's workers (`kafka` executor)."
    )
    registered_at: datetime
    updated_at: datetime
    updated_by: str
    spec: JobTypeSpec


class JobTypeList(OutModel):
    job_types: list[JobTypeOut]
    total: int


SEED_JOB_TYPE_EXAMPLE: dict[str, Any] = {
    "name": "ticket:update_status",
    "description": "Set the status of support tickets (seed 003).",
    "executor": "kafka",
    "itemSchema": {
        "type": "object",
        "required": ["ticketId"],
        "properties": {"ticketId": {"type": "integer", "minimum": 1}},
        "additionalProperties": False,
    },
    "dataSchema": {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"enum": ["open", "pending", "resolved", "closed"]}},
    },
    "timeoutSeconds": 30,
    "maxRetries": 3,
    "maxConcurrency": 10,
}


class JobBatch(WireModel):
    """Bulkops → the owning system's workers, on ``<prefix>.jobs.<system>.<action>``; key: the
    sponsor id. Answered by one :class:`JobResult` with the same operation, batch and attempt."""

    operation_id: str
    sponsor_id: int
    job_type: str
    batch_index: int = Field(ge=0)
    attempt: int = Field(default=1, ge=1, description="1, then 2, … for each retry.")
    deadline: datetime = Field(
        description="After this Bulkops counts the batch as timed out (TIMEOUT) and ignores a "
        "late result: a worker that sees it passed skips the batch."
    )
    data: dict[str, Any] = Field(default_factory=dict, description="The operation's `data`.")
    items: list[JobItem] = Field(min_length=1)
    metadata: dict[str, str] = Field(default_factory=dict)


class JobItemOutcome(WireModel):
    """What became of one item: ``Success`` (with ``resultData``), ``Failed`` (with an error
    code, a message, a category and whether trying again may help), or ``Skipped`` (not done,
    and why: a worker that drops the batch of a cancelled operation answers ``CANCELLED``)."""

    index: int = Field(ge=0)
    item_id: str = Field(min_length=1, max_length=200)
    status: ItemStatus
    result_data: dict[str, Any] | None = None
    error_code: str | None = Field(default=None, max_length=100)
    error_message: str | None = Field(default=None, max_length=2000)
    error_category: ErrorCategory | None = None
    is_retryable: bool = False

    @model_validator(mode="after")
    def _an_outcome(self) -> JobItemOutcome:
        if self.status not in (ItemStatus.SUCCESS, ItemStatus.FAILED, ItemStatus.SKIPPED):
            raise ValueError("status is Success, Failed or Skipped")
        if self.status is not ItemStatus.SUCCESS and not (self.error_code and self.error_message):
            raise ValueError(f"a {self.status.value} outcome has errorCode and errorMessage")
        return self


class JobResult(WireModel):
    """The owning system's workers → Bulkops, on ``<prefix>.job-results``; key: the batch's
    key. One outcome per item of the batch."""

    operation_id: str
    sponsor_id: int
    job_type: str
    batch_index: int = Field(ge=0)
    attempt: int = Field(ge=1)
    worker_id: str = Field(max_length=200, description="Who answered, for the logs.")
    outcomes: list[JobItemOutcome]
    completed_at: datetime


class JobHttpAnswer(WireModel):
    """What a job type's HTTP handler answers (2xx) to a POSTed :class:`JobBatch`."""

    outcomes: list[JobItemOutcome]


class JobControl(WireModel):
    """Bulkops → the owning system's workers, on ``<prefix>.job-control`` (compacted; key: the
    operation id): the operation was cancelled. A worker drops its batches not started yet,
    answering each item ``Skipped`` with ``errorCode: CANCELLED``; batches in hand finish."""

    operation_id: str
    sponsor_id: int
    job_type: str
    action: Literal["cancel"] = "cancel"
    at: datetime


class JobProcessingOptions(ApiModel):
    """How a job operation runs, where it may differ from its type's registration."""

    batch_size: int | None = Field(
        default=None, strict=True, ge=1, le=10_000, description="Items per batch (the type's)."
    )
    max_concurrency: int | None = Field(
        default=None,
        strict=True,
        ge=1,
        le=10_000,
        description="Batches handed out at once: at most the type's `maxConcurrency`.",
    )
    pause_on_error_rate: float | None = Field(
        default=None,
        strict=True,
        gt=0,
        le=1,
        description="Pause by itself when this share of the last `pauseOnErrorWindow` items "
        "failed.",
    )
    pause_on_error_window: int = Field(strict=True, default=100, ge=10, le=100_000)
    send_progress_notifications: bool = Field(default=False, strict=True)
    callback_url: AnyHttpUrl | None = None


class BulkJobRequest(ApiModel):
    """``POST /api/v1/bulk-operations/jobs``: run a registered job type on every item."""

    operation_type: str = Field(
        pattern=JOB_TYPE_NAME,
        description="The registered job type (`GET …/job-types`).",
        examples=["ticket:update_status"],
    )
    operation_name: str = Field(default="Bulk Job", min_length=1, max_length=200)
    sponsor_id: int | None = Field(
        default=None,
        strict=True,
        ge=1,
        le=2**63 - 1,
        description="Only an Admin names it; a sponsor's token fixes it.",
    )
    items: list[dict[str, Any]] = Field(
        min_length=1, description="One object per item, each valid against the type's itemSchema."
    )
    data: BoundedMetadata = Field(
        default_factory=dict, description="What every item shares, valid against dataSchema."
    )
    processing: JobProcessingOptions = Field(default_factory=JobProcessingOptions)
    scheduling: SchedulingOptions = Field(default_factory=SchedulingOptions)
    priority: Priority = 5
    metadata: BoundedMetadata = Field(default_factory=dict)


SEED_JOB_EXAMPLE: dict[str, Any] = {
    "operationType": "ticket:update_status",
    "operationName": "Close resolved tickets",
    "items": [{"ticketId": 1}, {"ticketId": 2}, {"ticketId": 3}],
    "data": {"status": "closed"},
    "priority": 5,
    "metadata": {"requestedFrom": "support-console"},
}


class JobStatus(StrEnum):
    """An item's status in the words of the ``002`` queue plan (``JobStatus``)."""

    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class JobView(OutModel):
    """One item of a job operation as a job of the ``002`` queue plan (``BaseJob``)."""

    id: str | None = Field(
        description="The item id (the worker's idempotency key); null until the item is "
        "processed (ids travel with the stored batches, not with the status)."
    )
    index: int
    type: str = Field(examples=["inventory:update"])
    operation_id: str
    sponsor_id: int
    status: JobStatus
    retry_count: int = Field(description="Attempts after the first.")
    max_retries: int
    priority: int
    created_at: datetime
    processed_at: datetime | None = None
    error: str | None = Field(default=None, description="The last error's message.")
    error_code: str | None = None
    result_data: str | None = Field(default=None, description="What the worker returned (JSON).")


class JobsPage(OutModel):
    operation_id: str
    job_type: str
    jobs: list[JobView]
    next_cursor: int | None = Field(description="Pass as cursor to get the next page.")
