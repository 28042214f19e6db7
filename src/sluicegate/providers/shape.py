"""A provider body of the wrong shape is an upstream failure (retryable, fails over), never a gateway crash."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import orjson

from sluicegate.errors import ErrorClass, UpstreamError

P = ParamSpec("P")
T = TypeVar("T")


def upstream_shape(family: str, what: str) -> Callable[[Callable[P, T]], Callable[P, T]]:
    """Turns the lookup errors of a transform on an unexpected body into `UpstreamError(server_error)`."""

    def decorate(transform: Callable[P, T]) -> Callable[P, T]:
        @functools.wraps(transform)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> T:
            try:
                return transform(*args, **kwargs)
            except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
                raise UpstreamError(
                    ErrorClass.SERVER_ERROR, f"{family} sent a {what} of an unexpected shape ({type(exc).__name__})"
                ) from None

        return guarded

    return decorate


def load_object(body: bytes, family: str, what: str) -> dict[str, Any]:
    """A provider's JSON object body, or the retryable upstream error that a malformed one is."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise UpstreamError(ErrorClass.SERVER_ERROR, f"{family} sent a malformed {what}") from None
    if isinstance(data, list) and len(data) == 1 and isinstance(data[0], dict):
        data = data[0]  # (Gemini) a stream body read whole without alt=sse is a JSON array of one
    if not isinstance(data, dict):
        raise UpstreamError(ErrorClass.SERVER_ERROR, f"{family} sent a malformed {what}")
    return data
