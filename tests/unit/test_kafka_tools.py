"""The local broker's ports, and librdkafka's log lines through logging."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from bulkops.localkafka import _ports, free_ports, new_cluster_id
from core.kafkalog import RepeatFilter, client_logger, install


def test_a_data_directory_keeps_its_ports_across_restarts(tmp_path: Path) -> None:
    port, controller = _ports(tmp_path, None, None)
    assert port != controller
    assert _ports(tmp_path, None, None) == (port, controller)
    assert json.loads((tmp_path / "ports.json").read_text()) == {
        "port": port,
        "controllerPort": controller,
    }


def test_an_asked_port_is_never_the_controller_s(tmp_path: Path) -> None:
    _, controller = _ports(tmp_path, None, None)
    port, again = _ports(tmp_path, controller, None)  # ask for the controller's old port
    assert port == controller and again != port


def test_a_cluster_id_never_starts_like_an_option() -> None:
    draws = iter([b"\xf8" + bytes(15), b"\x01" * 16])  # the first encodes as "-AAA..."
    cluster_id = new_cluster_id(lambda: next(draws))
    assert cluster_id == "AQEBAQEBAQEBAQEBAQEBAQ"
    assert all(not new_cluster_id().startswith("-") for _ in range(2000))


def test_free_ports_are_distinct() -> None:
    for _ in range(20):
        ports = free_ports(3)
        assert len(set(ports)) == 3


def _record(message: str, name: str = "bulkops.kafka.producer") -> logging.LogRecord:
    return logging.LogRecord(name, logging.WARNING, "", 0, message, None, None)


def test_a_repeating_line_is_shown_once_per_interval_with_its_count() -> None:
    now = [0.0]
    repeats = RepeatFilter(interval=60, clock=lambda: now[0])
    line = "FAIL [rdkafka#producer-1]: 127.0.0.1:{}/bootstrap: Connect to ipv4#127.0.0.1:{} failed"
    shown = []
    for second in range(0, 300):
        now[0] = float(second)
        record = _record(line.format(9092, 9092 + second % 3))
        if repeats.filter(record):
            shown.append(record.getMessage())
    assert len(shown) == 5  # at 0, 60, 120, 180, 240
    assert shown[1].endswith("(59 like it in the last 60s)")
    assert repeats.filter(_record("a different line"))


def test_only_kafka_clients_are_rate_limited() -> None:
    repeats = RepeatFilter(interval=60)
    aiokafka = [repeats.filter(_record("Unable connect to node 1", "aiokafka")) for _ in range(5)]
    ours = [repeats.filter(_record("operation x: Completed", "bulkops.worker")) for _ in range(5)]
    assert aiokafka == [True, False, False, False, False]
    assert all(ours)


def test_install_filters_every_root_handler_once(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("unit-root")
    handler = logging.StreamHandler()
    logger.addHandler(handler)
    try:
        install(logger)
        install(logger)
        assert sum(isinstance(f, RepeatFilter) for f in handler.filters) == 1
        assert client_logger("producer").name == "bulkops.kafka.producer"
    finally:
        logger.removeHandler(handler)
