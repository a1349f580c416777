"""What the shipped Grafana dashboard and alert rules ask Prometheus for."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import yaml

from tests.support.prometheus import REPOSITORY, RULES_FILE

DASHBOARD_FILE = REPOSITORY / "grafana" / "dashboards" / "smtp-tls-exporter.json"
# Metric names of this exporter inside PromQL or a template.
_METRIC_NAME = re.compile(r"\bsmtp_[a-zA-Z0-9_]+")
# What Grafana substitutes before a query reaches Prometheus.
GRAFANA_VARIABLES = {"$target": ".*", "$__rate_interval": "1m", "$__range": "1h", "$__interval": "15s"}


def load_dashboard() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD_FILE.read_text())
    return dashboard


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those inside rows."""
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def dashboard_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, PromQL expression) of every panel query."""
    return [
        (panel["title"], target["expr"])
        for panel in panels(dashboard)
        for target in panel.get("targets", [])
        if "expr" in target
    ]


def variable_queries(dashboard: dict[str, Any]) -> list[str]:
    queries: list[str] = []
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            queries.append(query["query"] if isinstance(query, dict) else query)
    return queries


def as_prometheus_sees_it(expression: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expression = expression.replace(variable, value)
    return expression


def metric_names(text: str) -> set[str]:
    return set(_METRIC_NAME.findall(text))


def rule_texts() -> list[str]:
    """Every expression and annotation template of the alert rules."""
    document = yaml.safe_load(RULES_FILE.read_text())
    texts: list[str] = []
    for group in document["groups"]:
        for rule in group["rules"]:
            texts.append(rule["expr"])
            texts.extend(rule.get("annotations", {}).values())
    return texts


def rule_test_series() -> list[str]:
    """The input series of the rules' unit tests."""
    series: list[str] = []
    for path in sorted((REPOSITORY / "prometheus").glob("*_test.yml")):
        for test in yaml.safe_load(path.read_text())["tests"]:
            series.extend(entry["series"] for entry in test.get("input_series", []))
    return series
