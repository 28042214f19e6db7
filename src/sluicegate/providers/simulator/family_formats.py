"""The simulator's provider formats by name, Azure's deployment paths, and each family's credential header."""

from __future__ import annotations

from sluicegate.providers.simulator.anthropic_format import AnthropicFormat
from sluicegate.providers.simulator.asgi import Headers
from sluicegate.providers.simulator.bedrock_format import BedrockFormat
from sluicegate.providers.simulator.family import Format
from sluicegate.providers.simulator.gemini_format import GeminiFormat

FORMATS: dict[str, Format] = {"anthropic": AnthropicFormat(), "gemini": GeminiFormat(), "bedrock": BedrockFormat()}

_AZURE_PREFIX = "/openai/deployments/"
_KEY_HEADERS = (b"x-api-key", b"x-goog-api-key", b"api-key")


def azure_model(path: str) -> str | None:
    """The deployment of an Azure OpenAI chat path (`/openai/deployments/{d}/chat/completions`)."""
    if path.startswith(_AZURE_PREFIX) and path.endswith("/chat/completions"):
        return path[len(_AZURE_PREFIX) : -len("/chat/completions")] or None
    return None


def credential_of(headers: Headers) -> bytes | None:
    """The key a family's client presents: x-api-key (Anthropic), x-goog-api-key (Gemini), api-key (Azure),
    or for SigV4 the access key id in the credential scope (Bedrock; the signature itself is not checked)."""
    for name, value in headers:
        if name in _KEY_HEADERS:
            return value
        if name == b"authorization" and value.startswith(b"AWS4-HMAC-SHA256 Credential="):
            return value[len(b"AWS4-HMAC-SHA256 Credential=") :].split(b"/", 1)[0]
    return None
