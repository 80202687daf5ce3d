"""deploy/: every metric the Grafana dashboard and the alert rules use is exported by /metrics."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from .apihelp import Stack

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"

_NOT_METRICS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
                "group_left", "group_right", "inf", "nan"}  # fmt: skip
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_NAME = re.compile(r"(?<![\w.:$])[A-Za-z_:][\w:]*")


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers that are not functions,
    keywords, label names (inside braces or grouping clauses), durations or variables."""
    rest = re.sub(r'"(?:[^"\\]|\\.)*"', " ", expr)  # label values
    rest = re.sub(r"\{[^}]*\}", " ", rest)  # label matchers
    rest = re.sub(r"\[[^\]]*\]", " ", rest)  # ranges like [5m] or [$__rate_interval]
    rest = _GROUPING.sub(" ", rest)
    names = set()
    for match in _NAME.finditer(rest):
        if rest[match.end() :].lstrip().startswith("("):
            continue  # a function call
        if match.group() not in _NOT_METRICS:
            names.add(match.group())
    return names


def exported_names(exposition: str) -> set[str]:
    names: set[str] = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            names.add(name)
            if kind in ("histogram", "summary"):
                names.update({f"{name}_count", f"{name}_sum"})
            if kind == "histogram":
                names.add(f"{name}_bucket")
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def _exprs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "expr" and isinstance(value, str):
                yield value
            else:
                yield from _exprs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _exprs(item)


def test_metric_name_extraction() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le) (rate(a_seconds_bucket{venue="x", kind=~"y"}'
        "[$__rate_interval]))) > 0.1 and on() (b_total offset 5m > 0) or vector(0)"
    )
    assert metric_names(expr) == {"a_seconds_bucket", "b_total"}


async def test_grafana_and_alert_metrics_are_exported(stack: Stack) -> None:
    exported = exported_names((await stack.client.get("/metrics")).text)
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    rules = yaml.safe_load((DEPLOY / "prometheus-alerts.yml").read_text())
    for source, document in (("grafana", dashboard), ("alerts", rules)):
        used = set().union(*(metric_names(e) for e in _exprs(document)))
        assert used, f"{source}: no metric found -- the extractor is broken"
        missing = used - exported
        assert not missing, f"{source} uses metrics that /metrics does not export: {missing}"
    alert_exprs = " ".join(_exprs(rules))
    for name in ("trade_processing_latency_seconds_bucket", "websocket_reconnections_total",
                 "whale_trades_detected_total", "active_whale_subscriptions"):  # fmt: skip
        assert name in alert_exprs


def test_alert_rules_cover_the_issue() -> None:
    rules = yaml.safe_load((DEPLOY / "prometheus-alerts.yml").read_text())
    by_name = {r["alert"]: r for g in rules["groups"] for r in g["rules"]}
    latency = by_name["VenuefeedTradeLatencyHigh"]
    assert latency["for"] == "5m" and "> 0.1" in latency["expr"]
    assert "[10m]) > 3" in by_name["VenuefeedWebSocketFlapping"]["expr"]
    assert "[30m]" in by_name["VenuefeedWhaleSilent"]["expr"]
