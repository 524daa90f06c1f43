"""The injected ClickHouse write fault: off without its trigger file, and while the file is
there every insert fails, alternately before and after it lands."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.exceptions import OperationalError

from analytics.faults import WriteFaults
from core.settings import WorkerSettings


class RecordingClient:
    def __init__(self) -> None:
        self.inserted: list[str] = []
        self.database = "bulkops"

    def insert(self, table: str, data: Any, **_: Any) -> None:
        self.inserted.append(table)


def test_inserts_fail_while_the_trigger_exists(tmp_path: Path) -> None:
    trigger = tmp_path / "down"
    client = RecordingClient()
    faulty = WriteFaults(client, trigger)  # type: ignore[arg-type]
    faulty.insert("items", [])
    assert client.inserted == ["items"]
    assert faulty.database == "bulkops"  # everything else passes through

    trigger.touch()
    with pytest.raises(OperationalError, match="refused"):
        faulty.insert("codes", [])
    with pytest.raises(OperationalError, match="landed, its answer lost"):
        faulty.insert("codes", [])
    assert client.inserted == ["items", "codes"]  # the second one did land

    trigger.unlink()
    faulty.insert("items", [])
    assert client.inserted == ["items", "codes", "items"] and faulty.injected == 2


def test_the_fault_is_refused_in_prod(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fault drills, not prod"):
        WorkerSettings(env="prod", clickhouse_write_fault_file=tmp_path / "down")
