"""What every ingress format checks of a body before reading it: one JSON object, nested no deeper than a bound.

The bound matters beyond taste: the JSON parser accepts 1,024 levels but its serialiser refuses more than
254, and every request is serialised again on its way to a provider; a body nested between the two would
fail there, after admission, as a server error.
"""

from __future__ import annotations

from typing import Any

import orjson

from sluicegate.errors import GatewayError, bad_request

MAX_DEPTH = 100  # levels of objects and arrays in a request body, the body itself being level 1
MAX_INTEGER = 2**63 - 1  # a signed 64-bit integer: what databases, Redis and every provider can hold
MAX_TOKENS = 2**31 - 1  # far above any model's window; its worst-case cost still fits 64 bits of micro-dollars


def load_object(body: bytes, not_json: str) -> dict[str, Any]:
    """The body as a dict; a 400 (`not_json` as its message) when it is not one JSON object within bounds."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if "depth" in str(exc) or "recursion" in str(exc).lower():
            raise too_deep(None) from None
        raise bad_request(not_json) from None
    if not isinstance(data, dict):
        raise bad_request("The request body must be a JSON object.")
    field = deepest_field(data, body)
    if field is not None:
        raise too_deep(field)
    return data


def too_deep(field: str | None) -> GatewayError:
    where = f"'{field}'" if field is not None else "The request body"
    return bad_request(f"{where} is nested more than {MAX_DEPTH} levels deep.", param=field, code="too_deep")


def deepest_field(data: dict[str, Any], body: bytes | None = None, limit: int = MAX_DEPTH) -> str | None:
    """The first top-level field under which `data` nests more than `limit` levels, or None.

    A body with no more than `limit` brackets cannot be that deep, which spares the walk for nearly every
    request (the count includes brackets inside strings, so it only ever over-counts)."""
    if body is not None and body.count(b"[") + body.count(b"{") <= limit:
        return None
    for name, value in data.items():
        if isinstance(value, dict | list) and _deeper_than(value, limit - 2):  # the body and the field's value
            return str(name)
    return None


def _deeper_than(root: dict[str, Any] | list[Any], limit: int) -> bool:
    """Whether any container inside `root` (not counting root itself) lies more than `limit` levels below it."""
    stack: list[tuple[Any, int]] = [(root, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        for child in node.values() if isinstance(node, dict) else node:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
    return False
