"""Gemini error bodies (`{"error": {"code", "message", "status"}}`) -> the closed set of error classes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sluicegate.errors import ErrorClass, UpstreamError, scrub
from sluicegate.providers.classify import classify_status, is_context_window_message, retry_after_seconds

# google.rpc status -> error class; the HTTP status agrees, but the status string is more specific.
STATUSES: dict[str, ErrorClass] = {
    "RESOURCE_EXHAUSTED": ErrorClass.RATE_LIMITED,
    "UNAVAILABLE": ErrorClass.OVERLOADED,
    "DEADLINE_EXCEEDED": ErrorClass.TIMEOUT,
    "INTERNAL": ErrorClass.SERVER_ERROR,
    "UNAUTHENTICATED": ErrorClass.AUTH,
    "PERMISSION_DENIED": ErrorClass.AUTH,
    "NOT_FOUND": ErrorClass.SERVER_ERROR,
    "FAILED_PRECONDITION": ErrorClass.BAD_REQUEST,  # e.g. the API is not available in the caller's region
}


def classify_payload(status: int, data: Mapping[str, Any], headers: Mapping[str, str]) -> UpstreamError:
    error = data.get("error") if isinstance(data.get("error"), dict) else {}
    assert isinstance(error, dict)
    message = str(error.get("message") or "")
    code = str(error.get("status") or "")
    status = int(error.get("code") or status) if str(error.get("code") or "").isdigit() else status
    error_class = STATUSES.get(code) or classify_status(status, message, code)
    if is_context_window_message(message):
        error_class = ErrorClass.CONTEXT_WINDOW
    return UpstreamError(
        error_class, scrub(message) or f"HTTP {status}", status=status, retry_after=retry_after_seconds(headers)
    )
