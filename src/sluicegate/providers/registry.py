"""Which adapter serves which provider kind. Adding a provider family adds one line here."""

from __future__ import annotations

from collections.abc import Callable

from sluicegate.config.schema import ProviderKind
from sluicegate.providers.anthropic.adapter import AnthropicAdapter
from sluicegate.providers.azure.adapter import AzureOpenAIAdapter
from sluicegate.providers.base import ProviderAdapter
from sluicegate.providers.bedrock.adapter import BedrockAdapter
from sluicegate.providers.gemini.adapter import GeminiAdapter
from sluicegate.providers.openai.adapter import OpenAIAdapter

_FACTORIES: dict[str, Callable[[], ProviderAdapter]] = {
    "openai": lambda: OpenAIAdapter("openai"),
    "openai_compatible": lambda: OpenAIAdapter("openai_compatible"),
    "anthropic": AnthropicAdapter,
    "gemini": GeminiAdapter,
    "bedrock": BedrockAdapter,
    "azure": AzureOpenAIAdapter,
}


def adapter_for(kind: ProviderKind) -> ProviderAdapter:
    return _FACTORIES[kind]()
