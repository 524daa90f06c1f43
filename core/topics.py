"""Every topic name of the system, in one place.

All flow topics are keyed by sponsor id and share one partition count, so one sponsor's
operations, batches, results and progress land on the same partition of the same worker
(Faust's assignor co-partitions topics with equal partition counts). The status topic is
keyed by operation id and compacted: the latest snapshot of every operation survives.
"""

from __future__ import annotations

from dataclasses import dataclass

HOUR_MS = 3_600_000
# Segments roll at least this often, so that retention and compaction reach recent data:
# Kafka deletes and compacts closed segments only, and its default (7 days or 1 GiB) would
# keep a quiet topic's messages twice their retention and its status history uncompacted.
DELETE_SEGMENT_MS = 6 * HOUR_MS
COMPACT_SEGMENT_MS = HOUR_MS
# The worker's Faust tables (streams/tables.py): their changelogs are created with the topics.
WORKER_TABLES = ("operations", "serials", "early-controls", "quotas")


@dataclass(frozen=True)
class TopicSpec:
    name: str
    compacted: bool = False
    # Dead letters are kept longer than the flow: someone has to look at them.
    inspected: bool = False

    def config(self, *, retention_hours: int, dead_letter_retention_hours: int) -> dict[str, str]:
        """The topic's Kafka configuration: compacted topics keep the latest value per key
        (a tombstone for a day); the rest delete by age (docs/operations.md, "Topics")."""
        if self.compacted:
            return {
                "cleanup.policy": "compact",
                "delete.retention.ms": str(24 * HOUR_MS),
                "segment.ms": str(COMPACT_SEGMENT_MS),
            }
        hours = dead_letter_retention_hours if self.inspected else retention_hours
        retention_ms = hours * HOUR_MS
        return {
            "cleanup.policy": "delete",
            "retention.ms": str(retention_ms),
            "segment.ms": str(min(DELETE_SEGMENT_MS, retention_ms)),
        }


@dataclass(frozen=True)
class Topics:
    prefix: str

    @property
    def operations(self) -> TopicSpec:
        """Submitted operations (``OperationRequested``)."""
        return TopicSpec(f"{self.prefix}.operations")

    @property
    def items(self) -> TopicSpec:
        """Item batches exploded from an operation (``ItemBatch``)."""
        return TopicSpec(f"{self.prefix}.items")

    @property
    def work(self) -> TopicSpec:
        """Item batches of kinds that need no worker state (``ItemBatch``: code generation),
        for the processor processes (:mod:`streams.processor`) when the worker runs some."""
        return TopicSpec(f"{self.prefix}.work")

    @property
    def results(self) -> TopicSpec:
        """Outcomes of item batches (``ResultBatch``)."""
        return TopicSpec(f"{self.prefix}.results")

    @property
    def progress(self) -> TopicSpec:
        """Result batches stored in ClickHouse (``BatchSunk``): what progress counts."""
        return TopicSpec(f"{self.prefix}.progress")

    @property
    def control(self) -> TopicSpec:
        """Cancel / pause / resume commands (``ControlCommand``)."""
        return TopicSpec(f"{self.prefix}.control")

    @property
    def status(self) -> TopicSpec:
        """Latest snapshot per operation (``OperationSnapshot``), compacted."""
        return TopicSpec(f"{self.prefix}.operation-status", compacted=True)

    @property
    def quotas(self) -> TopicSpec:
        """Each sponsor's quota overrides and use (``QuotaSnapshot``), compacted; keyed by
        sponsor id, the defaults under ``defaults``."""
        return TopicSpec(f"{self.prefix}.sponsor-quotas", compacted=True)

    @property
    def job_types(self) -> TopicSpec:
        """Registered job types (``JobTypeRecord``), compacted; keyed by the type's name."""
        return TopicSpec(f"{self.prefix}.job-types", compacted=True)

    def jobs(self, job_type: str) -> TopicSpec:
        """Batches of one job type for the owning system's workers: ``ticket:update_status``
        goes to ``<prefix>.jobs.ticket.update_status`` (Kafka names have no ``:``)."""
        return TopicSpec(f"{self.prefix}.jobs.{job_type.replace(':', '.')}")

    @property
    def job_results(self) -> TopicSpec:
        """Outcomes of job batches from the owning systems' workers (``JobResult``), keyed by
        sponsor id like the batches they answer."""
        return TopicSpec(f"{self.prefix}.job-results")

    @property
    def job_control(self) -> TopicSpec:
        """What the owning systems' workers should know about job operations (``JobControl``:
        a cancel, so batches not started are dropped), compacted; keyed by operation id."""
        return TopicSpec(f"{self.prefix}.job-control", compacted=True)

    @property
    def dead_letter(self) -> TopicSpec:
        """Messages the worker could not use (``DeadLetter``)."""
        return TopicSpec(f"{self.prefix}.dead-letter", inspected=True)

    def changelogs(self) -> list[TopicSpec]:
        """The worker's table changelogs, as Faust names them (``<app id>-<table>-changelog``,
        the app id being ``<prefix>-worker``). Created with the other topics before the worker
        starts: on a broker that has just started, Faust creating them itself could lose the
        race with the first request (its table then saw 0 partitions, and the request was
        dead-lettered)."""
        return [
            TopicSpec(f"{self.prefix}-worker-{table}-changelog", compacted=True)
            for table in WORKER_TABLES
        ]

    def flow(self) -> list[str]:
        """The topics an operation's messages cross, in order, all keyed by sponsor."""
        return [spec.name for spec in (self.operations, self.items, self.results, self.progress)]

    def consumed(self) -> list[str]:
        """The topics the worker's consumer group reads (its lag is measured on these)."""
        return [*self.flow(), self.control.name]

    def internal(self) -> list[TopicSpec]:
        """Topics only the worker produces to, never transactionally: gapless by design."""
        return [self.items, self.results, self.progress]

    def all(self) -> list[TopicSpec]:
        return [
            self.operations,
            self.items,
            self.work,
            self.results,
            self.progress,
            self.control,
            self.status,
            self.quotas,
            self.job_types,
            self.job_results,
            self.job_control,
            self.dead_letter,
            *self.changelogs(),
        ]


def sponsor_key(sponsor_id: int) -> bytes:
    """The message key of every sponsor-keyed topic."""
    return str(sponsor_id).encode()


#: The key of the default quota overrides on the quotas topic (and of their updates).
DEFAULTS_KEY = b"defaults"
