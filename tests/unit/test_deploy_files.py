"""The shipped Grafana dashboard and Prometheus rules name only metrics the gateway exposes; spend metrics
by model and team, with the cap on distinct team labels; budget utilisation of top-level scopes only."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

from sluicegate.config.loader import demo_config_text, parse_config
from sluicegate.server.gateway import Gateway
from sluicegate.telemetry.metrics import BudgetCollector, GatewayMetrics

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",), "summary": ("",)}


def exposed(tmp_path: Path) -> set[str]:
    """Every sample name a gateway's /metrics can carry: the demo's configuration (its `auto` route and
    firewall) with the response cache and the model host on, and the audit log (on by default)."""
    demo = yaml.safe_load(demo_config_text().replace("SIMULATOR_URL", "http://127.0.0.1:9"))
    demo["store"] = {"database_url": f"sqlite+aiosqlite:///{tmp_path}/gw.db", "spool_dir": f"{tmp_path}/spool"}
    stages = demo["pipeline"]["stages"]
    demo["pipeline"]["stages"] = stages if "response_cache" in stages else [*stages, "response_cache"]
    demo["model_host"] = {}
    gateway = Gateway(parse_config(yaml.safe_dump(demo), "<test>"), master_key="sk-master-test", environ={})
    names = set()
    for family in text_string_to_metric_families(gateway.metrics.render().decode()):
        names.update(family.name + suffix for suffix in _SUFFIXES.get(family.type, ("",)))
    return names


def referenced() -> dict[str, set[str]]:
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    exprs = {"dashboard": [t["expr"] for p in dashboard["panels"] for t in p["targets"]]}
    rules = yaml.safe_load((DEPLOY / "prometheus-rules.yaml").read_text())
    exprs["rules"] = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    pattern = re.compile(r"\bsluicegate_[a-z0-9_]+")
    return {where: {m for e in found for m in pattern.findall(e)} for where, found in exprs.items()}


def test_every_metric_the_deploy_files_name_exists(tmp_path: Path) -> None:
    names = exposed(tmp_path)
    used = referenced()
    assert len(used["dashboard"]) >= 12 and len(used["rules"]) >= 6
    for where, metrics in used.items():
        assert metrics - names == set(), f"{where} names metrics the gateway does not expose"
    for wanted in (
        "sluicegate_spend_usd_total",
        "sluicegate_budget_utilisation_ratio",
        "sluicegate_ledger_spool_pressure",
        "sluicegate_model_host_call_seconds_bucket",
        "sluicegate_response_cache_lookups_total",
        "sluicegate_auto_decisions_total",
    ):
        assert wanted in used["dashboard"]


def spend_samples(metrics: GatewayMetrics) -> dict[tuple[str, tuple[str, ...]], float]:
    """(name, (model, team[, kind])) -> value."""
    return {
        (s.name, tuple(s.labels[k] for k in ("model", "team", "kind") if k in s.labels)): s.value
        for f in text_string_to_metric_families(metrics.render().decode())
        for s in f.samples
        if s.name.startswith("sluicegate_spend")
    }


def test_spend_by_model_and_team_with_a_cap_on_teams() -> None:
    metrics = GatewayMetrics(["gpt-4o"], max_label_values=2)
    metrics.observe_spend("gpt-4o", "search", 1_500_000, 100, 20)
    metrics.observe_spend("gpt-4o", "ads", 250_000, 10, 2)
    metrics.observe_spend("gpt-4o", "mail", 1, 1, 1)  # the third team: "other"
    metrics.observe_spend("gpt-4o", "labs", 2, 1, 0)
    metrics.observe_spend("gpt-4o", "search", 500_000, 0, 0)
    metrics.observe_spend("gpt-5", None, 7, 3, 0)  # an unconfigured model, no team
    got = spend_samples(metrics)
    assert got[("sluicegate_spend_usd_total", ("gpt-4o", "search"))] == 2.0
    assert got[("sluicegate_spend_usd_total", ("gpt-4o", "ads"))] == 0.25
    assert got[("sluicegate_spend_usd_total", ("gpt-4o", "other"))] == 3e-6
    assert got[("sluicegate_spend_usd_total", ("unknown", "none"))] == 7e-6
    assert got[("sluicegate_spend_tokens_total", ("gpt-4o", "other", "input"))] == 2
    assert {labels[1] for _, labels in got} == {"search", "ads", "other", "none"}


def test_budget_utilisation_only_for_global_and_tenants() -> None:
    used = {"global": 0.5, "tenant:acme": 0.91, "tenant:globex": 0.1, "tenant:initech": 0.2, "team:search": 0.3,
            "key:key_1": 1.0}  # fmt: skip
    family = next(iter(BudgetCollector(lambda: used, max_label_values=2).collect()))
    assert {s.labels["scope"]: s.value for s in family.samples} == {
        "global": 0.5,
        "tenant:acme": 0.91,
        "tenant:globex": 0.1,
    }
