"""Shared rules for classifying provider errors into the closed set of `ErrorClass`."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime

from sluicegate.errors import ErrorClass

_CONTEXT_WINDOW = re.compile(
    r"context[_ ]length|context window|maximum context|too many tokens|prompt is too long|"
    r"input is too long|exceeds the maximum number of tokens|reduce the length",
    re.IGNORECASE,
)
_CONTENT_POLICY = re.compile(r"content[_ ]?(policy|filter|management)|safety|responsible ai", re.IGNORECASE)

_BY_STATUS: dict[int, ErrorClass] = {
    401: ErrorClass.AUTH,
    403: ErrorClass.AUTH,
    404: ErrorClass.SERVER_ERROR,  # the deployment's model or URL is wrong: the gateway's fault, not the client's
    408: ErrorClass.TIMEOUT,
    429: ErrorClass.RATE_LIMITED,
    500: ErrorClass.SERVER_ERROR,
    502: ErrorClass.SERVER_ERROR,
    503: ErrorClass.OVERLOADED,
    504: ErrorClass.TIMEOUT,
    529: ErrorClass.OVERLOADED,
}


def classify_status(status: int, message: str, code: str | None = None) -> ErrorClass:
    """The class of an HTTP error from its status, refined by the provider's code and message."""
    text = f"{code or ''} {message}"
    if status in (400, 413, 422):
        if _CONTEXT_WINDOW.search(text):
            return ErrorClass.CONTEXT_WINDOW
        if _CONTENT_POLICY.search(text):
            return ErrorClass.CONTENT_POLICY
        return ErrorClass.BAD_REQUEST
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if status >= 500:
        return ErrorClass.SERVER_ERROR
    return ErrorClass.BAD_REQUEST


def is_context_window_message(text: str) -> bool:
    return _CONTEXT_WINDOW.search(text) is not None


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """`retry-after-ms` or `retry-after` (seconds or an HTTP date), as seconds from now."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None
