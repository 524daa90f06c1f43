"""Every query in docs/analytics.md runs, on synthetic history, and answers something."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from analytics.store import AnalyticsStore
from analytics.synthetic import SyntheticHistory
from tests.integration.conftest import store_with_history

DOC = Path(__file__).resolve().parents[2] / "docs" / "analytics.md"
QUERIES = re.findall(r"```sql\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)


@pytest.fixture(scope="module")
def store(chdb_dir: Path) -> Iterator[AnalyticsStore]:
    with store_with_history(
        chdb_dir,
        SyntheticHistory(
            operations=120,
            sponsors=4,
            sizes=(10, 100, 1000),
            since=datetime.now(UTC) - timedelta(days=10),
        ),
    ) as opened:
        yield opened


def test_the_document_answers_its_ten_questions() -> None:
    assert len(QUERIES) == 10


@pytest.mark.parametrize("sql", QUERIES, ids=[f"question-{n + 1}" for n in range(len(QUERIES))])
def test_query_runs_and_answers(store: AnalyticsStore, sql: str) -> None:
    rows = store.connection.query(sql, {})
    assert rows, "the query answered nothing on a populated store"
    assert all(value is not None for value in rows[0][:1])
