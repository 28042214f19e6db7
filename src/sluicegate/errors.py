"""The typed errors a stage or adapter raises, and the closed set of upstream error classes.

Every error a client sees starts as a `GatewayError`; the client's wire module shapes it (one place per
format), so no stage ever writes an error body itself.
"""

from __future__ import annotations

import re
from enum import StrEnum


class ErrorClass(StrEnum):
    """What went wrong upstream, in the terms the resilience layer decides on."""

    RATE_LIMITED = "rate_limited"
    OVERLOADED = "overloaded"
    TIMEOUT = "timeout"
    SERVER_ERROR = "server_error"
    CONTEXT_WINDOW = "context_window"
    CONTENT_POLICY = "content_policy"
    AUTH = "auth"
    BAD_REQUEST = "bad_request"
    CONNECTION = "connection"


RETRYABLE = frozenset(
    {
        ErrorClass.RATE_LIMITED,
        ErrorClass.OVERLOADED,
        ErrorClass.TIMEOUT,
        ErrorClass.SERVER_ERROR,
        ErrorClass.CONNECTION,
    }
)


class GatewayError(Exception):
    """An error that ends a request with a status and a client-safe message."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.headers = headers or {}


def bad_request(message: str, param: str | None = None, code: str | None = None) -> GatewayError:
    return GatewayError(400, message, param=param, code=code)


def unauthorized(message: str) -> GatewayError:
    return GatewayError(401, message, type="authentication_error", code="invalid_api_key")


def model_not_found(model: str) -> GatewayError:
    return GatewayError(
        404,
        f"The model '{model}' does not exist or you do not have access to it.",
        param="model",
        code="model_not_found",
    )


def not_found(path: str) -> GatewayError:
    return GatewayError(404, f"Unknown path: {path}", code="not_found")


def payload_too_large(limit: int) -> GatewayError:
    return GatewayError(413, f"Request body exceeds the limit of {limit} bytes.", code="request_too_large")


def body_incomplete() -> GatewayError:
    """The connection ended (or its body deadline passed) before the request body was whole."""
    return GatewayError(400, "The request body ended before it was complete.", code="incomplete_body")


def internal_error(request_id: str) -> GatewayError:
    return GatewayError(
        500,
        f"The gateway failed to handle this request (request id {request_id}).",
        type="server_error",
        code="internal_error",
    )


class UpstreamError(Exception):
    """A provider call that failed, classified. `message` is already safe to show a client."""

    def __init__(
        self,
        error_class: ErrorClass,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.error_class = error_class
        self.message = message
        self.status = status
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return self.error_class in RETRYABLE


# What the client gets for each upstream error class: status, OpenAI error type, and whether the
# upstream's own reason is shown.
_CLIENT_STATUS: dict[ErrorClass, tuple[int, str, bool]] = {
    ErrorClass.RATE_LIMITED: (429, "rate_limit_error", True),
    ErrorClass.OVERLOADED: (503, "overloaded_error", True),
    ErrorClass.TIMEOUT: (504, "timeout_error", True),
    ErrorClass.SERVER_ERROR: (502, "upstream_error", True),
    ErrorClass.CONTEXT_WINDOW: (400, "invalid_request_error", True),
    ErrorClass.CONTENT_POLICY: (400, "invalid_request_error", True),
    ErrorClass.AUTH: (502, "upstream_error", False),
    ErrorClass.BAD_REQUEST: (400, "invalid_request_error", True),
    ErrorClass.CONNECTION: (502, "upstream_error", True),  # our own transport messages, never the provider's
}

_GENERIC_REASON: dict[ErrorClass, str] = {
    ErrorClass.TIMEOUT: "The upstream provider did not answer in time.",
    ErrorClass.AUTH: "The upstream provider rejected the gateway's credentials.",
    ErrorClass.CONNECTION: "The gateway could not reach the upstream provider.",
}


def upstream_to_client(error: UpstreamError, deployment: str) -> GatewayError:
    status, type_, show_reason = _CLIENT_STATUS[error.error_class]
    reason = (
        error.message
        if show_reason and error.message
        else _GENERIC_REASON.get(error.error_class, "The upstream provider failed.")
    )
    headers: dict[str, str] = {}
    if error.retry_after is not None and status in (429, 503):
        headers["retry-after"] = str(max(1, round(error.retry_after)))
    return GatewayError(
        status,
        f"Upstream {deployment}: {reason}",
        type=type_,
        code=str(error.error_class),
        headers=headers,
    )


_SECRET_PATTERNS = re.compile(
    r"(sk-[A-Za-z0-9_\-]{6,}|(?i:bearer)\s+[A-Za-z0-9._\-]{8,}|AKIA[0-9A-Z]{12,}|AIza[0-9A-Za-z_\-]{20,})"
)


def scrub(text: str, limit: int = 500) -> str:
    """Remove anything that looks like a credential from a provider's message and bound its length."""
    cleaned = _SECRET_PATTERNS.sub("[redacted]", text)
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 3] + "..."
