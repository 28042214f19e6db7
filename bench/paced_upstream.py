"""An OpenAI-format upstream that streams as providers do: each SSE event in a write of its own, a fixed gap
apart (the overhead benchmark's token-by-token upstream).

    python bench/paced_upstream.py PORT [--gap-ms 1.0] [--events 24]

A POST to any path answers a streamed request with `--events` events (role opener, text deltas, finish,
usage), the first at once and each next one `--gap-ms` later, and a whole request with one completion
body. Raw asyncio protocol on uvloop and a timer per event, so that at the benchmark's rates the upstream
is not what limits the gateway; it shares core 1 with the load generator. Not part of Sluicegate.
"""

from __future__ import annotations

import argparse
import asyncio

import orjson
import uvloop


def _event(choices: list[dict[str, object]], usage: dict[str, int] | None = None) -> bytes:
    chunk = {
        "id": "chatcmpl-paced",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "bench-model",
        "choices": choices,
        "usage": usage,
    }
    data = b"data: " + orjson.dumps(chunk) + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(data), data)  # one chunk of a chunked response


def stream_events(count: int) -> list[bytes]:
    events = [_event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])]
    for i in range(count - 3):
        events.append(_event([{"index": 0, "delta": {"content": f" word{i}"}, "finish_reason": None}]))
    events.append(_event([{"index": 0, "delta": {}, "finish_reason": "stop"}]))
    events.append(_event([], {"prompt_tokens": 31, "completion_tokens": count - 3, "total_tokens": count + 28}))
    data = b"data: [DONE]\n\n"
    events.append(b"%x\r\n%s\r\n0\r\n\r\n" % (len(data), data))
    return events


_STREAM_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
_COMPLETION = orjson.dumps(
    {
        "id": "chatcmpl-paced",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "bench-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hamlet avenges his father. Almost everyone dies."},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 31, "completion_tokens": 10, "total_tokens": 41},
    }
)
_WHOLE = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (
    len(_COMPLETION),
    _COMPLETION,
)


class PacedProtocol(asyncio.Protocol):
    def __init__(self, events: list[bytes], gap: float) -> None:
        self._events = events
        self._gap = gap
        self._buffer = b""
        self._transport: asyncio.Transport | None = None
        self._busy = False  # a stream is being written: the next request waits (no pipelining needed)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        self._serve()

    def _serve(self) -> None:
        while not self._busy and self._transport is not None:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self._buffer[:end].lower()
            length = 0
            at = head.find(b"content-length:")
            if at >= 0:
                length = int(head[at + 15 :].split(b"\r\n", 1)[0])
            if len(self._buffer) < end + 4 + length:
                return
            body = self._buffer[end + 4 : end + 4 + length]
            self._buffer = self._buffer[end + 4 + length :]
            if head.startswith(b"get"):
                self._transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
            elif b'"stream":true' in body.replace(b" ", b""):
                self._busy = True
                self._transport.write(_STREAM_HEAD + self._events[0])
                asyncio.get_running_loop().call_later(self._gap, self._next, 1)
            else:
                self._transport.write(_WHOLE)

    def _next(self, index: int) -> None:
        if self._transport is None:
            return
        self._transport.write(self._events[index])
        if index + 1 < len(self._events):
            asyncio.get_running_loop().call_later(self._gap, self._next, index + 1)
        else:
            self._busy = False
            self._serve()


async def serve(port: int, gap: float, events: int) -> None:
    loop = asyncio.get_running_loop()
    chunks = stream_events(events)
    server = await loop.create_server(lambda: PacedProtocol(chunks, gap), "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("port", type=int)
    parser.add_argument("--gap-ms", type=float, default=1.0, help="milliseconds between two events")
    parser.add_argument("--events", type=int, default=24)
    args = parser.parse_args()
    uvloop.run(serve(args.port, args.gap_ms / 1000, args.events))


if __name__ == "__main__":
    main()
