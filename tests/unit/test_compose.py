"""docker-compose.yml cannot run here (no Docker engine); keep it parseable and consistent."""

from __future__ import annotations

import tomllib
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


def test_the_image_copies_every_package_it_installs() -> None:
    """The image was built without ``core`` once: ``pip install .`` then installs a package
    that cannot import."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {
        pattern.rstrip("*")
        for pattern in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    copied = {
        line.split()[1]
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.startswith("COPY ")
    }
    assert packages <= copied, packages - copied


def test_the_worker_keeps_its_table_state_on_a_volume_with_a_stable_id() -> None:
    worker = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["worker"]
    data_dir = worker["environment"]["BULKOPS_WORKER_DATA_DIR"]
    assert any(volume.endswith(f":{data_dir}") for volume in worker["volumes"])
    assert worker["environment"]["BULKOPS_INSTANCE_ID"]
