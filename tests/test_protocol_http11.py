"""HTTP/1.1 heads (protocol/http11.py) apart from the WebSocket rules (protocol/handshake.py), and the names
the handshake module still offers for them."""

from __future__ import annotations

from typing import Any

import pytest

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
