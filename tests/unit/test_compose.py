"""docker-compose.yml cannot run here (no Docker engine); keep it parseable and consistent."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_compose_declares_the_four_services_with_health_checks() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"kafka", "clickhouse", "api", "worker"} <= set(services)
    for name in ("kafka", "clickhouse", "api", "worker"):
        assert "healthcheck" in services[name], name
    assert services["kafka"]["image"].startswith("apache/kafka:4.0")
    for name in ("api", "worker"):
        env = services[name]["environment"]
        assert env["BULKOPS_CLICKHOUSE_DSN"].startswith("http://")
        assert env["BULKOPS_KAFKA_BOOTSTRAP"] == "kafka:9092"
        assert env["BULKOPS_ENV"] == "prod"
        assert "${BULKOPS_JWT_SECRET" in env["BULKOPS_JWT_SECRET"]
        assert set(services[name]["depends_on"]) == {"kafka", "clickhouse"}
