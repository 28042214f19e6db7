"""The gateway's HTTP/1.1 on the wire, below the SDKs: whole responses framed by their length, and what
holding a response's head back for its body (server/protocol.py) could break: interim 100 responses,
keep-alive, pipelining."""

from __future__ import annotations

import socket

import orjson

from tests.conftest import MASTER_KEY, Proc

CHAT = orjson.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})


def _request(body: bytes, extra: str = "", path: str = "/v1/chat/completions") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer {MASTER_KEY}\r\n"
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body


def _read_response(sock: socket.socket, pending: bytearray) -> tuple[bytes, bytes]:
    """One whole response (content-length framed) from the socket: its head and body."""
    while b"\r\n\r\n" not in pending:
        pending += sock.recv(65536)
    head, _, rest = bytes(pending).partition(b"\r\n\r\n")
    lines = head.lower().split(b"\r\n")
    length = next(int(line.split(b":")[1]) for line in lines if line.startswith(b"content-length"))
    pending[:] = rest
    while len(pending) < length:
        pending += sock.recv(65536)
    body = bytes(pending[:length])
    del pending[:length]
    return head, body


def test_whole_responses_are_framed_by_length_on_a_kept_alive_connection(gateway: Proc) -> None:
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        pending = bytearray()
        for _ in range(5):
            sock.sendall(_request(CHAT))
            head, body = _read_response(sock, pending)  # fails on a response without content-length
            assert head.startswith(b"HTTP/1.1 200") and b"transfer-encoding" not in head.lower()
            assert orjson.loads(body)["object"] == "chat.completion"
        assert not pending  # nothing after the body: no chunked trailer


def test_expect_100_continue_gets_the_interim_response_before_the_body_is_sent(gateway: Proc) -> None:
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        head = _request(b"", "expect: 100-continue\r\n")
        sock.sendall(head.replace(b"content-length: 0", b"content-length: %d" % len(CHAT)))
        interim = sock.recv(65536)  # would time out if the interim response were held back
        assert interim.startswith(b"HTTP/1.1 100 Continue")
        sock.sendall(CHAT)
        pending = bytearray(interim.partition(b"\r\n\r\n")[2])
        status, body = _read_response(sock, pending)
        assert status.startswith(b"HTTP/1.1 200") and orjson.loads(body)["choices"]


def test_pipelined_requests_are_answered_in_order(gateway: Proc) -> None:
    first = _request(CHAT)
    missing = _request(orjson.dumps({"model": "no-such-model", "messages": [{"role": "user", "content": "x"}]}))
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        sock.sendall(first + missing + first)
        pending = bytearray()
        statuses = [_read_response(sock, pending)[0].split(b"\r\n")[0] for _ in range(3)]
    assert statuses == [b"HTTP/1.1 200 OK", b"HTTP/1.1 404 Not Found", b"HTTP/1.1 200 OK"]
