"""Tool-call arguments that validate against the tool's JSON schema, filled deterministically.

Covers what function schemas use in practice: types (including type lists), enum/const, required
properties, nested objects and arrays with min/max bounds, anyOf/oneOf/allOf and local `$ref`s.
"""

from __future__ import annotations

import random
from typing import Any

from sluicegate.providers.simulator.text import generate_word

_MAX_DEPTH = 8
_FORMATTED_STRINGS = {
    "date": "2024-01-15",
    "date-time": "2024-01-15T12:00:00Z",
    "time": "12:00:00",
    "email": "user@example.com",
    "uri": "https://example.com/",
    "url": "https://example.com/",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "ipv4": "192.0.2.1",
}


def arguments_for(parameters: Any, rng: random.Random) -> dict[str, Any]:
    """An object satisfying `parameters` (a JSON schema for an object); `{}` when there is none."""
    if not isinstance(parameters, dict):
        return {}
    value = _value(parameters, parameters, rng, 0)
    return value if isinstance(value, dict) else {}


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#/"):
        return schema
    target: Any = root
    for part in ref[2:].split("/"):
        target = target.get(part.replace("~1", "/").replace("~0", "~")) if isinstance(target, dict) else None
    return target if isinstance(target, dict) else {}


def _type_of(schema: dict[str, Any]) -> str | None:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), kind[0] if kind else None)
    if kind is None and "properties" in schema:
        kind = "object"
    return kind if isinstance(kind, str) else None


def _value(schema: Any, root: dict[str, Any], rng: random.Random, depth: int) -> Any:
    if not isinstance(schema, dict) or depth > _MAX_DEPTH:
        return None
    schema = _resolve(schema, root)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return rng.choice(schema["enum"])
    for combinator in ("anyOf", "oneOf"):
        options = schema.get(combinator)
        if isinstance(options, list) and options:
            return _value(options[0], root, rng, depth + 1)
    if isinstance(schema.get("allOf"), list):
        merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
        for part in schema["allOf"]:
            part = _resolve(part, root) if isinstance(part, dict) else {}
            merged["properties"] = {**merged.get("properties", {}), **part.get("properties", {})}
            merged["required"] = [*merged.get("required", []), *part.get("required", [])]
            merged.setdefault("type", part.get("type"))
        return _value(merged, root, rng, depth + 1)
    match _type_of(schema):
        case "object":
            return _object(schema, root, rng, depth)
        case "array":
            return _array(schema, root, rng, depth)
        case "string":
            return _string(schema, rng)
        case "integer":
            return _integer(schema, rng)
        case "number":
            return _number(schema, rng)
        case "boolean":
            return rng.random() < 0.5
        case "null":
            return None
        case _:
            return generate_word(rng)


def _object(schema: dict[str, Any], root: dict[str, Any], rng: random.Random, depth: int) -> dict[str, Any]:
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        properties = {}
    required = [name for name in schema.get("required") or () if isinstance(name, str)]
    return {name: _value(properties.get(name, {}), root, rng, depth + 1) for name in required}


def _array(schema: dict[str, Any], root: dict[str, Any], rng: random.Random, depth: int) -> list[Any]:
    count = max(int(schema.get("minItems", 1)), 1)
    if "maxItems" in schema:
        count = min(count, int(schema["maxItems"]))
    items = schema.get("items", {})
    return [_value(items, root, rng, depth + 1) for _ in range(count)]


def _string(schema: dict[str, Any], rng: random.Random) -> str:
    text = _FORMATTED_STRINGS.get(str(schema.get("format")), "")
    if not text:
        text = generate_word(rng)
    while len(text) < int(schema.get("minLength", 0)):
        text += " " + generate_word(rng)
    if "maxLength" in schema:
        text = text[: int(schema["maxLength"])]
    return text


def _integer(schema: dict[str, Any], rng: random.Random) -> int:
    low = schema.get("minimum")
    if isinstance(schema.get("exclusiveMinimum"), int | float):
        low = int(schema["exclusiveMinimum"]) + 1
    high = schema.get("maximum")
    if isinstance(schema.get("exclusiveMaximum"), int | float):
        high = int(schema["exclusiveMaximum"]) - 1
    low = int(-(-low // 1)) if isinstance(low, int | float) else None  # ceil, for fractional bounds
    high = int(high // 1) if isinstance(high, int | float) else None
    if low is None and high is None:
        return rng.randint(1, 100)
    if low is None:
        low = min(1, high) if high is not None else 1
    if high is None or high < low:
        high = low + 100
    return rng.randint(low, high)


def _number(schema: dict[str, Any], rng: random.Random) -> float:
    bounds = [schema.get(k) for k in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum")]
    lows = [b for b in bounds[:2] if isinstance(b, int | float)]
    highs = [b for b in bounds[2:] if isinstance(b, int | float)]
    low = max(lows) if lows else None
    high = min(highs) if highs else None
    if low is None:
        if high is None:
            return float(rng.randint(1, 100))
        low = high - 100
    if high is None:
        high = low + 100
    # Strictly inside the bounds, so exclusive bounds hold too.
    return low + (high - low) * (0.25 + 0.5 * rng.random())
