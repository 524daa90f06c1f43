"""A single-node Apache Kafka 4.0 broker (KRaft) for development and tests, from Maven Central jars.

``fetch`` resolves the broker jars with Maven into ``.cache/kafka/libs`` (reused when present);
``start`` writes the configuration, formats storage, launches the JVM on 127.0.0.1 and waits
until the broker answers a metadata request; ``stop`` ends it by PID. No Docker needed.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AdminClient,
)

log = logging.getLogger("bulkops.kafka")

ROOT = Path(__file__).resolve().parent.parent
POM = ROOT / "scripts" / "kafka" / "pom.xml"
CACHE = ROOT / ".cache" / "kafka"
LIBS = CACHE / "libs"

_LOG4J = """\
status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = {log_file}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = {level}
rootLogger.appenderRef.file.ref = FILE
logger.kafka.name = kafka
logger.kafka.level = {level}
logger.apache.name = org.apache.kafka
logger.apache.level = {level}
"""


# Brokers started by this process, so stop() can reap them (and Python doesn't warn about them).
_STARTED: dict[int, subprocess.Popen[bytes]] = {}


class BrokerError(RuntimeError):
    pass


@dataclass(frozen=True)
class Broker:
    data_dir: Path
    port: int
    controller_port: int
    pid: int

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"


def _listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports free on 127.0.0.1 (all held open while drawing)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _ports(data_dir: Path, port: int | None, controller_port: int | None) -> tuple[int, int]:
    """The broker's and the controller's ports: as asked, else as this data directory last
    used them (a restarted broker keeps its addresses), else two fresh distinct ones."""
    remembered: dict[str, int] = {}
    saved = data_dir / "ports.json"
    if saved.exists():
        remembered = json.loads(saved.read_text())
    port = port or remembered.get("port")
    controller_port = controller_port or remembered.get("controllerPort")
    fresh = iter(p for p in free_ports(3) if p not in (port, controller_port))
    port = port or next(fresh)
    if not controller_port or controller_port == port:
        controller_port = next(fresh)
    saved.write_text(json.dumps({"port": port, "controllerPort": controller_port}))
    return port, controller_port


def fetch(libs: Path = LIBS) -> Path:
    """Resolve the broker jars into ``libs`` unless they are already there."""
    if any(libs.glob("kafka_2.13-*.jar")) and any(libs.glob("log4j-core-*.jar")):
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError("Maven (mvn) is needed to fetch the Kafka jars from Maven Central")
    libs.mkdir(parents=True, exist_ok=True)
    log.info("fetching Apache Kafka jars into %s", libs)
    subprocess.run(
        [
            mvn,
            "-q",
            "-B",
            "-f",
            str(POM),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={libs}",
            "-DincludeScope=runtime",
        ],
        check=True,
    )
    return libs


def _properties(data_dir: Path, port: int, controller_port: int) -> str:
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(data_dir / "logs"),
        "auto.create.topics.enable": "false",
        "num.partitions": "8",
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "8",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "log.retention.hours": "168",
        "log.segment.bytes": "67108864",
        "log.cleaner.dedupe.buffer.size": "16777216",
        "message.max.bytes": "1048588",
    }
    return "".join(f"{key}={value}\n" for key, value in settings.items())


def new_cluster_id(random: Callable[[], bytes] = lambda: uuid.uuid4().bytes) -> str:
    """A KRaft cluster id: 16 random bytes in URL-safe base64, never starting with ``-``
    (``StorageTool`` would read such an id as an option; Kafka's own generator skips them)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(random()).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


MIN_JAVA = 17


def java_major(version_output: str) -> int | None:
    """The major version in ``java -version``'s output (``"17.0.15"`` -> 17, ``"1.8.0"`` -> 8)."""
    match = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if match is None:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def _java() -> str:
    java = shutil.which("java")
    if java is None:
        raise BrokerError(f"Java {MIN_JAVA}+ is needed to run the Kafka broker: none on PATH")
    probe = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    major = java_major(probe.stderr + probe.stdout)
    if major is None or major < MIN_JAVA:
        found = (probe.stderr or probe.stdout).strip().splitlines()[:1]
        raise BrokerError(f"Java {MIN_JAVA}+ is needed to run the Kafka broker; {java} is {found}")
    return java


def exit_reason(data_dir: Path, lines: int = 400) -> str:
    """Why a broker started from ``data_dir`` stopped: its last fatal error, with a hint."""
    text: list[str] = []
    for name in ("server.log", "broker.out"):
        path = data_dir / name
        if path.exists():
            text += path.read_text(errors="replace").splitlines()[-lines:]
    causes = [
        line.strip() for line in text if re.match(r"^[\w.$]+(Exception|Error): ", line.strip())
    ]
    if not causes:
        errors = [line for line in text if " ERROR " in line or " FATAL " in line]
        causes = errors[-1:] or ["no error in its logs"]
    reason = causes[-1][:500]
    if "meta.properties" in reason or "InconsistentClusterId" in reason:
        reason += (
            f" (the storage in {data_dir / 'logs'} was formatted for another broker or "
            "cluster: remove that directory, or use another data directory)"
        )
    return reason


def _classpath(libs: Path) -> str:
    return f"{libs}/*"


def start(
    data_dir: Path,
    *,
    port: int | None = None,
    controller_port: int | None = None,
    heap: str = "768m",
    timeout: float = 90.0,
    log_level: str = "WARN",
) -> Broker:
    """Format (first time only) and start a broker; return once it answers metadata requests."""
    libs = fetch()
    java = _java()
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    running = _recorded_pid(data_dir)
    if running is not None and _alive(running):
        raise BrokerError(
            f"a broker started from {data_dir} is still running (pid {running}): "
            f"stop it first (bulkops kafka stop --broker-dir {data_dir})"
        )
    port, controller_port = _ports(data_dir, port, controller_port)
    if port == controller_port:
        raise BrokerError(f"the broker and its controller cannot share port {port}")
    for taken in (port, controller_port):
        if _listening(taken):
            raise BrokerError(
                f"port {taken} is already in use on 127.0.0.1 (by another program, or a broker "
                f"from another data directory): free it or choose another port"
            )
    props = data_dir / "server.properties"
    props.write_text(_properties(data_dir, port, controller_port))
    log4j = data_dir / "log4j2.properties"
    log4j.write_text(_LOG4J.format(log_file=data_dir / "server.log", level=log_level))
    jvm = [
        java,
        f"-Xmx{heap}",
        f"-Xms{heap}",
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={log4j}",
        f"-Dkafka.logs.dir={data_dir}",
        "-cp",
        _classpath(libs),
    ]
    if not (data_dir / "logs" / "meta.properties").exists():
        cluster_id = new_cluster_id()
        formatted = subprocess.run(
            [*jvm, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(props)],
            capture_output=True,
            text=True,
        )
        if formatted.returncode != 0:
            output = (formatted.stderr or formatted.stdout).strip()[-1000:]
            raise BrokerError(f"formatting the broker's storage in {data_dir} failed: {output}")
    with (data_dir / "broker.out").open("ab") as stdout:
        process = subprocess.Popen(
            [*jvm, "kafka.Kafka", str(props)],
            stdout=stdout,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _STARTED[process.pid] = process
    (data_dir / "broker.pid").write_text(str(process.pid))
    broker = Broker(data_dir, port, controller_port, process.pid)
    try:
        wait_ready(broker.bootstrap, timeout=timeout, process=process)
        if process.poll() is not None:
            raise BrokerError(f"Kafka broker exited with code {process.returncode}")
    except BrokerError as exc:
        stop(data_dir)
        if process.poll() is None:
            raise
        raise BrokerError(f"{exc}: {exit_reason(data_dir)}") from exc
    except BaseException:
        stop(data_dir)
        raise
    log.info("Kafka broker ready at %s (pid %d, data %s)", broker.bootstrap, process.pid, data_dir)
    return broker


def wait_ready(
    bootstrap: str, *, timeout: float, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Poll with metadata requests until the broker answers, the process dies or time runs out."""
    deadline = time.monotonic() + timeout
    admin = AdminClient(
        {"bootstrap.servers": bootstrap, "socket.connection.setup.timeout.ms": 2000, "log_level": 0}
    )
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise BrokerError(f"Kafka broker exited with code {process.returncode} while starting")
        try:
            metadata = admin.list_topics(timeout=2)
            if metadata.brokers:
                return
        except KafkaException as exc:
            last_error = exc
        time.sleep(0.2)
    raise BrokerError(f"Kafka broker at {bootstrap} not ready after {timeout:.0f}s: {last_error}")


def is_reachable(bootstrap: str, timeout: float = 3.0) -> bool:
    try:
        wait_ready(bootstrap, timeout=timeout)
    except BrokerError:
        return False
    return True


def _recorded_pid(data_dir: Path) -> int | None:
    try:
        return int((data_dir / "broker.pid").read_text())
    except (FileNotFoundError, ValueError):
        return None


def stop(data_dir: Path, timeout: float = 30.0) -> bool:
    """SIGTERM the broker recorded in ``data_dir`` (SIGKILL after ``timeout``).

    Returns False when no broker was running there.
    """
    pid_file = data_dir / "broker.pid"
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text())
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pid_file.unlink(missing_ok=True)
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            break
        time.sleep(0.1)
    else:
        log.warning("Kafka broker %d did not stop in %.0fs; killing it", pid, timeout)
        os.kill(pid, signal.SIGKILL)
    pid_file.unlink(missing_ok=True)
    process = _STARTED.pop(pid, None)
    if process is not None:
        process.wait(timeout=10)
    return True


def kill(data_dir: Path) -> bool:
    """SIGKILL the broker recorded in ``data_dir``, as a crash would (fault drills and tests).

    Its pid file stays behind, as after a crash; :func:`start` sees the process is gone.
    Returns False when no broker was running there.
    """
    pid = _recorded_pid(data_dir)
    if pid is None or not _alive(pid):
        return False
    os.kill(pid, signal.SIGKILL)
    process = _STARTED.pop(pid, None)
    if process is not None:
        process.wait(timeout=10)
    while _alive(pid):
        time.sleep(0.05)
    return True


def _alive(pid: int) -> bool:
    try:
        reaped, _ = os.waitpid(pid, os.WNOHANG)
        if reaped == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
