"""POST /invite-bulk and friends against the API with a fake producer and store."""

from __future__ import annotations

import io
from typing import Any

from fastapi.testclient import TestClient
from openpyxl import load_workbook

from analytics.testing import MemoryStore
from api.auth import Role
from schemas.messages import OperationRequested, OperationsMessage, RecipientChunk
from tests.unit.conftest import FakeMessageSink, auth
from tests.unit.test_workbook import xlsx

URL = "/api/v1/sponsorship/dealer/invite-bulk"


def operations(sink: FakeMessageSink) -> list[Any]:
    return [
        OperationsMessage.validate_json(value)
        for topic, _, value in sink.sent
        if topic.endswith(".operations")
    ]


def rows(n: int, tier: str = "S", count: int = 1) -> list[list[Any]]:
    return [[f"bayi{i}@example.com", f"0532{i:07d}", f"Bayi {i}", count, tier] for i in range(n)]


def upload(
    client: TestClient,
    data: bytes,
    name: str = "dealers.xlsx",
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    **form: Any,
) -> Any:
    return client.post(
        URL,
        files={"file": (name, data, "application/octet-stream")},
        data={k: str(v) for k, v in form.items()},
        headers=auth() if headers is None else headers,
        params=params,
    )


def test_an_upload_is_queued_as_one_operation(client: TestClient, sink: FakeMessageSink) -> None:
    response = upload(client, xlsx(rows(120, "L", 3)), useRowSpecificCounts="true")
    assert response.status_code == 202, response.text
    body = response.json()
    job = body["data"]
    assert body["success"] and "120 dealer" in body["message"]
    assert job["totalDealers"] == 120 and job["status"] == "Pending"
    assert job["statusCheckUrl"] == f"/api/v1/sponsorship/dealer/bulk-status/{job['jobId']}"
    messages = operations(sink)
    header = messages[0]
    assert isinstance(header, OperationRequested)
    assert header.operation_type.value == "BulkDealerInvitation"
    assert header.link_send is not None and header.link_send.deliver
    dealers = [
        r.dealer
        for m in messages
        if isinstance(m, RecipientChunk)
        for r in m.recipients
        if r.dealer
    ]
    assert len(dealers) == 120
    assert {d.tier for d in dealers} == {"L"} and {d.code_count for d in dealers} == {3}
    assert len({d.token for d in dealers}) == 120
    assert dealers[0].phone == "+905320000000" and dealers[0].row_number == 2


def test_without_sms_nothing_is_to_be_delivered(client: TestClient, sink: FakeMessageSink) -> None:
    assert upload(client, xlsx(rows(3)), sendSms="false").status_code == 202
    header = operations(sink)[0]
    assert isinstance(header, OperationRequested) and header.link_send is not None
    assert header.link_send.deliver is False and header.link_send.price_per_message == 0


def test_all_row_errors_come_back_at_once(client: TestClient, sink: FakeMessageSink) -> None:
    bad = [[f"bad{i}", "123", f"Bayi {i}", 1, "S"] for i in range(30)]
    response = upload(client, xlsx(rows(5) + bad))
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "VALIDATION_FAILED"
    assert body["details"]["errorCount"] == 60
    assert {e["row"] for e in body["details"]["errors"]} == set(range(7, 37))
    assert sink.sent == []


def test_the_error_report_as_a_workbook(client: TestClient) -> None:
    data = xlsx([*rows(2), ["=1+1", "05321234599", "X", 1, "S"]])
    response = upload(client, data, params={"errorReport": "xlsx"})
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/vnd.openxmlformats")
    sheet = load_workbook(io.BytesIO(response.content)).active
    assert sheet is not None
    lines = [[c.value for c in row] for row in sheet.iter_rows(min_row=2)]
    assert [4, "Email"] in [line[:2] for line in lines]
    assert all(not str(line[3] or "").startswith("=") for line in lines)


def test_duplicates_and_existing_dealers(client: TestClient) -> None:
    client.app.state.store.invited(7, ["bayi1@example.com"])  # type: ignore[attr-defined]
    data = xlsx([*rows(3), ["BAYI0@example.com", "05329999999", "Again", 1, "S"]])
    errors = upload(client, data).json()["details"]["errors"]
    assert {(e["row"], e["error"]) for e in errors} == {
        (3, "A dealer with this email already exists"),
        (5, "Duplicate of row 2"),
    }


def test_not_enough_codes_in_a_tier(client: TestClient, sink: FakeMessageSink) -> None:
    store = MemoryStore()
    store.stock_codes(7, 1, [f"S-{i}" for i in range(100)])
    store.stock_codes(7, 3, [f"L-{i}" for i in range(12)])
    client.app.state.store = store  # type: ignore[attr-defined]
    response = upload(client, xlsx(rows(20, "L", 2)), useRowSpecificCounts="true")
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "INSUFFICIENT_CODES"
    assert body["message"] == "Yetersiz kod (L tier). Gerekli: 40, Mevcut: 12"
    assert body["details"]["tiers"] == [{"tier": "L", "required": 40, "available": 12}]
    assert sink.sent == []


def test_file_level_problems(client: TestClient) -> None:
    assert upload(client, b"").json()["error"] == "EMPTY_FILE"
    csv = b"Email,Phone\na@example.com,05321234567\n"
    assert upload(client, csv).json()["error"] == "NOT_XLSX"
    wrong_name = upload(client, xlsx(rows(1)), name="dealers.csv")
    assert wrong_name.status_code == 422 and wrong_name.json()["error"] == "UNSUPPORTED_FILE_TYPE"
    too_many = upload(client, xlsx(rows(2001)))
    assert too_many.status_code == 422 and too_many.json()["error"] == "TOO_MANY_ROWS"
    assert upload(client, xlsx(rows(1)), defaultTier="XXL").status_code == 422
    assert upload(client, xlsx(rows(1)), defaultCodeCount="-1").status_code == 422


def test_oversized_files_are_413(client: TestClient) -> None:
    response = upload(client, b"PK" + b"\0" * (6 * 1_048_576))
    assert response.status_code == 413
    assert response.json()["success"] is False


def test_unauthorised_and_admin_rules(client: TestClient) -> None:
    assert upload(client, xlsx(rows(1)), headers={}).status_code == 401
    admin = auth(None, Role.ADMIN)
    assert upload(client, xlsx(rows(1)), headers=admin).status_code == 422
    assert upload(client, xlsx(rows(1)), headers=admin, sponsorId=7).status_code == 202
    other = upload(client, xlsx(rows(1)), sponsorId=8)
    assert other.status_code == 403


def test_template_download(client: TestClient) -> None:
    response = client.get(f"{URL}/template.xlsx", headers=auth())
    assert response.status_code == 200
    assert "attachment" in response.headers["content-disposition"]
    assert client.get(f"{URL}/template.xlsx").status_code == 401


def test_status_of_unknown_or_foreign_jobs_is_404(client: TestClient) -> None:
    response = client.get(
        "/api/v1/sponsorship/dealer/bulk-status/dealer_" + "0" * 32, headers=auth()
    )
    assert response.status_code == 404
    bad_id = client.get("/api/v1/sponsorship/dealer/bulk-status/x;drop", headers=auth())
    assert bad_id.status_code == 422
