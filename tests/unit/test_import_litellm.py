"""`sluicegate import litellm`: realistic LiteLLM proxy configs (written from its documentation) become
Sluicegate configs that pass `check-config`, with what could not be mapped reported, and no secret copied.
Run as a user would: the installed script, in a fresh directory."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from sluicegate.config.litellm import convert
from sluicegate.config.loader import parse_config

FIXTURES = Path(__file__).parents[1] / "fixtures" / "litellm"
SCRIPT = [shutil.which("sluicegate") or ""] if shutil.which("sluicegate") else [sys.executable, "-m", "sluicegate"]
SECRETS = {
    name: "set-in-the-environment"
    for name in (
        "OPENAI_API_KEY", "AZURE_API_KEY_EU", "ANTHROPIC_API_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
        "GEMINI_API_KEY", "GROQ_API_KEY", "COMPANY_LLM_KEY",
    )
}  # fmt: skip


def _converted(name: str, tmp_path: Path, via_cli: bool = False) -> tuple[dict[str, Any], list[str]]:
    """The conversion (through the installed script when `via_cli`) and its notes, once the result has passed
    the same check as `check-config` (with its credentials in the environment)."""
    if not via_cli:
        conversion = convert(yaml.safe_load((FIXTURES / f"{name}.yaml").read_text()))
        parse_config(yaml.safe_dump(conversion.config, sort_keys=False), "<converted>", environ=SECRETS)
        return conversion.config, conversion.notes
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICEGATE_")}
    done = subprocess.run(
        [*SCRIPT, "import", "litellm", str(FIXTURES / f"{name}.yaml")],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = tmp_path / "sluicegate.yaml"
    out.write_text(done.stdout)
    checked = subprocess.run(
        [*SCRIPT, "check-config", str(out)], capture_output=True, text=True, cwd=tmp_path, env={**env, **SECRETS},
        timeout=60,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr + done.stdout
    notes = [line.removeprefix("not mapped: ") for line in done.stderr.splitlines() if line.startswith("not mapped")]
    return yaml.safe_load(done.stdout), notes


def _group(config: dict[str, Any], name: str) -> dict[str, Any]:
    return next(g for g in config["models"] if g["name"] == name)


def test_a_multi_provider_config_with_load_balancing_and_fallbacks(tmp_path: Path) -> None:
    config, notes = _converted("multi_provider", tmp_path, via_cli=True)
    providers = config["providers"]
    assert {p["kind"] for p in providers.values()} == {"openai", "azure", "anthropic", "bedrock", "gemini"}
    gpt = _group(config, "gpt-4o")
    assert [(d["provider"], d["model"], d.get("rpm")) for d in gpt["deployments"]] == [
        ("openai", "gpt-4o", 480),
        ("azure", "gpt-4o-eu", 120),
    ]
    assert providers["azure"]["api_version"] == "2024-10-21" and providers["azure"]["api_key_env"] == "AZURE_API_KEY_EU"
    assert providers["bedrock"]["aws_region"] == "us-west-2"
    assert providers["anthropic"]["timeouts"] == {"total": 300.0, "first_byte": 15.0}
    routing = gpt["routing"]
    assert routing["strategy"] == "usage" and routing["retry"]["max_attempts"] == 3
    assert routing["fallbacks"] == ["claude-sonnet", "gemini-flash"]
    assert routing["fallbacks_by_error"] == {"context_window": ["gemini-flash"]}
    assert routing["breaker"]["min_open_s"] == 30.0
    assert config["redis"]["url"] == "redis://redis.internal:6380/0"
    assert config["budgets"]["global"] == {"amount_usd": "500", "period": "monthly"}
    assert any("master_key" in n and "SLUICEGATE_MASTER_KEY" in n for n in notes)
    assert any("success_callback" in n for n in notes) and any("enable_pre_call_checks" in n for n in notes)


def test_self_hosted_servers_embeddings_weights_and_prices(tmp_path: Path) -> None:
    config, notes = _converted("self_hosted", tmp_path)
    providers = config["providers"]
    llama = _group(config, "llama3")
    by_provider = {d["provider"]: d for d in llama["deployments"]}
    ollama = providers[next(p for p in by_provider if "ollama" in p)]
    assert ollama == {
        "kind": "openai_compatible",
        "base_url": "http://ollama.internal:11434/v1",  # Ollama's OpenAI-compatible API
        "quirks": "ollama",
        "unsupported_params": "refuse",  # drop_params: false
    }
    assert sorted(d["weight"] for d in llama["deployments"]) == [1, 3]
    assert llama["routing"]["fallbacks"] == ["llama3-groq"] and llama["routing"]["strategy"] == "least_busy"
    assert llama["routing"]["retry"]["max_attempts"] == 5
    company = _group(config, "company-model")["deployments"][0]
    assert providers[company["provider"]]["kind"] == "openai_compatible"
    assert company["price"] == {"input": "0.5", "output": "1.5"}  # USD per million tokens
    assert _group(config, "embeddings")["kind"] == "embedding"
    assert notes == []


def test_what_does_not_map_is_reported_and_no_secret_is_copied(tmp_path: Path) -> None:
    config, notes = _converted("rough_edges", tmp_path)
    text = yaml.safe_dump(config)
    assert "sk-proj-THISISAREALLOOKINGSECRET" not in text and "sk-do-not-copy" not in text
    assert [g["name"] for g in config["models"]] == ["gpt-4o-mini", "claude"]  # vertex_ai has no family here
    assert _group(config, "gpt-4o-mini")["routing"]["fallbacks"] == ["claude"]
    assert config["providers"]["openai"]["api_key_env"] == "OPENAI_API_KEY"
    for expected in (
        "secret is written in the file",
        "'vertex_ai' has no Sluicegate family",
        "routing_strategy 'custom-strategy'",
        "fallback 'vertex-gemini'",
        "'missing-model'",
        "'14d' is not a Sluicegate period",
        "litellm_params.seed",
        "environment_variables",
    ):
        assert any(expected in note for note in notes), expected


def test_input_that_is_not_a_litellm_config(tmp_path: Path) -> None:
    for bad in ([], {"model_list": "nope"}):
        with pytest.raises(ValueError, match="model_list"):
            convert(bad)  # type: ignore[arg-type]
    source = tmp_path / "config.yaml"
    source.write_text("model_list: nope")
    done = subprocess.run([*SCRIPT, "import", "litellm", str(source)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "Traceback" not in done.stderr and not done.stdout
    assert len(done.stderr.strip().splitlines()) == 1 and "model_list" in done.stderr


def test_conversion_is_a_pure_function_of_the_parsed_config() -> None:
    conversion = convert({"model_list": [{"model_name": "m", "litellm_params": {"model": "anthropic/claude-x"}}]})
    assert conversion.config["models"] == [
        {"name": "m", "deployments": [{"provider": "anthropic", "model": "claude-x"}]}
    ]
    assert conversion.config["providers"]["anthropic"]["api_key_env"] == "ANTHROPIC_API_KEY"
