"""The frames between the host and a child: a JSON head and, for vectors, raw little-endian float32 rows.

Host to child: `u32 length` + JSON `{"id", "texts"}`. Child to host: `u32 head length`, `u32 body length`, the
JSON head (`{"id", "rows", "dims"}`, `{"id", "error"}`, `{"ready", "dims", "model"}` or `{"fatal"}`), then
the body (rows x dims float32 values for a result, else empty).
"""

from __future__ import annotations

import struct
from typing import Any

import orjson

_LENGTH = struct.Struct("<I")
_LENGTHS = struct.Struct("<II")
HEAD_BYTES = _LENGTHS.size
LENGTH_BYTES = _LENGTH.size


def request_frame(call_id: int, texts: list[str]) -> bytes:
    payload = orjson.dumps({"id": call_id, "texts": texts})
    return _LENGTH.pack(len(payload)) + payload


def request_length(prefix: bytes) -> int:
    return int(_LENGTH.unpack(prefix)[0])


def reply_frame(head: dict[str, Any], body: bytes = b"") -> bytes:
    encoded = orjson.dumps(head)
    return _LENGTHS.pack(len(encoded), len(body)) + encoded + body


def reply_lengths(prefix: bytes) -> tuple[int, int]:
    head, body = _LENGTHS.unpack(prefix)
    return int(head), int(body)
