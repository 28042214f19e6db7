"""The AWS event-stream binary framing of ConverseStream, decoded with botocore's own decoder."""

from __future__ import annotations

from botocore.eventstream import EventStreamBuffer, ParserError

from sluicegate.errors import ErrorClass, UpstreamError


class EventStreamFramer:
    """Feed raw bytes; get (event name, JSON payload) pairs. Exceptions come as `exception:<type>`."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = EventStreamBuffer()

    def feed(self, data: bytes) -> list[tuple[str | None, bytes]]:
        self._buffer.add_data(data)
        events: list[tuple[str | None, bytes]] = []
        try:
            for message in self._buffer:
                headers = message.headers
                kind = headers.get(":message-type")
                if kind == "event":
                    events.append((str(headers.get(":event-type")), message.payload))
                else:  # "exception" or "error"
                    name = headers.get(":exception-type") or headers.get(":error-code") or "InternalServerException"
                    events.append((f"exception:{name}", message.payload))
        except ParserError:
            raise UpstreamError(ErrorClass.SERVER_ERROR, "Bedrock sent a corrupt event-stream frame") from None
        return events
