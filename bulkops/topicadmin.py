"""Topic administration on a broker: create what is missing, set every topic's
configuration, and wait until new topics are usable (``bulkops serve|worker|topics``)."""

from __future__ import annotations

import time
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourceType,
)

from core.kafkalog import client_logger


def create_topics(
    bootstrap: str,
    configs: dict[str, dict[str, str]],
    *,
    partitions: int,
    replication_factor: int = 1,
) -> list[str]:
    """Create the missing topics of ``configs`` (name → topic configuration) and set the
    configuration of the existing ones (so a changed retention applies); return the names
    created, once the broker's metadata shows each with a leader for every partition."""
    config: dict[str, Any] = {"bootstrap.servers": bootstrap, "logger": client_logger("admin")}
    admin = AdminClient(config)
    existing = set(admin.list_topics(timeout=10).topics)
    wanted = [
        NewTopic(
            name,
            num_partitions=partitions,
            replication_factor=replication_factor,
            config=topic_config,
        )
        for name, topic_config in configs.items()
        if name not in existing
    ]
    created = []
    if wanted:
        for name, future in admin.create_topics(wanted, operation_timeout=30).items():
            try:
                future.result()
                created.append(name)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise
    _set_configs(admin, {name: c for name, c in configs.items() if name in existing})
    _wait_usable(admin, created)
    return created


def _wait_usable(admin: AdminClient, names: list[str], timeout: float = 30.0) -> None:
    """Wait until every topic of ``names`` has a leader for each partition in the metadata.

    A created topic reaches the brokers' metadata a moment later; a client asking in that
    moment (the API's status view, Faust's assignor) was told it does not exist."""
    deadline = time.monotonic() + timeout
    pending = set(names)
    while pending:
        topics = admin.list_topics(timeout=10).topics
        pending = {
            name
            for name in pending
            if name not in topics
            or topics[name].error is not None
            or any(p.leader < 0 for p in topics[name].partitions.values())
        }
        if not pending:
            return
        if time.monotonic() > deadline:
            raise KafkaException(f"topics not usable after {timeout:.0f} s: {sorted(pending)}")
        time.sleep(0.1)


def _set_configs(admin: AdminClient, configs: dict[str, dict[str, str]]) -> None:
    """Set (incrementally: other settings stay) each existing topic's configuration."""
    resources = [
        ConfigResource(
            ResourceType.TOPIC,
            name,
            incremental_configs=[
                ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)
                for key, value in topic_config.items()
            ],
        )
        for name, topic_config in configs.items()
    ]
    if resources:
        for future in admin.incremental_alter_configs(resources).values():
            future.result()
