"""The auth stage: the caller's API key -> a principal, or 401."""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from sluicegate.errors import unauthorized
from sluicegate.pipeline.context import RequestContext
from sluicegate.principal import MASTER, Principal


def bearer_token(headers: Mapping[str, str]) -> str | None:
    """The key from `Authorization: Bearer ...` (OpenAI clients) or `x-api-key` (Anthropic clients)."""
    authorization = headers.get("authorization")
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        return None
    return headers.get("x-api-key") or None


class MasterKeyAuth:
    """Admits the one master key. Virtual keys replace this with a store-backed lookup."""

    name = "auth"

    def __init__(self, master_key: str) -> None:
        self._master_key = master_key.encode()
        self._principal = MASTER

    async def on_request(self, ctx: RequestContext) -> None:
        ctx.principal = self.authenticate(ctx.headers)

    def authenticate(self, headers: Mapping[str, str]) -> Principal:
        token = bearer_token(headers)
        if token is None:
            raise unauthorized("You didn't provide an API key. Provide it as 'Authorization: Bearer YOUR_KEY'.")
        if not hmac.compare_digest(token.encode(), self._master_key):
            raise unauthorized("Incorrect API key provided.")
        return self._principal
