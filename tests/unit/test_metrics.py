"""Prometheus metrics on fakes: counters move once per counted thing (never on replays),
labels stay bounded (route templates, no ids), and ``/metrics`` speaks the text format.

Counters are process-wide, so every test reads the change it caused."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from api.observability import LiveOperations
from core.lag import ConsumerLag, LagMetrics
from schemas.messages import BatchSunk
from schemas.status import OperationSnapshot
from streams.agents import count, explode, guarded, process
from streams.testing import event, fake_worker
from streams.writebehind import WriteBehind
from tests.unit.conftest import auth
from tests.unit.test_agents import CODEGEN, codes_request, handle_operations, run_batches_through
from tests.unit.test_eviction import snapshot_of
from tests.unit.test_sending import FakeGate, FakeProvider, batch, run, throttled, transient

NOW = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@contextmanager
def change(name: str, **labels: str) -> Iterator[Callable[[], float]]:
    """How much ``name{labels}`` moved inside the block."""
    before = value(name, **labels)
    yield lambda: value(name, **labels) - before


async def test_items_and_finished_operations_are_counted_once_replays_not() -> None:
    worker = fake_worker()
    items = "bulkops_items_processed_total"
    codes = {"operation_type": "BulkCodeGeneration"}
    with (
        change(items, **codes, outcome="success") as succeeded,
        change(items, **codes, outcome="failed") as failed,
        change("bulkops_operations_finished_total", **codes, status="Completed") as finished,
    ):
        await handle_operations(worker, codes_request(total=1000, batch_size=250))
        await run_batches_through(worker)
        assert (succeeded(), failed(), finished()) == (1000, 0, 1)
        replay = BatchSunk(
            operation_id=CODEGEN, sponsor_id=7, batch_index=0, count=250, succeeded=250,
            failed=0, skipped=0, sunk_at=NOW,
        )  # fmt: skip
        await guarded(worker.ctx, event(replay, topic="unit.progress"), count.handle)
        assert (succeeded(), finished()) == (1000, 1), "a replayed batch is not counted again"


async def test_a_quota_refusal_counts_as_a_failed_operation() -> None:
    worker = fake_worker(quota_max_operations_per_day=1)
    labels = {"operation_type": "BulkCodeGeneration", "status": "Failed"}
    with change("bulkops_operations_finished_total", **labels) as refused:
        await guarded(worker.ctx, event(codes_request()), explode.handle)
        second = codes_request(operationId="codegen_" + "b" * 32)
        await guarded(worker.ctx, event(second, offset=1), explode.handle)
        assert refused() == 1


async def test_dead_letters_are_counted_by_topic_and_error_class() -> None:
    worker = fake_worker()
    labels = {"topic": "unit.items", "reason": "ValidationError"}
    with change("bulkops_dead_letters_total", **labels) as letters:
        malformed = event(b"{not json", sponsor_id=7, topic="unit.items")
        await guarded(worker.ctx, malformed, process.handle)
        assert letters() == 1


async def test_provider_requests_by_result_retries_and_latency() -> None:
    provider = FakeProvider({"+905320000000": [throttled(), transient()]})
    with (
        change("bulkops_provider_requests_total", channel="SMS", result="success") as ok,
        change("bulkops_provider_requests_total", channel="SMS", result="rate_limited") as limited,
        change("bulkops_provider_requests_total", channel="SMS", result="error") as errors,
        change("bulkops_send_retries_total", channel="SMS") as retries,
        change("bulkops_provider_latency_seconds_count", channel="SMS") as timed,
    ):
        await run(batch(2), provider, FakeGate(), [])
        assert (ok(), limited(), errors(), retries(), timed()) == (2, 1, 1, 1, 4)


async def test_the_write_behind_gauge_follows_the_buffer() -> None:
    stored: list[object] = []

    async def store(tables: object) -> None:
        stored.append(tables)

    behind = WriteBehind(store, interval=10, max_rows=100)
    worker = fake_worker()
    await handle_operations(worker, codes_request())
    state = worker.ctx.tables.operations.load(CODEGEN)
    assert state is not None
    with change("bulkops_write_behind_rows") as waiting:
        worker.ctx.behind = behind
        await worker.ctx.record_operation(state)
        assert waiting() == 1
        await behind.flush()
        assert waiting() == 0 and len(stored) == 1


def snapshot(operation_id: str, status: str) -> OperationSnapshot:
    return snapshot_of(0, status, operation_id)


def test_metrics_endpoint_has_route_templates_and_live_operations(client: TestClient) -> None:
    view = client.app.state.status_view  # type: ignore[attr-defined]
    view.apply(snapshot("codegen_" + "1" * 32, "Processing"))
    view.apply(snapshot("codegen_" + "2" * 32, "Processing"))
    view.apply(snapshot("codegen_" + "3" * 32, "Completed"))
    client.app.state.metrics_collectors = [LiveOperations(view)]  # type: ignore[attr-defined]
    secret_id = "codegen_" + "9" * 32
    assert client.get(f"/api/v1/bulk-operations/status/{secret_id}", headers=auth()).status_code
    assert client.get("/no/such/path").status_code == 404

    answer = client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = answer.text
    assert secret_id not in text, "ids never become label values"
    assert (
        'bulkops_http_request_duration_seconds_count{method="GET",'
        'route="/api/v1/bulk-operations/status/{operationId}",status="404"}'
    ) in text
    assert 'route="unmatched",status="404"' in text
    assert 'bulkops_operations{operation_type="BulkCodeGeneration",status="Processing"} 2.0' in text
    assert 'bulkops_operations{operation_type="BulkCodeGeneration",status="Completed"} 1.0' in text


def test_an_unreachable_broker_reads_as_no_lag_and_probe_not_ok() -> None:
    lag = ConsumerLag("127.0.0.1:1", "g", ["t"], timeout=0.5)
    assert lag.read() is None
    families = {family.name: family for family in lag.collect()}
    assert [s.value for s in families["bulkops_consumer_lag_probe_ok"].samples] == [0.0]
    assert families["bulkops_consumer_lag_messages"].samples == []


def test_the_lags_of_several_groups_are_one_family_per_metric() -> None:
    probes = [ConsumerLag("127.0.0.1:1", group, ["t"], timeout=0.2) for group in ("w", "p")]
    families = list(LagMetrics(*probes).collect())
    assert [f.name for f in families] == [
        "bulkops_consumer_lag_probe_ok",
        "bulkops_consumer_lag_messages",
    ]
    assert [s.labels["group"] for s in families[0].samples] == ["w", "p"]
    assert families[1].samples == []
