"""Server-sent events framing: splits a byte stream into (event, data) pairs."""

from __future__ import annotations


class SSEParser:
    """Incremental parser. `push` raw bytes as they arrive, then take complete events one at a time with
    `next_event` (lazily: a relay that needs only the first event of a burst splits only that far), or all
    of them at once with `feed`."""

    __slots__ = ("_buffer", "_start")

    def __init__(self) -> None:
        self._buffer = b""
        self._start = 0  # where the events not yet taken begin

    def push(self, data: bytes) -> None:
        buffer = self._buffer[self._start :] + data
        if b"\r" in buffer:
            # CRLF and CR line ends become LF; a CR that ends the read waits, as it may be half a CRLF.
            tail = b"\r" if buffer.endswith(b"\r") else b""
            body = buffer[: len(buffer) - len(tail)]
            buffer = body.replace(b"\r\n", b"\n").replace(b"\r", b"\n") + tail
        self._buffer, self._start = buffer, 0

    def next_event(self) -> tuple[str | None, bytes] | None:
        """The next complete event, or None until more bytes are pushed."""
        buffer = self._buffer
        while True:
            end = buffer.find(b"\n\n", self._start)
            if end < 0:
                return None
            block = buffer[self._start : end]
            self._start = end + 2
            event = _parse_block(block)
            if event is not None:
                return event

    def feed(self, data: bytes) -> list[tuple[str | None, bytes]]:
        """Pushes `data` and returns every event now complete."""
        self.push(data)
        events: list[tuple[str | None, bytes]] = []
        while (event := self.next_event()) is not None:
            events.append(event)
        return events

    @property
    def pending(self) -> bytes:
        return self._buffer[self._start :]


def _parse_block(block: bytes) -> tuple[str | None, bytes] | None:
    if block.startswith(b"data: ") and b"\n" not in block:
        return None, block[6:]  # the common case: one data line, no event name
    name: str | None = None
    data: list[bytes] = []
    for line in block.split(b"\n"):
        if not line or line.startswith(b":"):
            continue
        field, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if field == b"data":
            data.append(value)
        elif field == b"event":
            name = value.decode("utf-8", "replace")
    if not data and name is None:
        return None
    return name, b"\n".join(data)
