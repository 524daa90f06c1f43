"""Analytics through the REST API of a real server: an Admin's SQL (and ``bulkops sql``),
sponsors' item exports, and who may do which."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from typing import Any

import httpx
import pyarrow.parquet as pq
from openpyxl import load_workbook

from api.auth import Role
from tests.integration.conftest import ROOT, Server
from tests.integration.test_codegen_flow import submit, wait_terminal

SQL_URL = "/api/v1/admin/sql"


def admin(server: Server) -> httpx.Client:
    return httpx.Client(
        base_url=server.base_url,
        headers={"Authorization": f"Bearer {server.token(None, Role.ADMIN)}"},
        timeout=30,
    )


def test_admin_sql_answers_in_every_format_and_refuses_what_is_not_a_read(
    server: Server,
) -> None:
    sponsor = server.client(sponsor_id=41)
    wait_terminal(sponsor, submit(sponsor, {"subscriptionTierId": 2, "quantity": 300}))
    query = "SELECT sponsor_id, count() AS codes FROM v1_codes GROUP BY sponsor_id"
    with admin(server) as client:
        answer = client.post(SQL_URL, json={"sql": query})
        assert answer.status_code == 200, answer.text
        data = answer.json()["data"]
        assert data["rows"] == [{"sponsor_id": 41, "codes": 300}] and data["rowCount"] == 1
        assert [c["name"] for c in data["columns"]] == ["sponsor_id", "codes"]
        as_csv = client.post(SQL_URL, json={"sql": query, "format": "csv"})
        assert as_csv.headers["content-type"].startswith("text/csv")
        assert list(csv.reader(io.StringIO(as_csv.text)))[1] == ["41", "300"]
        as_parquet = client.post(SQL_URL, json={"sql": query, "format": "parquet"})
        assert pq.read_table(io.BytesIO(as_parquet.content)).num_rows == 1

        refused = client.post(SQL_URL, json={"sql": "ALTER TABLE items DELETE WHERE 1"})
        assert refused.status_code == 422
        assert refused.json()["error"] == "SQL_NOT_READ_ONLY"
        through_function = client.post(
            SQL_URL, json={"sql": "SELECT * FROM file('/etc/passwd', 'LineAsString')"}
        )
        assert through_function.json()["error"] == "SQL_NOT_READ_ONLY"
        too_long = client.post(SQL_URL, json={"sql": "SELECT 1 " + "-" * 100_000})
        assert too_long.status_code == 422 and too_long.json()["error"] == "VALIDATION_FAILED"
        bad_format = client.post(SQL_URL, json={"sql": "SELECT 1", "format": "xml"})
        assert bad_format.status_code == 422
        unknown_field = client.post(SQL_URL, json={"sql": "SELECT 1", "database": "system"})
        assert unknown_field.status_code == 422
    assert client.is_closed
    as_sponsor = httpx.post(
        f"{server.base_url}{SQL_URL}",
        json={"sql": "SELECT 1"},
        headers={"Authorization": f"Bearer {server.token(41)}"},
    )
    assert as_sponsor.status_code == 403 and as_sponsor.json()["error"] == "FORBIDDEN"
    assert httpx.post(f"{server.base_url}{SQL_URL}", json={"sql": "SELECT 1"}).status_code == 401

    cli = subprocess.run(
        [sys.executable, "-m", "bulkops.cli", "sql", "--url", server.base_url, query],
        cwd=ROOT,
        env={**os.environ, "BULKOPS_TOKEN": server.token(None, Role.ADMIN), "COLUMNS": "120"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 0, cli.stderr
    assert "300" in cli.stdout and "1 rows in" in cli.stderr
    denied = subprocess.run(
        [sys.executable, "-m", "bulkops.cli", "sql", "--url", server.base_url, "DROP TABLE items"],
        cwd=ROOT,
        env={**os.environ, "BULKOPS_TOKEN": server.token(None, Role.ADMIN)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert denied.returncode == 1 and "SQL_NOT_READ_ONLY" in denied.stderr


def test_a_sponsor_exports_its_own_operation_in_every_format(make_server: Any) -> None:
    server: Server = make_server(BULKOPS_EXPORT_XLSX_MAX_ITEMS="2500").start()
    owner = server.client(sponsor_id=42)
    operation = submit(owner, {"subscriptionTierId": 1, "quantity": 2500})
    wait_terminal(owner, operation)
    codes = {
        row["code"] for row in owner.get(f"/codes/{operation}?limit=2500").json()["data"]["codes"]
    }

    as_csv = owner.get(f"/items/{operation}/export?format=csv")
    assert as_csv.status_code == 200
    assert f"{operation}-items.csv" in as_csv.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert [int(r["index"]) for r in rows] == list(range(2500))
    assert {r["resultData"] for r in rows} == codes

    as_xlsx = owner.get(f"/items/{operation}/export?format=xlsx")
    sheet = load_workbook(io.BytesIO(as_xlsx.content), read_only=True).active
    assert sheet is not None
    assert sum(1 for _ in sheet.iter_rows(min_row=2)) == 2500

    as_parquet = owner.get(f"/items/{operation}/export?format=parquet")
    table = pq.read_table(io.BytesIO(as_parquet.content))
    assert table.num_rows == 2500 and set(table.column("resultData").to_pylist()) == codes

    other = server.client(sponsor_id=43)
    stranger = other.get(f"/items/{operation}/export?format=csv")
    assert stranger.status_code == 404 and stranger.json()["error"] == "OPERATION_NOT_FOUND"
    assert owner.get(f"/items/{operation}/export?format=pdf").status_code == 422
    unknown = "codegen_" + "0" * 32
    assert owner.get(f"/items/{unknown}/export").status_code == 404
    bigger = submit(owner, {"subscriptionTierId": 1, "quantity": 2501})
    wait_terminal(owner, bigger)  # known to the status view (a 202 comes before that)
    too_large = owner.get(f"/items/{bigger}/export?format=xlsx")
    assert too_large.status_code == 422 and too_large.json()["error"] == "EXPORT_TOO_LARGE"
    assert owner.get(f"/items/{bigger}/export?format=csv").status_code == 200
    unauthenticated = httpx.get(
        f"{server.base_url}/api/v1/bulk-operations/items/{operation}/export"
    )
    assert unauthenticated.status_code == 401
