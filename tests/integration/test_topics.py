"""Topic configuration on a real broker: each topic's retention or compaction as chosen,
and a changed retention applied to topics that already exist."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

from bulkops.local import ensure_topics
from core.settings import ApiSettings
from core.topics import HOUR_MS, Topics
from tests.support import wait_for


def configs_of(bootstrap: str, names: list[str]) -> dict[str, dict[str, str]]:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.describe_configs([ConfigResource(ResourceType.TOPIC, n) for n in names])
    return {
        resource.name: {key: entry.value for key, entry in future.result().items()}
        for resource, future in futures.items()
    }


def configs_once(
    bootstrap: str, names: list[str], applied: Callable[[dict[str, dict[str, str]]], bool]
) -> dict[str, dict[str, str]]:
    """The topics' configuration once ``applied`` holds for it (within 30 s)."""

    def probe() -> dict[str, dict[str, str]] | None:
        configs = configs_of(bootstrap, names)
        return configs if applied(configs) else None

    return wait_for(probe, timeout=30, message="the topics' configuration applied")


def test_topics_get_their_retention_and_a_change_reaches_existing_ones(
    kafka_bootstrap: str,
) -> None:
    prefix = f"t{uuid.uuid4().hex[:12]}"
    topics = Topics(prefix)
    settings = ApiSettings(
        env="dev", kafka_bootstrap=kafka_bootstrap, topic_prefix=prefix, partitions=2
    )
    ensure_topics(settings)
    names = [spec.name for spec in topics.all()]
    # The broker applies a new topic's configuration from the metadata log a moment later.
    found = configs_once(
        kafka_bootstrap, names, lambda c: c[topics.status.name]["cleanup.policy"] == "compact"
    )
    for spec in (topics.operations, topics.items, topics.results, topics.progress, topics.control):
        assert found[spec.name]["cleanup.policy"] == "delete"
        assert found[spec.name]["retention.ms"] == str(168 * HOUR_MS)
        assert found[spec.name]["segment.ms"] == str(6 * HOUR_MS), "rolled for the retention"
    assert found[topics.dead_letter.name]["retention.ms"] == str(720 * HOUR_MS)
    for spec in (topics.status, topics.quotas, *topics.changelogs()):
        assert found[spec.name]["cleanup.policy"] == "compact"
        assert found[spec.name]["delete.retention.ms"] == str(24 * HOUR_MS)
        assert found[spec.name]["segment.ms"] == str(HOUR_MS), "rolled to be compacted"

    shorter = settings.model_copy(update={"topic_retention_hours": 6})
    ensure_topics(shorter)
    again = configs_once(
        kafka_bootstrap,
        names,
        lambda c: c[topics.items.name]["retention.ms"] == str(6 * HOUR_MS),
    )
    assert again[topics.items.name]["retention.ms"] == str(6 * HOUR_MS)
    assert again[topics.dead_letter.name]["retention.ms"] == str(720 * HOUR_MS)
    assert again[topics.status.name]["cleanup.policy"] == "compact"
