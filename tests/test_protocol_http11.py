"""HTTP/1.1 heads (protocol/http11.py) apart from the WebSocket rules (protocol/handshake.py), and the names
the handshake module still offers for them."""

from __future__ import annotations

from typing import Any, Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wsframe.protocol import handshake as hs
from wsframe.protocol import http11
from wsframe.protocol.connection import ServerConnection
from wsframe.protocol.errors import HandshakeError
from wsframe.protocol.events import Closed, Rejected, Request

KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def read(data: bytes) -> http11.HeadReader:
    reader = http11.HeadReader()
    assert reader.feed(data)
    return reader


@pytest.mark.parametrize("name", ["Headers", "Response", "HeadReader", "parse_response"])
def test_handshake_re_exports_the_http_names(name: str) -> None:
    assert getattr(hs, name) is getattr(http11, name)
    assert hs.HandshakeError is HandshakeError


def test_http_request_knows_nothing_of_websocket() -> None:
    head = http11.parse_request(read(b"GET /a?b=1 HTTP/1.0\r\nHost: h\r\nUpgrade: websocket\r\n\r\n"))
    assert (head.method, head.path, head.query, head.host, head.version) == ("GET", "/a", "b=1", "h", "HTTP/1.0")
    assert not hasattr(head, "wants_websocket") and not hasattr(head, "subprotocols")


def test_the_handshake_reads_the_same_head_with_its_rules() -> None:
    data = b"GET /a HTTP/1.0\r\nHost: h\r\nUpgrade: websocket\r\n\r\n"
    with pytest.raises(HandshakeError) as info:
        hs.parse_request(read(data))  # RFC 6455 4.2.1: HTTP/1.1 or higher
    assert info.value.status == 400
    request = hs.parse_request(read(data.replace(b"HTTP/1.0", b"HTTP/1.1")))
    assert isinstance(request, http11.Request) and request.wants_websocket and request.path == "/a"


@pytest.mark.parametrize("data,status", [
    (b"GET / HTTP/x\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nbad header\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 200 + b"\r\n", 431),
])
def test_http_errors_carry_their_status(data: bytes, status: int) -> None:
    with pytest.raises(HandshakeError) as info:
        reader = http11.HeadReader()
        reader.feed(data)
        http11.parse_request(reader)
    assert info.value.status == status


def test_request_head_and_text_response() -> None:
    headers = http11.Headers([("Host", "h")])
    assert http11.request_head("GET", "/x?y", headers) == b"GET /x?y HTTP/1.1\r\nHost: h\r\n\r\n"
    for target in ("x", "/a b", "/a#b"):
        with pytest.raises(ValueError):
            http11.request_head("GET", target, headers)
    response = http11.text_response(404, "gone")
    assert (response.status, response.reason, response.body) == (404, "Not Found", b"gone")
    assert response.serialize().startswith(b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain")
    assert hs.reject(404, "gone") == response


def test_comma_list() -> None:
    headers = http11.Headers([("Connection", "keep-alive, Upgrade"), ("connection", " , x ")])
    assert http11.comma_list(headers, "CONNECTION") == ["keep-alive", "upgrade", "x"]


def test_receive_request_takes_a_plain_http_request(backend: Any) -> None:
    """Another server's parser may hand over a plain http11.Request: it is read as a handshake."""
    head = http11.parse_request(read(hs.build_request("h", "/chat", key=KEY)))
    assert type(head) is http11.Request
    conn = ServerConnection(backend=backend.name)
    conn.receive_request(head)
    (event,) = conn.events()
    assert isinstance(event, Request) and isinstance(event.request, hs.Request) and event.request.key == KEY
    assert conn.accept().startswith(b"HTTP/1.1 101 ")


def test_receive_request_refuses_a_plain_http_request_that_is_not_an_upgrade(backend: Any) -> None:
    conn = ServerConnection(backend=backend.name)
    conn.receive_request(http11.parse_request(read(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")))
    assert [type(e) for e in conn.events()] == [Rejected, Closed]


@pytest.mark.parametrize("line", [b"HTTP/1.1 001 X", b"HTTP/1.1 099", b"HTTP/1.1 000 OK", b"HTTP/1.1 600 X"])
def test_a_status_outside_100_599_is_a_malformed_status_line(line: bytes, backend: Any) -> None:
    """docs/fuzzing.md F3: Rejected.status is an HTTP status, or 0 when the response is invalid."""
    from wsframe.protocol.connection import ClientConnection

    conn = ClientConnection("example.com", "/", backend=backend.name)
    conn.receive_data(line + b"\r\n\r\n")
    assert [tuple(e) for e in conn.events()] == [(0, "malformed status line"), (1006, "malformed status line")]


# docs/fuzzing.md F4: a refusal must not depend on how the head is split into reads. Each limit is crossed
# at one byte of the stream (the head at its byte number max_size + 1; a line at its first byte past max_line
# that is not the CR of its CR LF; the header count, like a malformed line, at the LF ending the line), the
# first crossed is reported, and the head size first when two are crossed at the same byte.

_START = b"GET / HTTP/1.1\r\n"  # 16 bytes: a line of max_line=16 fits, with room for nothing more
_FIELDS_16 = b"A: 1234567890123\r\nB: 1234567890123\r\n"  # two lines of 16 bytes: the head is 52 bytes


def _verdict(pieces: Iterable[bytes], limits: tuple[int, int, int]) -> tuple[object, ...]:
    """The refusal (status, reason) of a head fed in ``pieces``, or what the reader made of it."""
    reader = http11.HeadReader(*limits)
    try:
        for piece in pieces:
            reader.feed(piece)
    except HandshakeError as exc:
        return (exc.status, exc.reason)
    return (reader.complete, reader.start_line, reader.headers.items(), reader.rest if reader.complete else b"")


def _chunkings(data: bytes) -> Iterable[list[bytes]]:
    """One read, every byte in its own read, and two reads split at every point."""
    yield [data]
    yield [data[i:i + 1] for i in range(len(data))]
    for i in range(len(data) + 1):
        yield [data[:i], data[i:]]


_TOO_LARGE = (431, "request head too large")
_TOO_LONG = (431, "header line too long")
_TOO_MANY = (431, "too many headers")


@pytest.mark.parametrize("data,limits,expected", [
    # F4's reproducer: the head is too large at byte 60, the X line too long only at byte 68.
    (_START + _FIELDS_16 + b"X: " + b"a" * 40 + b"\r\n\r\n", (16, 3, 60), _TOO_LARGE),
    (_START + _FIELDS_16 + b"X: " + b"a" * 40 + b"\r\n\r\n", (16, 3, 70), _TOO_LONG),
    (_START + b"X: " + b"a" * 40 + b"\r\n\r\n", (16, 3, 60), _TOO_LONG),  # line at byte 32
    (b"GET /" + b"a" * 60 + b" HTTP/1.1\r\n\r\n", (16, 3, 30), _TOO_LONG),  # the request line, at byte 16
    (b"GET /" + b"a" * 60 + b" HTTP/1.1\r\n\r\n", (16, 3, 16), _TOO_LARGE),  # same byte: the head size
    # The 4th header's LF is byte 39; the Z line would be too long at 56 and the head too large at 60.
    (_START + b"A: 1\r\n" * 4 + b"Z: " + b"z" * 40 + b"\r\n\r\n", (16, 3, 60), _TOO_MANY),
    (_START + b"A: 1\r\n" * 4 + b"\r\n", (16, 3, 39), _TOO_LARGE),  # the same byte: the head size
    (_START + b"A: 1\r\n" * 4 + b"\r\n", (16, 3, 40), _TOO_MANY),
    # 17 bytes and a bare LF: too long at the 17th byte (32), before the LF (33) crosses max_size.
    (_START + b"X: " + b"a" * 14 + b"\n\r\n", (16, 3, 33), _TOO_LONG),
    # 16 bytes and CR LF fit: the LF (33) crosses max_size only.
    (_START + b"X: " + b"a" * 13 + b"\r\n\r\n", (16, 3, 33), _TOO_LARGE),
    (_START + b"X: " + b"a" * 13 + b"\r\n\r\n", (16, 3, 34), _TOO_LARGE),  # the blank line's CR
    (_START + b"X: " + b"a" * 13 + b"\r\n\r\n", (16, 3, 36), (True, "GET / HTTP/1.1", [("X", "a" * 13)], b"")),
    # A CR at byte 16 of a line that is not followed by LF: too long at the byte after it (33).
    (_START + b"X: " + b"a" * 13 + b"\rb\r\n\r\n", (16, 3, 34), _TOO_LONG),
    (_START + b"X: " + b"a" * 13 + b"\rb\r\n\r\n", (16, 3, 33), _TOO_LARGE),
    # A malformed line is judged at its LF: a limit crossed before it wins, one crossed after loses.
    (_START + b"X: \x00" + b"a" * 30 + b"\r\n\r\n", (16, 3, 60), _TOO_LONG),
    (_START + b"X: \x00\r\nY: " + b"a" * 50 + b"\r\n\r\n", (16, 3, 40), (400, "control character in head")),
    (_START + b"A: 1\r\n\r\n", (16, 3, 23), _TOO_LARGE),  # the last LF of the head
    (b"\r\n" * 20 + _START + b"\r\n", (16, 3, 40), _TOO_LARGE),  # blank lines before the start line count
    (_START + b"A: 1\n\nrest", (16, 3, 22), (True, "GET / HTTP/1.1", [("A", "1")], b"rest")),
])
def test_a_head_gets_the_same_verdict_however_it_is_split(
    data: bytes, limits: tuple[int, int, int], expected: tuple[object, ...]
) -> None:
    """The first limit crossed in the stream is reported, in one read, byte by byte, or in two reads."""
    for pieces in _chunkings(data):
        assert _verdict(pieces, limits) == expected, pieces


_HEAD_PIECES = st.sampled_from([
    b"a", b"a" * 7, b":", b" ", b"\r", b"\n", b"\r\n", b"\x00", b"A: 1\r\n", b"B:2\n", _START,
])


@settings(max_examples=500, deadline=None)
@given(
    st.lists(_HEAD_PIECES, max_size=30).map(b"".join),
    st.tuples(st.integers(0, 24), st.integers(0, 4), st.integers(0, 100)),
    st.lists(st.integers(0, 400), max_size=8),
)
def test_the_verdict_on_any_head_does_not_depend_on_the_reads(
    data: bytes, limits: tuple[int, int, int], cuts: list[int]
) -> None:
    bytewise = _verdict([data[i:i + 1] for i in range(len(data))], limits)
    bounds = [0, *sorted(c for c in cuts if c <= len(data)), len(data)]
    assert _verdict([data[a:b] for a, b in zip(bounds, bounds[1:])], limits) == bytewise
    assert _verdict([data], limits) == bytewise


def test_a_negative_head_limit_is_refused() -> None:
    for limits in ((-1, 3, 60), (16, -1, 60), (16, 3, -1)):
        with pytest.raises(ValueError):
            http11.HeadReader(*limits)
