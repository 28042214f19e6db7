"""Which adapter serves which provider kind. Adding a provider family adds one line here."""

from __future__ import annotations

from sluicegate.config.schema import ProviderKind
from sluicegate.providers.base import ProviderAdapter
from sluicegate.providers.openai.adapter import OpenAIAdapter


def adapter_for(kind: ProviderKind) -> ProviderAdapter:
    adapters: dict[str, ProviderAdapter] = {
        "openai": OpenAIAdapter("openai"),
        "openai_compatible": OpenAIAdapter("openai_compatible"),
    }
    return adapters[kind]
