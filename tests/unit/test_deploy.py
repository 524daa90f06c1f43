"""deploy/: the Prometheus alert rules and the Grafana dashboard parse as PromQL and use
only metrics Bulkops exports (a renamed metric would silently empty a panel or an alert),
and compose wires them to the endpoints that serve the metrics."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml
from prometheus_client import Counter, Gauge, Histogram

from api.observability import LiveOperations
from api.status_view import StatusView
from core import metrics
from core.lag import ConsumerLag

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PROMETHEUS_OWN = {"up"}


def exported_names() -> set[str]:
    """Every series name Bulkops can expose."""
    names: set[str] = set()
    for value in vars(metrics).values():
        if isinstance(value, Counter):
            names |= {f"{value._name}_total", f"{value._name}_created"}
        elif isinstance(value, Histogram):
            names |= {f"{value._name}_{suffix}" for suffix in ("bucket", "count", "sum", "created")}
        elif isinstance(value, Gauge):
            names.add(value._name)
    collectors = [LiveOperations(StatusView()), ConsumerLag("127.0.0.1:1", "g", [], timeout=0.1)]
    names |= {family.name for collector in collectors for family in collector.collect()}
    return names


def selectors(node: Any) -> Iterator[str]:
    """The metric names a parsed PromQL expression selects."""
    name = getattr(node, "name", None)
    if type(node).__name__ == "VectorSelector" and name:
        yield name
    for attribute in ("lhs", "rhs", "expr", "args", "param", "vector_selector"):
        child = getattr(node, attribute, None)
        for item in child if isinstance(child, list) else [child]:
            if item is not None:
                yield from selectors(item)


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "bulkops.json").read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


@pytest.fixture(scope="module")
def known() -> set[str]:
    return exported_names() | PROMETHEUS_OWN


def test_the_metric_names_follow_prometheus_conventions(known: set[str]) -> None:
    for name in known - PROMETHEUS_OWN:
        assert name.startswith("bulkops_"), name
    assert "bulkops_items_processed_total" in known
    assert "bulkops_consumer_lag_messages" in known


def test_every_alert_rule_is_valid_promql_on_our_metrics(known: set[str]) -> None:
    rules = alert_rules()
    assert len(rules) >= 10
    assert len({rule["alert"] for rule in rules}) == len(rules)
    for rule in rules:
        used = set(selectors(promql_parser.parse(rule["expr"])))
        assert used and used <= known, (rule["alert"], used - known)
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_every_dashboard_panel_is_valid_promql_on_our_metrics(known: set[str]) -> None:
    exprs = dashboard_exprs()
    assert len(exprs) >= 15
    for expr in exprs:
        used = set(selectors(promql_parser.parse(expr)))
        assert used and used <= known, (expr, used - known)


def test_prometheus_scrapes_the_endpoints_compose_serves() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = {
        target for job in config["scrape_configs"] for c in job["static_configs"]
        for target in c["targets"]
    }  # fmt: skip
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert targets == {
        f"api:{services['api']['environment']['BULKOPS_PORT']}",
        f"worker:{services['worker']['environment']['BULKOPS_METRICS_PORT']}",
    }
    mounted = " ".join(services["prometheus"]["volumes"])
    assert "alerts.yml:/etc/prometheus/alerts.yml" in mounted
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
