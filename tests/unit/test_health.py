"""``/healthz`` and ``/readyz`` on fakes: ready when every check passes, 503 naming each
check that does not."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.unit.conftest import FakeMessageSink


def test_ready_when_kafka_clickhouse_and_the_status_view_answer(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "statusViewReady": True}
    answer = client.get("/readyz")
    assert answer.status_code == 200
    assert answer.json() == {
        "status": "ready",
        "checks": {
            "kafka": "a broker answers",
            "clickhouse": "answers",
            "statusView": "caught up",
            "worker": "not in this process",
        },
    }


def test_not_ready_names_every_failing_check(client: TestClient, sink: FakeMessageSink) -> None:
    sink.down = True
    client.app.state.store.reader.down = True  # type: ignore[attr-defined]
    client.app.state.status_view.ready.clear()  # type: ignore[attr-defined]
    answer = client.get("/readyz")
    assert answer.status_code == 503
    body = answer.json()
    assert body["success"] is False and body["error"] == "NOT_READY"
    assert body["details"]["checks"]["kafka"] == "Kafka: no broker answered (fake)"
    assert body["details"]["checks"]["clickhouse"].startswith("ConnectionError")
    assert body["details"]["checks"]["statusView"] == "still reading the status topic"
    assert "kafka" in body["message"] and "clickhouse" in body["message"]
    assert client.get("/healthz").json()["statusViewReady"] is False  # alive all the same
