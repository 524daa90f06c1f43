"""Settings of the Bulkops deployables.

Every knob is read here, from ``BULKOPS_*`` environment variables (or a ``.env`` file), and
nowhere else. The two deployables each get one class: :class:`WorkerSettings` for the Faust
worker and :class:`ApiSettings` for the FastAPI process. In the embedded single-process mode
(``bulkops up``) both are built from the same environment.

Dev defaults for secrets are labelled as such and refused unless ``BULKOPS_ENV=dev``.
"""

from __future__ import annotations

import math
import os
import socket
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.quotas import RUNNING_LIMIT

DEV_JWT_SECRET = "dev-only-jwt-secret-change-me-0123456789"  # noqa: S105 - labelled dev default
DEV_CODE_SECRET = "dev-only-code-secret-change-me-0123456789"  # noqa: S105 - labelled dev default
DEV_PROVIDER_TOKEN = "dev-only-provider-token-for-the-simulator"  # noqa: S105 - labelled dev default
DEV_WEBHOOK_SECRET = "dev-only-webhook-secret-change-me-012345"  # noqa: S105 - labelled dev default
_DEV_SECRETS = {DEV_JWT_SECRET, DEV_CODE_SECRET, DEV_PROVIDER_TOKEN, DEV_WEBHOOK_SECRET}


class BulkopsSettings(BaseSettings):
    """What the worker and the API share: where Kafka and ClickHouse are, and the topic layout."""

    model_config = SettingsConfigDict(
        env_prefix="BULKOPS_", env_file=".env", extra="ignore", frozen=True
    )

    env: Literal["dev", "test", "prod"] = "dev"
    kafka_bootstrap: str = "127.0.0.1:9092"
    topic_prefix: str = Field(default="bulkops", pattern=r"^[A-Za-z0-9._-]{1,100}$")
    partitions: int = Field(default=8, ge=1, le=256)
    replication_factor: int = Field(default=1, ge=1, le=5)
    # How long Kafka keeps the flow and control topics' messages: longer than a worker may be
    # down (what it has not consumed by then is lost); dead letters longer, for inspection.
    topic_retention_hours: int = Field(default=168, ge=1, le=87_600)
    dead_letter_retention_hours: int = Field(default=720, ge=1, le=87_600)

    # ClickHouse: a DSN selects a server over HTTP (``http://user:pass@host:8123/db``);
    # without one the embedded chDB engine keeps its data in ``chdb_path``.
    clickhouse_dsn: str | None = None
    chdb_path: Path = Path(".data/chdb")
    clickhouse_database: str = Field(default="bulkops", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
    # Fault drills: while this file exists every ClickHouse insert fails (analytics.faults).
    # Refused with BULKOPS_ENV=prod.
    clickhouse_write_fault_file: Path | None = None
    # How long ClickHouse keeps rows (TTL, applied on start; docs/analytics.md "Retention").
    # Results (operations, items, codes after they expire): long, for statistics. Personal data
    # (recipients' addresses and rendered messages, dealer invitations, item batches): short.
    retention_results_days: int = Field(default=400, ge=1, le=36_500)
    retention_personal_days: int = Field(default=30, ge=1, le=36_500)

    # Secrets: HS256 key for bearer tokens, and the key behind code generation.
    jwt_secret: str = DEV_JWT_SECRET
    code_secret: str = DEV_CODE_SECRET
    # Master key behind each sponsor's webhook signing secret.
    webhook_secret: str = DEV_WEBHOOK_SECRET
    # Allow callback URLs on loopback/private addresses (tests, on-premise receivers).
    webhook_allow_private: bool = False

    log_level: str = "INFO"
    # ``json``: one JSON object per line, with operation_id/sponsor_id fields (core/logs.py).
    log_format: Literal["text", "json"] = "text"
    # The seed's quota is 5,000 items per operation; raise it for bulk code runs of millions.
    max_items_per_operation: int = Field(default=5000, ge=1, le=50_000_000)
    max_batch_size: int = Field(default=5000, ge=1, le=20000)
    # The seed's other quotas, per sponsor (0: unlimited). An Admin overrides them through
    # the API, for every sponsor or for one; operations an Admin submits are not limited
    # (but counted) unless ``quota_exempt_admins`` is off. Days are UTC days.
    quota_max_concurrent_operations: int = Field(default=3, ge=0, le=RUNNING_LIMIT)
    quota_max_operations_per_day: int = Field(default=10, ge=0, le=10_000_000)
    quota_max_items_per_day: int = Field(default=50_000, ge=0, le=10**12)
    quota_exempt_admins: bool = True
    # Tests of the midnight rollover: a file holding seconds added to the quota clock.
    # Refused with BULKOPS_ENV=prod.
    quota_clock_file: Path | None = None
    # Unfinished operations per sponsor, whatever the quotas say and whoever submitted them
    # (the worker keeps them in one record: see RUNNING_LIMIT).
    max_running_operations_per_sponsor: int = Field(default=RUNNING_LIMIT, ge=1, le=RUNNING_LIMIT)
    # Progress keeps one bit per batch; this bounds that bitmap (and the batch count) per operation.
    max_batches_per_operation: int = Field(default=100_000, ge=1, le=10_000_000)

    # Link sends: the price of one message per channel (the budget's currency), where
    # ``{link}`` points, and how phone numbers without a country code are read.
    price_sms: float = Field(default=0.05, ge=0)
    price_whatsapp: float = Field(default=0.03, ge=0)
    price_email: float = Field(default=0.001, ge=0)
    link_base_url: str = "https://sponsor.example.com/redeem"
    default_phone_region: str = Field(default="TR", pattern=r"^[A-Z]{2}$")

    # Pacing: sends per second per sender (provider account) and per sponsor and channel.
    sender_rate_sms: float = Field(default=100.0, gt=0)
    sender_rate_whatsapp: float = Field(default=80.0, gt=0)
    sender_rate_email: float = Field(default=50.0, gt=0)
    sponsor_rate_per_second: float = Field(default=1000.0, gt=0)

    def sender_rate(self, channel: str) -> float:
        """Sends per second of one provider account (sender) on ``channel``."""
        return {
            "SMS": self.sender_rate_sms,
            "WhatsApp": self.sender_rate_whatsapp,
            "Email": self.sender_rate_email,
        }[channel]

    def send_rate(self, channel: str) -> float:
        """The pace one sponsor's sends on ``channel`` can reach."""
        return min(self.sender_rate(channel), self.sponsor_rate_per_second)

    def price(self, channel: str) -> float:
        return {"SMS": self.price_sms, "WhatsApp": self.price_whatsapp, "Email": self.price_email}[
            channel
        ]

    @model_validator(mode="after")
    def _refuse_dev_secrets_outside_dev(self) -> BulkopsSettings:
        if self.env == "prod" and self.clickhouse_write_fault_file is not None:
            raise ValueError("BULKOPS_CLICKHOUSE_WRITE_FAULT_FILE is for fault drills, not prod")
        if self.env == "prod" and self.quota_clock_file is not None:
            raise ValueError("BULKOPS_QUOTA_CLOCK_FILE is for tests, not prod")
        if self.env != "dev":
            for name in ("jwt_secret", "code_secret", "webhook_secret"):
                value = getattr(self, name)
                if value in _DEV_SECRETS:
                    raise ValueError(
                        f"BULKOPS_{name.upper()} still has its dev-only default; "
                        f"set a real secret or run with BULKOPS_ENV=dev"
                    )
                if len(value) < 32:
                    raise ValueError(f"BULKOPS_{name.upper()} must be at least 32 characters")
        return self

    def size_violation(self, total_items: int, batch_size: int) -> tuple[str, str] | None:
        """The (field, reason) of the first size limit an operation breaks, if any.

        The API answers 422 with it; the worker dead-letters requests produced straight to
        Kafka that break it, so both edges enforce the same limits.
        """
        if total_items > self.max_items_per_operation:
            return "quantity", f"at most {self.max_items_per_operation} items per operation"
        if batch_size > self.max_batch_size:
            return "processing.batchSize", f"at most {self.max_batch_size}"
        if -(-total_items // batch_size) > self.max_batches_per_operation:
            return (
                "processing.batchSize",
                f"too small for the quantity: at most {self.max_batches_per_operation} "
                "batches per operation",
            )
        return None

    @property
    def app_id(self) -> str:
        """Faust application id: also the consumer group and the prefix of table changelogs."""
        return f"{self.topic_prefix}-worker"

    @property
    def processor_group(self) -> str:
        """The consumer group the processor processes share on the work topic."""
        return f"{self.app_id}-processors"


def spare_cores() -> int:
    """The cores this process may run on (its affinity, where the OS tells), but one."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(0, (usable or 1) - 1)


class WorkerSettings(BulkopsSettings):
    """The Faust worker: explode, process, progress, sink."""

    status_interval_seconds: float = Field(default=1.0, gt=0, le=10)
    # A running operation that did not change is re-published this often (lastUpdated, ETA).
    status_refresh_seconds: float = Field(default=10.0, gt=0, le=300)
    # How often held batches (paused, scheduled, spread) are checked for being due, and how
    # many are released per check and operation.
    release_interval_seconds: float = Field(default=0.25, gt=0, le=10)
    release_batches_per_tick: int = Field(default=500, ge=1, le=10_000)
    # The stall watchdog: how often it looks, and how long an operation must have stood
    # still, with its partition drained, before its outstanding batches count as lost. Keep
    # it above the API's produce timeout: a submission's chunks may take that long.
    stall_check_interval_seconds: float = Field(default=5.0, gt=0, le=300)
    stall_seconds: float = Field(default=30.0, ge=1, le=3600)
    sink_max_messages: int = Field(default=200, ge=1, le=10000)
    sink_within_seconds: float = Field(default=0.25, gt=0, le=10)
    # Operation rows and requests wait this long (or for this many rows) to go to ClickHouse
    # in one insert per table: streams/writebehind.py. 0 writes each at once.
    write_behind_seconds: float = Field(default=0.1, ge=0, le=5)
    write_behind_max_rows: int = Field(default=5000, ge=1, le=100_000)
    # How long the worker's producer holds a message for others to the same partition. A
    # small operation's messages went in requests of their own at 5 ms, and writing them was
    # 11-16 % of the event loop; each hop may wait this long (docs/architecture.md).
    producer_linger_seconds: float = Field(default=0.02, ge=0, le=1)
    # How long a stopping or rebalancing worker waits for the batches it is running (a job
    # batch may wait for another system up to its type's timeout and retries). After it, on
    # a stop what is still running is not acknowledged and runs again after the restart, as
    # after a crash; on a rebalance the job batches still waiting go back on their topic.
    shutdown_grace_seconds: float = Field(default=10.0, ge=0, le=600)
    max_errors_in_status: int = Field(default=50, ge=0, le=1000)
    # Static group membership: a worker restarted with the same id takes its partitions back
    # at once instead of waiting for the broker to time the old member out. Give every worker
    # process on one host its own id (the default is the host name).
    instance_id: str = Field(default_factory=socket.gethostname, pattern=r"^[A-Za-z0-9._-]{1,200}$")
    session_timeout_seconds: float = Field(default=10.0, ge=6, le=300)
    webhook_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    webhook_max_attempts: int = Field(default=6, ge=1, le=20)
    webhook_backoff_seconds: float = Field(default=1.0, ge=0, le=300)
    # Faust's local directory (table state, one sub-directory per app id).
    worker_data_dir: Path = Path(".data/worker")
    # Where the tables live: RocksDB under the data dir (a restart reads only the changelogs'
    # tail) or memory (a restart replays the changelogs from the start).
    table_store: Literal["rocksdb", "memory"] = "rocksdb"
    # A finished operation leaves the worker's tables and the status topic (a tombstone) this
    # long after it ended; its last snapshot is kept in ClickHouse, where the API reads it.
    # Keep it well above the time a message may wait uncommitted (minutes): a request
    # replayed after its operation left would run again.
    finished_retention_seconds: float = Field(default=3600.0, ge=1, le=30 * 86_400)
    # A cancel or pause whose operation never arrives is forgotten after this long.
    early_control_retention_seconds: float = Field(default=86_400.0, ge=1, le=30 * 86_400)
    eviction_interval_seconds: float = Field(default=30.0, gt=0, le=3600)
    # Fair turns on a partition: an operation has at most about this many items released to
    # the items topic and not yet counted (never fewer than 4 batches); the rest wait their
    # turn, so a small operation never queues behind the whole of a big one. Sends go at
    # their channel's pace, so their window is what that pace sends in so many seconds.
    # 0: no limit.
    release_window_items: int = Field(default=100_000, ge=0, le=10_000_000)
    release_window_send_seconds: float = Field(default=5.0, ge=0, le=3600)

    # Operator alerts (streams/alerts.py): an operation whose failed share of judged items
    # reaches ``alert_failure_rate`` (once ``alert_min_items`` are judged), or that runs
    # without an item counted for ``alert_stalled_seconds`` (0: never), raises a metric, a
    # WARNING line and, with a URL, a signed ``operation_alert`` webhook to the operators.
    alert_failure_rate: float = Field(default=0.25, gt=0, le=1)
    alert_min_items: int = Field(default=100, ge=1, le=10_000_000)
    alert_stalled_seconds: float = Field(default=600.0, ge=0, le=7 * 86_400)
    alert_check_interval_seconds: float = Field(default=15.0, gt=0, le=300)
    alert_webhook_url: str | None = Field(default=None, pattern=r"^https?://\S+$")

    # A worker on its own (``bulkops worker``) serves its Prometheus metrics on this port
    # (``/metrics``; 0: not at all). Run with the API (``serve``), they are on the API's.
    metrics_port: int = Field(default=9108, ge=0, le=65535)

    # Item batches processed at once (link sends wait on I/O; codes do not care).
    process_concurrency: int = Field(default=32, ge=1, le=1000)
    # Processor processes started beside the worker (`serve`, `up`, `worker`) for batches
    # that need no worker state (code generation: streams/processor.py); default one per
    # core this process may use beyond its own, 0 processes every batch in the worker. More
    # can run anywhere with `bulkops processor`.
    processors: int = Field(default_factory=spare_cores, ge=0, le=64)

    # Providers. The defaults point at the simulator (`bulkops simulator`) on 127.0.0.1.
    sms_api_url: str = "http://127.0.0.1:8025"
    sms_account_sid: str = "ACdevsimulator"
    sms_auth_token: str = DEV_PROVIDER_TOKEN
    sms_from: str = "+905550000000"
    whatsapp_api_url: str = "http://127.0.0.1:8025"
    whatsapp_api_version: str = "v21.0"
    whatsapp_phone_number_id: str = "100000000000001"
    whatsapp_token: str = DEV_PROVIDER_TOKEN
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=2525, ge=1, le=65535)
    smtp_from: str = "Bulkops <no-reply@sponsor.example.com>"
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_start_tls: bool = False
    provider_timeout_seconds: float = Field(default=10.0, gt=0, le=120)

    @model_validator(mode="after")
    def _refuse_dev_provider_tokens_outside_dev(self) -> WorkerSettings:
        if self.env != "dev":
            for name in ("sms_auth_token", "whatsapp_token"):
                if getattr(self, name) == DEV_PROVIDER_TOKEN:
                    raise ValueError(
                        f"BULKOPS_{name.upper()} still has its dev-only default; "
                        "set the provider's credentials or run with BULKOPS_ENV=dev"
                    )
        return self

    def release_window(
        self, total_items: int, batches_total: int, channel: str | None, priority: int = 5
    ) -> int:
        """The release window of an operation, in batches (0: none); ``channel`` for sends.

        Weighted by ``priority`` (5 is the window as configured, 10 twice it, 1 a fifth):
        operations sharing a partition are served in proportion to their windows.
        """
        if channel is None:
            items = float(self.release_window_items)
        else:
            items = self.send_rate(channel) * self.release_window_send_seconds
        if not items or not batches_total:
            return 0
        batch_size = -(-total_items // batches_total)
        return max(1, round(max(4, math.ceil(items / batch_size)) * priority / 5))


class ApiSettings(BulkopsSettings):
    """The REST API."""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    # Idle keep-alive connections are closed after this. Longer than clients' and proxies'
    # pools (httpx 5 s, nginx 60 s): with uvicorn's 5 s, a pooled connection reused at the
    # moment the server closed it reset a submit (seen in the 20,000-operation soak).
    http_keep_alive_seconds: int = Field(default=75, ge=1, le=3600)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    # send-links bodies carry the recipients: 100,000 of them are about 20 MB of JSON.
    max_link_send_body_bytes: int = Field(default=32 * 1_048_576, ge=1024)
    # A send-links list of this many recipients has its addresses checked by a pool of
    # processes (one per core unless set; 0 or 1: always in the API process).
    address_check_processes: int | None = Field(default=None, ge=0, le=64)
    address_check_parallel_from: int = Field(default=10_000, ge=1)
    # jobs bodies carry the items (each as large as its type's schema allows).
    max_job_body_bytes: int = Field(default=32 * 1_048_576, ge=1024)
    token_leeway_seconds: int = Field(default=10, ge=0, le=300)
    produce_timeout_seconds: float = Field(default=15.0, gt=0)
    # How long POST /cancel waits for the worker to confirm that no new item will start.
    control_ack_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    # How long a submit under a quota waits for the worker's verdict (admitted or refused);
    # after that it answers 202 and the status says if the worker refused it later.
    quota_verdict_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    status_view_ready_timeout_seconds: float = Field(default=30.0, gt=0)
    # Dealer invitations from Excel (001_*): upload limits, batching, and which subscription
    # tier id holds each dealer tier's codes.
    dealer_max_file_bytes: int = Field(default=5 * 1_048_576, ge=1024, le=64 * 1_048_576)
    dealer_max_rows: int = Field(default=2000, ge=1, le=100_000)
    dealer_batch_size: int = Field(default=50, ge=1, le=1000)
    dealer_max_concurrency: int = Field(default=50, ge=1, le=100)
    dealer_tier_ids: dict[str, int] = {"S": 1, "M": 2, "L": 3, "XL": 4}
    dealer_invite_url: str = "https://sponsor.example.com/dealer-invite"
    # Admins' read-only SQL (POST /admin/sql, `bulkops sql`): result rows and seconds per query.
    analytics_max_rows: int = Field(default=100_000, ge=1, le=10_000_000)
    analytics_max_seconds: int = Field(default=30, ge=1, le=3600)
    # Excel exports are built whole before they are sent, at about 5,000 rows/s of this
    # process's CPU: larger operations export as CSV or Parquet (streamed, 50-120k rows/s).
    export_xlsx_max_items: int = Field(default=100_000, ge=1, le=1_000_000)


class ClientSettings(BaseSettings):
    """The command-line client (``bulkops submit-codes``, ``submit-links``, ``watch``)."""

    model_config = SettingsConfigDict(env_prefix="BULKOPS_", env_file=".env", extra="ignore")

    api_url: str = "http://127.0.0.1:8000"
    token: str | None = None
