"""The local broker says why it cannot start, on a real broker and real storage."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bulkops import localkafka


def test_storage_formatted_for_another_broker_is_explained(tmp_path: Path) -> None:
    data_dir = tmp_path / "kafka"
    localkafka.start(data_dir)
    localkafka.stop(data_dir, timeout=10)
    meta = data_dir / "logs" / "meta.properties"
    meta.write_text(re.sub(r"node\.id=\d+", "node.id=2", meta.read_text()))

    with pytest.raises(localkafka.BrokerError) as raised:
        localkafka.start(data_dir, timeout=60)
    message = str(raised.value)
    assert "exited with code 1 while starting" in message
    assert "Stored node id 2 doesn't match" in message
    assert "formatted for another broker or cluster" in message
    assert not (data_dir / "broker.pid").exists()  # nothing left running or recorded
