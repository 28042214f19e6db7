"""Provider configuration: every family's keys are checked at start-up, and the demo has one model per family."""

from __future__ import annotations

import pytest

from sluicegate.catalog import ModelCatalog
from sluicegate.config.loader import ConfigError, demo_config_text, parse_config


def test_demo_serves_one_model_per_family_and_an_embedding_model() -> None:
    config = parse_config(demo_config_text().replace("SIMULATOR_URL", "http://127.0.0.1:9"), "<demo>")
    catalog = ModelCatalog.from_config(config, environ={})
    # every deployment of every chat group (the `auto` group is a pool of other groups, with none of its own)
    families = {d.family for group in catalog if group.kind == "chat" for d in group.deployments}
    assert families >= {"openai", "anthropic", "gemini", "bedrock", "azure"}
    assert any(group.kind == "embedding" for group in catalog)


@pytest.mark.parametrize(
    ("provider", "complaint"),
    [
        ("{kind: bedrock, base_url: 'http://127.0.0.1:9'}", "aws_region"),
        ("{kind: openai_compatible, base_url: 'http://x', quirks: vlm}", "quirks"),
        ("{kind: azure, base_url: 'https://x', azure_auth: token}", "azure_auth"),
        ("{kind: anthropic, base_url: 'https://x', unsupported_params: ignore}", "unsupported_params"),
        ("{kind: cohere, base_url: 'https://x'}", "kind"),
    ],
)
def test_bad_provider_keys_are_refused_naming_the_key(provider: str, complaint: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(f"providers:\n  p: {provider}\n", "gateway.yaml")
    assert "gateway.yaml:2" in str(info.value) and complaint in str(info.value)


def test_bedrock_region_from_the_url_is_enough() -> None:
    parse_config("providers:\n  b: {kind: bedrock, base_url: 'https://bedrock-runtime.eu-west-3.amazonaws.com'}\n", "g")


def test_a_deployment_overrides_its_providers_parameter_policy() -> None:
    config = parse_config(
        """
providers:
  claude: {kind: anthropic, base_url: 'https://api.anthropic.com'}
models:
  - name: strict
    deployments: [{provider: claude, model: c, unsupported_params: refuse}]
  - name: lenient
    deployments: [{provider: claude, model: c}]
""",
        "g",
    )
    catalog = ModelCatalog.from_config(config, environ={})
    strict, lenient = catalog.get("strict"), catalog.get("lenient")
    assert strict is not None and lenient is not None
    assert strict.deployments[0].endpoint.config.unsupported_params == "refuse"
    assert lenient.deployments[0].endpoint.config.unsupported_params == "drop"
