"""Tiers and capabilities as configuration: shipped defaults for well-known names, and `check-config`
refusing an `auto` pool that cannot serve every task type or names what does not exist."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sluicegate.catalog import ModelCatalog
from sluicegate.classify.tiers import known_tier
from sluicegate.config.loader import ConfigError, demo_config_text, parse_config

BASE = """
providers:
  p: {kind: openai, base_url: "http://127.0.0.1:9/v1"}
models:
  - name: small
    deployments: [{provider: p, model: gpt-4o-mini}]
  - name: big
    deployments: [{provider: p, model: claude-opus-4-20250514}]
  - name: house
    deployments: [{provider: p, model: our-finetune-v3}]
"""


def _problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "auto.yaml")
    return [str(p) for p in info.value.problems]


@pytest.mark.parametrize(
    ("model", "tier"),
    [
        ("gpt-4o-mini-2024-07-18", "economy"),
        ("gpt-4o-2024-08-06", "balanced"),
        ("gpt-4.1-nano", "economy"),
        ("anthropic.claude-3-haiku-20240307-v1:0", "economy"),
        ("claude-sonnet-4-20250514", "balanced"),
        ("claude-opus-4-20250514", "flagship"),
        ("o3-mini", "balanced"),
        ("o1", "flagship"),
        ("openai/gpt-4o-mini", "economy"),
        ("our-finetune-v3", None),
    ],
)
def test_well_known_model_names_have_a_shipped_tier(model: str, tier: str | None) -> None:
    assert known_tier(model) == tier


def test_groups_take_the_tier_of_their_models_or_the_one_they_declare() -> None:
    text = BASE.replace(
        "deployments: [{provider: p, model: our-finetune-v3}]",
        "tier: balanced\n    serves: {tasks: [code, math], complexity: [0, 0.5]}\n"
        "    deployments: [{provider: p, model: our-finetune-v3}]",
    )
    catalog = ModelCatalog.from_config(parse_config(text, "t.yaml"))
    small, big, house = (catalog.get(n) for n in ("small", "big", "house"))
    assert small is not None and small.capability is not None and small.capability.tier == "economy"
    assert big is not None and big.capability is not None and big.capability.tier == "flagship"
    assert house is not None and house.capability is not None
    assert house.capability.tier == "balanced" and house.capability.tasks == {"code", "math"}
    assert house.capability.covers("code", 0.5) and not house.capability.covers("code", 0.6)
    assert not house.capability.covers("chat", 0.1)


def test_an_auto_pool_must_name_groups_that_exist_and_have_a_tier() -> None:
    text = BASE + "  - name: auto\n    routing: {strategy: auto}\n    pool: [small, missing, house, big]\n"
    problems = _problems(text)
    assert any("models[3].pool[1]: unknown pool model 'missing'" in p for p in problems), problems
    assert any("models[3].pool[2]: pool model 'house' has no tier" in p for p in problems), problems


def test_an_auto_pool_that_cannot_serve_a_task_type_is_refused() -> None:
    text = (
        BASE.replace(
            "    deployments: [{provider: p, model: claude-opus-4-20250514}]",
            "    serves: {tasks: [chat, code]}\n    deployments: [{provider: p, model: claude-opus-4-20250514}]",
        ).replace(
            "    deployments: [{provider: p, model: gpt-4o-mini}]",
            "    serves: {tasks: [chat, translate]}\n    deployments: [{provider: p, model: gpt-4o-mini}]",
        )
        + "  - name: auto\n    routing: {strategy: auto}\n    pool: [small, big]\n"
    )
    problems = _problems(text)
    assert any("models[3].pool: no model in the pool of 'auto' serves: factual_qa, summarise" in p for p in problems)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("  - name: odd\n    tier: premium\n    deployments: [{provider: p, model: x}]\n", "unknown tier 'premium'"),
        ("  - name: auto\n    routing: {strategy: auto}\n", "needs a pool"),
        ("  - name: auto\n    pool: [small]\n    deployments: [{provider: p, model: x}]\n", "pool is for groups"),
        ("  - name: s\n    serves: {tasks: [poetry]}\n    deployments: [{provider: p, model: x}]\n", "serves.tasks"),
    ],
)
def test_tier_and_capability_mistakes_are_named(extra: str, expected: str) -> None:
    assert any(expected in p for p in _problems(BASE + extra)), _problems(BASE + extra)


def test_operators_add_their_own_tiers_in_order() -> None:
    text = (
        BASE.replace("model: our-finetune-v3}]", "model: our-finetune-v3}]\n    tier: frontier")
        + "  - name: auto\n    routing: {strategy: auto}\n    pool: [small, big, house]\n"
        + "classify: {tiers: [economy, balanced, flagship, frontier]}\n"
    )
    catalog = ModelCatalog.from_config(parse_config(text, "t.yaml"))
    house, big = catalog.get("house"), catalog.get("big")
    assert house is not None and house.capability is not None
    assert house.capability.rank == 3 and house.capability.high == 1.0
    assert big is not None and big.capability is not None and big.capability.high == 0.75


def test_the_demo_has_an_auto_pool_over_three_tiers_and_several_families() -> None:
    config = parse_config(demo_config_text().replace("SIMULATOR_URL", "http://127.0.0.1:1"), "<demo>")
    catalog = ModelCatalog.from_config(config)
    auto = catalog.get("auto")
    assert auto is not None and auto.pool
    members = [catalog.get(name) for name in auto.pool]
    tiers = {m.capability.tier for m in members if m is not None and m.capability is not None}
    families = {m.deployments[0].family for m in members if m is not None}
    assert tiers == {"economy", "balanced", "flagship"}
    assert len(families) >= 3


def test_check_config_command_reports_the_pool_problem(tmp_path: Path) -> None:
    path = tmp_path / "auto.yaml"
    path.write_text(BASE + "  - name: auto\n    routing: {strategy: auto}\n    pool: [small, nowhere]\n")
    done = subprocess.run(
        [sys.executable, "-m", "sluicegate", "check-config", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert "models[3].pool[1]: unknown pool model 'nowhere'" in done.stderr
