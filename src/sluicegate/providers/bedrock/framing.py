"""The AWS event-stream binary framing of ConverseStream, decoded with botocore's own decoder."""

from __future__ import annotations

from botocore.eventstream import EventStreamBuffer, ParserError

from sluicegate.errors import ErrorClass, UpstreamError


class EventStreamFramer:
    """Feed raw bytes; get (event name, JSON payload) pairs. Exceptions come as `exception:<type>`."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = EventStreamBuffer()

    def push(self, data: bytes) -> None:
        self._buffer.add_data(data)

    def next_event(self) -> tuple[str | None, bytes] | None:
        """The next complete frame as (event name, payload), or None until more bytes are pushed."""
        try:
            message = next(self._buffer, None)
        except ParserError:
            raise UpstreamError(ErrorClass.SERVER_ERROR, "Bedrock sent a corrupt event-stream frame") from None
        if message is None:
            return None
        headers = message.headers
        if headers.get(":message-type") == "event":
            return str(headers.get(":event-type")), message.payload
        # "exception" or "error"
        name = headers.get(":exception-type") or headers.get(":error-code") or "InternalServerException"
        return f"exception:{name}", message.payload

    def feed(self, data: bytes) -> list[tuple[str | None, bytes]]:
        """Pushes `data` and returns every frame now complete."""
        self.push(data)
        events: list[tuple[str | None, bytes]] = []
        while (event := self.next_event()) is not None:
            events.append(event)
        return events
