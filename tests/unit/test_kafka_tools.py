"""The local broker: its ports, why it does not start, and librdkafka's log lines."""

from __future__ import annotations

import json
import logging
import os
import socket
from pathlib import Path

import pytest

from bulkops import localkafka
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


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15', 17),
        ('java version "1.8.0_412"', 8),
        ('openjdk version "21" 2023-09-19', 21),
        ("no version here", None),
    ],
)
def test_java_major_version(output: str, major: int | None) -> None:
    assert localkafka.java_major(output) == major


def test_no_java_is_said_plainly(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(localkafka, "fetch", lambda: tmp_path)
    monkeypatch.setattr(localkafka.shutil, "which", lambda name: None)
    with pytest.raises(localkafka.BrokerError, match=r"Java 17\+ is needed.*none on PATH"):
        localkafka.start(tmp_path / "broker")


def test_a_taken_port_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(localkafka, "fetch", lambda: tmp_path)
    monkeypatch.setattr(localkafka, "_java", lambda: "java")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(localkafka.BrokerError, match=f"port {port} is already in use"):
            localkafka.start(tmp_path / "broker", port=port)


def test_a_broker_still_running_from_the_directory_is_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(localkafka, "fetch", lambda: tmp_path)
    monkeypatch.setattr(localkafka, "_java", lambda: "java")
    (tmp_path / "broker.pid").write_text(str(os.getpid()))
    with pytest.raises(localkafka.BrokerError, match=f"still running \\(pid {os.getpid()}\\)"):
        localkafka.start(tmp_path)


def test_the_exit_reason_is_the_last_fatal_error_with_a_hint(tmp_path: Path) -> None:
    (tmp_path / "server.log").write_text(
        "[2026-11-27 16:23:36,365] INFO starting (kafka.Kafka$)\n"
        "[2026-11-27 16:23:36,365] ERROR Exiting Kafka due to fatal exception (kafka.Kafka$)\n"
        "java.lang.RuntimeException: Stored node id 2 doesn't match previous node id 1 in "
        "/d/logs/meta.properties.\n"
        "\tat kafka.Kafka$.main(Kafka.scala:1)\n"
    )
    reason = localkafka.exit_reason(tmp_path)
    assert reason.startswith("java.lang.RuntimeException: Stored node id 2")
    assert "formatted for another broker or cluster" in reason
    assert localkafka.exit_reason(tmp_path / "empty") == "no error in its logs"
