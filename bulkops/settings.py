"""Settings of the Bulkops deployables.

Every knob is read here, from ``BULKOPS_*`` environment variables (or a ``.env`` file), and
nowhere else. The two deployables each get one class: :class:`WorkerSettings` for the Faust
worker and :class:`ApiSettings` for the FastAPI process. In the embedded single-process mode
(``bulkops up``) both are built from the same environment.

Dev defaults for secrets are labelled as such and refused unless ``BULKOPS_ENV=dev``.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_JWT_SECRET = "dev-only-jwt-secret-change-me-0123456789"  # noqa: S105 - labelled dev default
DEV_CODE_SECRET = "dev-only-code-secret-change-me-0123456789"  # noqa: S105 - labelled dev default
_DEV_SECRETS = {DEV_JWT_SECRET, DEV_CODE_SECRET}


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

    # ClickHouse: a DSN selects a server over HTTP (``http://user:pass@host:8123/db``);
    # without one the embedded chDB engine keeps its data in ``chdb_path``.
    clickhouse_dsn: str | None = None
    chdb_path: Path = Path(".data/chdb")
    clickhouse_database: str = Field(default="bulkops", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")

    # Secrets: HS256 key for bearer tokens, and the key behind code generation.
    jwt_secret: str = DEV_JWT_SECRET
    code_secret: str = DEV_CODE_SECRET

    log_level: str = "INFO"
    # The seed's quota is 5,000 items per operation; raise it for bulk code runs of millions.
    max_items_per_operation: int = Field(default=5000, ge=1, le=50_000_000)
    max_batch_size: int = Field(default=5000, ge=1, le=20000)
    # Progress keeps one bit per batch; this bounds that bitmap (and the batch count) per operation.
    max_batches_per_operation: int = Field(default=100_000, ge=1, le=10_000_000)

    @model_validator(mode="after")
    def _refuse_dev_secrets_outside_dev(self) -> BulkopsSettings:
        if self.env != "dev":
            for name in ("jwt_secret", "code_secret"):
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


class WorkerSettings(BulkopsSettings):
    """The Faust worker: explode, process, progress, sink."""

    status_interval_seconds: float = Field(default=1.0, gt=0, le=10)
    sink_max_messages: int = Field(default=200, ge=1, le=10000)
    sink_within_seconds: float = Field(default=0.25, gt=0, le=10)
    max_errors_in_status: int = Field(default=50, ge=0, le=1000)
    # Static group membership: a worker restarted with the same id takes its partitions back
    # at once instead of waiting for the broker to time the old member out. Give every worker
    # process on one host its own id (the default is the host name).
    instance_id: str = Field(default_factory=socket.gethostname, pattern=r"^[A-Za-z0-9._-]{1,200}$")
    session_timeout_seconds: float = Field(default=10.0, ge=6, le=300)


class ApiSettings(BulkopsSettings):
    """The REST API."""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    token_leeway_seconds: int = Field(default=10, ge=0, le=300)
    produce_timeout_seconds: float = Field(default=15.0, gt=0)
    status_view_ready_timeout_seconds: float = Field(default=30.0, gt=0)
