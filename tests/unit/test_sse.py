from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sluicegate.providers.sse import SSEParser


def test_events_split_across_reads_are_reassembled() -> None:
    parser = SSEParser()
    assert parser.feed(b'data: {"a"') == []
    assert parser.feed(b": 1}\n\ndata: [DONE]\n\n") == [(None, b'{"a": 1}'), (None, b"[DONE]")]


def test_named_events_multiline_data_comments_and_crlf() -> None:
    parser = SSEParser()
    events = parser.feed(b': ping\r\n\r\nevent: message_start\r\ndata: {"x":\r\ndata: 1}\r\n\r\n')
    assert events == [("message_start", b'{"x":\n1}')]


@given(
    st.lists(st.binary(min_size=1, max_size=40).filter(lambda b: b"\n" not in b and b"\r" not in b), max_size=8),
    st.integers(min_value=1, max_value=7),
)
def test_any_split_gives_the_same_events(payloads: list[bytes], step: int) -> None:
    stream = b"".join(b"data: " + p + b"\n\n" for p in payloads)
    parser = SSEParser()
    events = []
    for i in range(0, len(stream), step):
        events.extend(parser.feed(stream[i : i + step]))
    assert [data for _, data in events] == payloads


def test_a_crlf_split_across_reads_is_one_line_end() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: 1\r") == []
    assert parser.feed(b"\ndata: 2\r\n\r\n") == [(None, b"1\n2")]  # one event of two data lines


def test_events_are_taken_one_at_a_time_and_the_rest_waits() -> None:
    parser = SSEParser()
    parser.push(b"data: a\n\ndata: b\n\ndata: c")
    assert parser.next_event() == (None, b"a")
    parser.push(b"\n\n")  # more bytes before the rest was taken: nothing is lost or reordered
    assert [parser.next_event(), parser.next_event(), parser.next_event()] == [(None, b"b"), (None, b"c"), None]
