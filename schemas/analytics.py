"""Analysts' read-only SQL (``POST /api/v1/admin/sql``) and operation exports."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import Field

from schemas.common import ApiModel
from schemas.responses import OutModel

MAX_SQL_CHARS = 100_000


class ResultFormat(StrEnum):
    JSON = "json"
    CSV = "csv"
    PARQUET = "parquet"


class ExportFormat(StrEnum):
    CSV = "csv"
    XLSX = "xlsx"
    PARQUET = "parquet"


class SqlQuery(ApiModel):
    """One read query; ``json`` answers in the envelope, ``csv`` and ``parquet`` as a file."""

    sql: str = Field(
        min_length=1,
        max_length=MAX_SQL_CHARS,
        examples=["SELECT channel, count() AS sends FROM v1_sends GROUP BY channel"],
    )
    format: ResultFormat = ResultFormat.JSON


class SqlColumn(OutModel):
    name: str
    type: str


class SqlResult(OutModel):
    columns: list[SqlColumn]
    rows: list[dict[str, Any]]
    row_count: int
    elapsed_seconds: float
    rows_read: int


class ErasureRequest(ApiModel):
    """One person's phone number (any format; read in ``BULKOPS_DEFAULT_PHONE_REGION`` without
    a country code) or e-mail address."""

    address: str = Field(min_length=3, max_length=320, examples=["+90 532 123 45 67"])


class ErasureResult(OutModel):
    address_kind: str = Field(examples=["phone"])
    rows_removed: dict[str, int]
    total_removed: int
