"""Tests for the sans-I/O opening handshake (RFC 6455 section 4)."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wsframe.protocol import handshake as hs

HandshakeError = hs.HandshakeError
KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 section 1.3
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

BASE_HEADERS = [
    ("Host", "server.example.com"),
    ("Upgrade", "websocket"),
    ("Connection", "Upgrade"),
    ("Sec-WebSocket-Key", KEY),
    ("Origin", "http://example.com"),
    ("Sec-WebSocket-Protocol", "chat, superchat"),
    ("Sec-WebSocket-Version", "13"),
]
VALID = (
    b"GET /chat?x=1 HTTP/1.1\r\n"
    + b"".join(f"{n}: {v}\r\n".encode() for n, v in BASE_HEADERS)
    + b"\r\n"
)


def head(start: str = "GET /chat HTTP/1.1", headers=BASE_HEADERS, *, drop=(), add=()) -> bytes:
    """A request head built from ``headers`` minus names in ``drop`` plus ``add``."""
    lowered = {d.lower() for d in drop}
    fields = [(n, v) for n, v in headers if n.lower() not in lowered] + list(add)
    return (start + "\r\n" + "".join(f"{n}: {v}\r\n" for n, v in fields) + "\r\n").encode("latin-1")


def read(data: bytes, **limits) -> hs.HeadReader:
    reader = hs.HeadReader(**limits)
    assert reader.feed(data)
    return reader


def request(data: bytes) -> hs.Request:
    return hs.parse_request(read(data))


def server_error(data: bytes) -> HandshakeError:
    with pytest.raises(HandshakeError) as info:
        hs.check_request(request(data))
    return info.value


# --- keys -------------------------------------------------------------------------


def test_accept_key_rfc_example():
    assert hs.GUID == "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
    assert hs.accept_key(KEY) == ACCEPT


def test_new_key_is_16_random_bytes():
    keys = {hs.new_key() for _ in range(20)}
    assert len(keys) == 20
    for key in keys:
        assert len(base64.b64decode(key, validate=True)) == 16


# --- Headers ----------------------------------------------------------------------


def test_headers_case_insensitive_multi_valued_ordered():
    h = hs.Headers([("Host", "a"), ("X-A", "1")])
    h.add("x-a", "2")
    assert h.get("HOST") == "a" and h["host"] == "a"
    assert h.get("x-A") == "1" and h.get_all("X-a") == ["1", "2"]
    assert h.get("missing") is None and h.get("missing", "d") == "d" and h.get_all("missing") == []
    assert "X-A" in h and "x-a" in h and "nope" not in h and 3 not in h
    assert list(h) == h.items() == [("Host", "a"), ("X-A", "1"), ("x-a", "2")]
    assert len(h) == 3
    with pytest.raises(KeyError):
        h["nope"]
    assert repr(h) == "Headers([('Host', 'a'), ('X-A', '1'), ('x-a', '2')])"
    assert h == hs.Headers([("host", "a"), ("x-a", "1"), ("X-A", "2")])
    assert h != hs.Headers([("X-A", "1"), ("Host", "a"), ("x-a", "2")])
    assert h != [("Host", "a")]
    assert hs.Headers(h) == h


@pytest.mark.parametrize("name,value", [
    ("Bad Name", "v"), ("", "v"), ("X:Y", "v"), ("X", "a\r\nInjected: 1"), ("X", "a\nb"), ("X", "\x00"), ("X", "\u20ac"),
])
def test_headers_refuse_unsendable_fields(name, value):
    with pytest.raises(ValueError):
        hs.Headers().add(name, value)


# --- HeadReader -------------------------------------------------------------------


def test_valid_request_whole():
    req = request(VALID)
    assert (req.method, req.target, req.version) == ("GET", "/chat?x=1", "HTTP/1.1")
    assert req.path == "/chat" and req.query == "x=1"
    assert req.key == KEY and req.host == "server.example.com" and req.origin == "http://example.com"
    assert req.subprotocols == ["chat", "superchat"] and req.extensions == []
    assert req.headers == hs.Headers(BASE_HEADERS)
    hs.check_request(req)


def test_valid_request_every_two_way_split():
    expected = request(VALID)
    for i in range(len(VALID) + 1):
        reader = hs.HeadReader()
        first = reader.feed(VALID[:i])
        assert first == (i == len(VALID))
        assert reader.feed(VALID[i:])
        assert hs.parse_request(reader) == expected and reader.rest == b""


def test_valid_request_one_byte_at_a_time():
    reader = hs.HeadReader()
    results = [reader.feed(VALID[i:i + 1]) for i in range(len(VALID))]
    assert results == [False] * (len(VALID) - 1) + [True]
    assert hs.parse_request(reader) == request(VALID)


def test_bytes_after_head_are_kept():
    frame = b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58"
    reader = read(VALID + frame)
    assert reader.rest == frame
    assert reader.feed(b"more") and reader.rest == frame + b"more"
    reader = hs.HeadReader()
    data = VALID + frame
    for i in range(len(data)):
        reader.feed(data[i:i + 1])
    assert reader.rest == frame and hs.parse_request(reader) == request(VALID)


def test_head_incomplete_until_blank_line():
    reader = hs.HeadReader()
    assert not reader.feed(VALID[:-2]) and not reader.complete
    with pytest.raises(ValueError):
        hs.parse_request(reader)
    assert reader.feed(b"\r\n") and reader.complete


def test_bare_lf_and_leading_blank_lines_tolerated():
    req = request(b"\r\n\n" + VALID.replace(b"\r\n", b"\n"))
    assert req == request(VALID)
    mixed = VALID.replace(b"\r\nHost", b"\nHost").replace(b"\r\n\r\n", b"\n\r\n")
    assert request(mixed) == request(VALID)


def test_header_value_whitespace_stripped_and_empty_values_allowed():
    reader = read(b"GET / HTTP/1.1\r\nX-A:  \t v  \t\r\nX-B:\r\nX-C:a b\r\n\r\n")
    assert reader.headers.items() == [("X-A", "v"), ("X-B", ""), ("X-C", "a b")]


@pytest.mark.parametrize("data", [
    b"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\n\tfolded\r\n\r\n",
    b"GET / HTTP/1.1\r\nNoColon\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
    b"GET / HTTP/1.1\r\nBad Name: a\r\n\r\n",
    b"GET / HTTP/1.1\r\nBad(Name): a\r\n\r\n",
    b"GET / HTTP/1.1\r\nB\xe4d: a\r\n\r\n",
    b"GET / HTTP/1.1\r\n: a\r\n\r\n",
    b"GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n",
    b"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n",
    b" GET / HTTP/1.1\r\n\r\n",
    b"GET / HTTP/1.1\r\n Host: a\r\n\r\n",
])
def test_malformed_head_is_400(data):
    with pytest.raises(HandshakeError) as info:
        hs.HeadReader().feed(data)
    assert info.value.status == 400


def test_over_long_line_is_431():
    line = b"X-Long: " + b"a" * 100
    assert read(b"GET / HTTP/1.1\r\n" + line + b"\r\n\r\n", max_line=len(line)).headers["x-long"]
    for data in (b"GET / HTTP/1.1\r\n" + line + b"a\r\n\r\n", b"GET /" + b"a" * 200 + b" HTTP/1.1\r\n\r\n"):
        with pytest.raises(HandshakeError) as info:
            hs.HeadReader(max_line=len(line)).feed(data)
        assert info.value.status == 431
    # Also without a line end in sight, and when the line arrives in small pieces.
    reader = hs.HeadReader(max_line=len(line))
    reader.feed(b"GET / HTTP/1.1\r\n")
    with pytest.raises(HandshakeError) as info:
        for _ in range(200):
            reader.feed(b"a")
    assert info.value.status == 431


def test_too_many_headers_is_431():
    fields = b"".join(b"X-%d: v\r\n" % i for i in range(10))
    assert len(read(b"GET / HTTP/1.1\r\n" + fields + b"\r\n", max_headers=10).headers) == 10
    with pytest.raises(HandshakeError) as info:
        hs.HeadReader(max_headers=9).feed(b"GET / HTTP/1.1\r\n" + fields + b"\r\n")
    assert info.value.status == 431


def test_head_too_big_is_431():
    fields = b"".join(b"X-%d: %s\r\n" % (i, b"v" * 50) for i in range(100))
    data = b"GET / HTTP/1.1\r\n" + fields + b"\r\n"
    assert read(data, max_size=len(data)).complete
    for chunk in (len(data), 1, 7):
        reader = hs.HeadReader(max_size=len(data) - 1)
        with pytest.raises(HandshakeError) as info:
            for i in range(0, len(data), chunk):
                reader.feed(data[i:i + chunk])
        assert info.value.status == 431
    # Never buffers more than max_size while waiting for a line end.
    reader = hs.HeadReader(max_line=1000, max_size=1000)
    reader.feed(b"GET / HTTP/1.1\r\n" + b"X: " + b"a" * 900)
    with pytest.raises(HandshakeError) as info:
        reader.feed(b"a" * 100)
    assert info.value.status == 431


def test_one_byte_feeding_of_a_large_head_is_linear():
    # 60k feeds of one byte: fast only because each feed scans just the new byte
    # (a reader rescanning its buffer from 0 would do ~1.8e9 byte comparisons).
    data = b"GET / HTTP/1.1\r\nX: " + b"a" * 60000 + b"\r\n\r\n"
    reader = hs.HeadReader(max_line=61000)
    for i in range(len(data)):
        reader.feed(data[i:i + 1])
    assert reader.complete and len(reader.headers["x"]) == 60000


# --- parse_request / Request ------------------------------------------------------


@pytest.mark.parametrize("line", [
    "GET /", "GET / HTTP/1.1 x", "GET  / HTTP/1.1", "GET\t/ HTTP/1.1", "G@T / HTTP/1.1",
    "GET chat HTTP/1.1", "GET /a#frag HTTP/1.1", "GET * HTTP/1.1", "GET / FOO/1.1", "GET / HTTP/1",
    "GET / HTTP/1.0", "GET / HTTP/0.9", "GET / http/1.1", "GET / HTTP/\xb2.1", "GET /\xe9 HTTP/1.1",
])
def test_bad_request_line_is_400(line):
    with pytest.raises(HandshakeError) as info:
        request(head(line))
    assert info.value.status == 400


def test_higher_versions_and_absolute_form_accepted():
    assert request(head("GET / HTTP/1.2")).version == "HTTP/1.2"
    hs.check_request(request(head("GET / HTTP/2.0")))
    req = request(head("GET ws://server.example.com:80/chat?a=b HTTP/1.1"))
    assert (req.path, req.query) == ("/chat", "a=b")
    assert (request(head("GET wss://h HTTP/1.1")).path, request(head("GET http://h?q HTTP/1.1")).query) == ("/", "q")
    assert request(head("GET /p HTTP/1.1")).query == ""


def test_request_properties_from_several_fields():
    req = request(head(add=[
        ("Sec-WebSocket-Protocol", " v2 ,,v3 "),
        ("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits"),
        ("Sec-WebSocket-Extensions", 'x-foo; a="1"'),
    ], drop=["Origin"]))
    assert req.origin is None
    assert req.subprotocols == ["chat", "superchat", "v2", "v3"]
    assert req.extensions == [("permessage-deflate", [("client_max_window_bits", None)]), ("x-foo", [("a", "1")])]
    assert request(head(headers=[])).key is None and request(head(headers=[])).host is None


# --- check_request ----------------------------------------------------------------


def test_method_not_get_is_405_with_allow():
    for method in ("POST", "get", "HEAD"):
        error = server_error(head(f"{method} /chat HTTP/1.1"))
        assert error.status == 405 and error.headers == [("Allow", "GET")]


@pytest.mark.parametrize("drop,add", [
    (["Host"], []),
    (["Host"], [("Host", "")]),
    ([], [("Host", "other.example.com")]),
    (["Upgrade"], []),
    (["Upgrade"], [("Upgrade", "h2c")]),
    (["Upgrade"], [("Upgrade", "websocket2")]),
    (["Connection"], []),
    (["Connection"], [("Connection", "keep-alive")]),
    (["Connection"], [("Connection", "upgrades")]),
    (["Sec-WebSocket-Key"], []),
    (["Sec-WebSocket-Key"], [("Sec-WebSocket-Key", "")]),
    (["Sec-WebSocket-Key"], [("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ")]),  # no padding
    (["Sec-WebSocket-Key"], [("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZR==")]),  # non-canonical
    (["Sec-WebSocket-Key"], [("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==x")]),
    (["Sec-WebSocket-Key"], [("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25j*Q==")]),
    (["Sec-WebSocket-Key"], [("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZSE=")]),  # 17 bytes
    (["Sec-WebSocket-Key"], [("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25j")]),  # 15 bytes
    ([], [("Sec-WebSocket-Key", KEY)]),  # twice
    ([], [("Sec-WebSocket-Protocol", "bad/proto")]),
    ([], [("Sec-WebSocket-Extensions", "x; =1")]),
])
def test_missing_or_invalid_field_is_400(drop, add):
    assert server_error(head(drop=drop, add=add)).status == 400


@pytest.mark.parametrize("versions", [[], ["8"], ["14"], ["13, 8"], [" 13x"], ["13", "13"], ["13", "8"]])
def test_bad_or_missing_version_is_426_with_version_header(versions):
    error = server_error(head(drop=["Sec-WebSocket-Version"], add=[("Sec-WebSocket-Version", v) for v in versions]))
    assert error.status == 426 and error.headers == [("Sec-WebSocket-Version", "13")]


@pytest.mark.parametrize("connection", [
    ["keep-alive, Upgrade"], ["UPGRADE"], ["upgrade"], ["keep-alive", "Upgrade"], ["Upgrade", "close"], [" Upgrade ,"],
])
def test_connection_header_variants(connection):
    hs.check_request(request(head(drop=["Connection"], add=[("Connection", c) for c in connection])))


@pytest.mark.parametrize("upgrade", ["WebSocket", "h2c, websocket", "WEBSOCKET"])
def test_upgrade_header_variants(upgrade):
    hs.check_request(request(head(drop=["Upgrade"], add=[("Upgrade", upgrade)])))


def test_check_request_handles_handmade_requests():
    req = request(VALID)
    with pytest.raises(HandshakeError) as info:
        hs.check_request(hs.Request("GET", "/", "HTTP/1.0", req.headers))
    assert info.value.status == 400


# --- check_origin -----------------------------------------------------------------


def test_check_origin():
    req = request(VALID)
    no_origin = request(head(drop=["Origin"]))
    hs.check_origin(req, None)
    hs.check_origin(no_origin, None)
    hs.check_origin(req, ["http://example.com"])
    hs.check_origin(no_origin, [None, "http://example.com"])
    for r, allowed in [(req, ["https://example.com"]), (req, []), (no_origin, ["http://example.com"]),
                       (req, ["HTTP://EXAMPLE.COM"]),
                       (request(head(add=[("Origin", "http://example.com")])), ["http://example.com"])]:
        with pytest.raises(HandshakeError) as info:
            hs.check_origin(r, allowed)
        assert info.value.status == 403
        assert hs.error_response(info.value).status == 403


# --- subprotocols -----------------------------------------------------------------


def test_select_subprotocol_uses_server_preference():
    assert hs.select_subprotocol(["chat", "superchat"], ["superchat", "chat"]) == "superchat"
    assert hs.select_subprotocol(["chat", "superchat"], ["other", "chat"]) == "chat"
    assert hs.select_subprotocol(["chat"], ["Chat"]) is None
    assert hs.select_subprotocol([], ["chat"]) is None
    assert hs.select_subprotocol(["chat"], []) is None


@given(st.lists(st.sampled_from("abcde")), st.lists(st.sampled_from("abcdef")))
def test_select_subprotocol_never_returns_unoffered(offered, supported):
    chosen = hs.select_subprotocol(offered, supported)
    assert chosen is None or (chosen in offered and chosen in supported)
    assert (chosen is None) == (not set(offered) & set(supported))


# --- accept / reject / error_response ---------------------------------------------


def test_accept_rfc_example_bytes():
    response = hs.accept(request(VALID), "chat")
    assert response.serialize() == (
        b"HTTP/1.1 101 Switching Protocols\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
        b"Sec-WebSocket-Protocol: chat\r\n"
        b"\r\n"
    )
    assert "Sec-WebSocket-Protocol" not in hs.accept(request(VALID)).headers


def test_accept_refuses_unoffered_subprotocol_and_extension():
    req = request(VALID)
    for bad in ("other", "Chat", "chat, superchat", ""):
        with pytest.raises(ValueError):
            hs.accept(req, bad)
    with pytest.raises(ValueError):
        hs.accept(req, extensions="permessage-deflate")
    with pytest.raises(ValueError):
        hs.accept(request(head(headers=[])))  # no key


def test_accept_extensions_and_extra_headers():
    req = request(head(add=[("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits, x-a")]))
    response = hs.accept(req, extensions="permessage-deflate; server_no_context_takeover",
                         extra_headers=[("Server", "wsframe")])
    assert response.headers["sec-websocket-extensions"] == "permessage-deflate; server_no_context_takeover"
    assert response.headers["Server"] == "wsframe" and response.status == 101
    with pytest.raises(ValueError):
        hs.accept(req, extensions="permessage-deflate;;")


SERVER_RESERVED = ["Sec-WebSocket-Extensions", "Sec-WebSocket-Accept", "Sec-WebSocket-Protocol", "Upgrade", "Connection"]
CLIENT_RESERVED = ["Host", "Upgrade", "Connection", "Sec-WebSocket-Key", "Sec-WebSocket-Version",
                   "Sec-WebSocket-Protocol", "Sec-WebSocket-Extensions"]


def _spellings(name: str) -> list:
    return [name, name.lower(), name.upper()]


@pytest.mark.parametrize("name", [s for n in SERVER_RESERVED for s in _spellings(n)])
def test_accept_refuses_reserved_extra_headers(name):
    """The handshake's own headers are the library's to write: one set by the caller could contradict them."""
    req = request(head(add=[("Sec-WebSocket-Extensions", "x-a")]))
    with pytest.raises(ValueError, match="reserved"):
        hs.accept(req, extra_headers=[("X-Fine", "1"), (name, "x-a")])


@pytest.mark.parametrize("name", [s for n in CLIENT_RESERVED for s in _spellings(n)])
def test_build_request_refuses_reserved_extra_headers(name):
    with pytest.raises(ValueError, match="reserved"):
        hs.build_request("h", "/", key=KEY, extra_headers=[(name, "v")])


def test_extra_headers_outside_the_handshake_are_fine():
    req = request(VALID)
    response = hs.accept(req, extra_headers=[("Sec-WebSocket-Version", "13"), ("Set-Cookie", "a=b")])
    assert response.headers.get_all("Set-Cookie") == ["a=b"]
    data = hs.build_request("h", key=KEY, extra_headers=[("Origin-X", "o"), ("Authorization", "Bearer t")])
    assert b"\r\nAuthorization: Bearer t\r\n" in data


def test_error_response_bytes():
    error = server_error(head(drop=["Sec-WebSocket-Version"], add=[("Sec-WebSocket-Version", "8")]))
    body = error.reason.encode()
    assert hs.error_response(error).serialize() == (
        b"HTTP/1.1 426 Upgrade Required\r\n"
        b"Sec-WebSocket-Version: 13\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: %d\r\n"
        b"Connection: close\r\n"
        b"\r\n%s" % (len(body), body)
    )
    wire = hs.error_response(server_error(head("POST / HTTP/1.1"))).serialize()
    assert wire.startswith(b"HTTP/1.1 405 Method Not Allowed\r\nAllow: GET\r\n")
    with pytest.raises(ValueError):
        hs.error_response(HandshakeError(0, "client side"))


def test_reject_and_serialize():
    response = hs.reject(404, "nöpe", [("X-A", "1")])
    assert (response.status, response.reason, response.body) == (404, "Not Found", "nöpe".encode())
    assert response.serialize() == (
        b"HTTP/1.1 404 Not Found\r\nX-A: 1\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: 5\r\nConnection: close\r\n\r\nn\xc3\xb6pe"
    )
    assert hs.reject(403).serialize() == b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    custom = hs.reject(302, headers=[("Location", "/x"), ("Connection", "keep-alive"), ("Content-Length", "0")])
    assert custom.serialize().count(b"Connection") == 1 and custom.serialize().count(b"Content-Length") == 1
    assert hs.reject(599).reason == "Unknown"
    for status in (101, 199, 600):
        with pytest.raises(ValueError):
            hs.reject(status)
    for bad in (hs.Response(101, "Switching Protocols", hs.Headers(), b"x"),
                hs.Response(99, "x", hs.Headers()), hs.Response(400, "a\r\nb", hs.Headers())):
        with pytest.raises(ValueError):
            bad.serialize()


# --- extensions -------------------------------------------------------------------


@pytest.mark.parametrize("value,expected", [
    ("", []),
    (" , ,", []),
    ("permessage-deflate", [("permessage-deflate", [])]),
    ("a;x;y=1 , b ; z = \"2\"", [("a", [("x", None), ("y", "1")]), ("b", [("z", "2")])]),
    ('a; q="w\\x"', [("a", [("q", "wx")])]),
    ("a,,b", [("a", []), ("b", [])]),
    ("permessage-deflate; client_max_window_bits; server_max_window_bits=10, permessage-deflate",
     [("permessage-deflate", [("client_max_window_bits", None), ("server_max_window_bits", "10")]),
      ("permessage-deflate", [])]),
])
def test_parse_extensions(value, expected):
    assert hs.parse_extensions(value) == expected


@pytest.mark.parametrize("value", [
    "a b", "a;", "a; =1", "a; x=", "a; x=1 2", "a=1", ";x", 'a; x="1 2"', 'a; x="unterminated', 'a; x=""',
    "a; x=\"\\\"\"", "a; x=@", "a b, c", "a; x=1; ", "\"a\"",
])
def test_parse_extensions_malformed_is_400(value):
    with pytest.raises(HandshakeError) as info:
        hs.parse_extensions(value)
    assert info.value.status == 400


# --- client role ------------------------------------------------------------------


def client_response(data: bytes) -> hs.Response:
    return hs.parse_response(read(data))


def good_response(*extra: str, accept: str = ACCEPT) -> bytes:
    lines = ["HTTP/1.1 101 Switching Protocols", "Upgrade: websocket", "Connection: Upgrade",
             f"Sec-WebSocket-Accept: {accept}", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_build_request_bytes():
    assert hs.build_request("server.example.com", "/chat", key=KEY, origin="http://example.com",
                            subprotocols=["chat", "superchat"], extra_headers=[("User-Agent", "t")]) == (
        b"GET /chat HTTP/1.1\r\n"
        b"Host: server.example.com\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n"
        b"Origin: http://example.com\r\n"
        b"Sec-WebSocket-Protocol: chat, superchat\r\n"
        b"User-Agent: t\r\n"
        b"\r\n"
    )


@pytest.mark.parametrize("kwargs", [
    {"host": "a b"}, {"host": ""}, {"host": "h\r\nX: 1"}, {"path": "chat"}, {"path": "/a b"}, {"path": "/a#b"},
    {"key": "short"}, {"subprotocols": ["a b"]}, {"extensions": "a;;"}, {"origin": "o\r\nX: 1"},
    {"extra_headers": [("X", "a\nb")]},
])
def test_build_request_refuses_bad_input(kwargs):
    args = {"host": "h", "path": "/", "key": KEY, **kwargs}
    with pytest.raises(ValueError):
        hs.build_request(args.pop("host"), args.pop("path"), **args)


def test_build_request_refuses_str_subprotocols():
    with pytest.raises(TypeError):
        hs.build_request("h", key=KEY, subprotocols="chat")


def test_round_trip():
    key = hs.new_key()
    wire = hs.build_request("localhost:8080", "/ws?room=1", key=key, origin="https://app.test",
                            subprotocols=["v1.chat", "v2.chat"], extensions="permessage-deflate")
    server_reader = hs.HeadReader()
    assert server_reader.feed(wire + b"\x81\x80")
    req = hs.parse_request(server_reader)
    hs.check_request(req)
    hs.check_origin(req, ["https://app.test"])
    assert (req.path, req.query, req.host, server_reader.rest) == ("/ws", "room=1", "localhost:8080", b"\x81\x80")
    chosen = hs.select_subprotocol(req.subprotocols, ["v2.chat", "v1.chat"])
    response = hs.accept(req, chosen, extensions="permessage-deflate")
    client_reader = hs.HeadReader()
    wire = response.serialize()
    for i in range(len(wire)):
        client_reader.feed(wire[i:i + 1])
    client_reader.feed(b"\x81\x00")
    parsed = hs.parse_response(client_reader)
    assert parsed == response and client_reader.rest == b"\x81\x00"
    assert hs.check_response(parsed, key, ["v1.chat", "v2.chat"], extensions="permessage-deflate") == "v2.chat"


def test_check_response_accepts_valid_variants():
    assert hs.check_response(client_response(good_response()), KEY) is None
    assert hs.check_response(client_response(good_response("Sec-WebSocket-Protocol: chat")), KEY, ["chat"]) == "chat"
    variant = good_response().replace(b"websocket", b"WebSocket").replace(b"Connection: Upgrade", b"Connection: upgrade")
    assert hs.check_response(client_response(variant), KEY) is None


def test_client_rejects_non_101_with_that_status():
    response = client_response(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
    with pytest.raises(HandshakeError) as info:
        hs.check_response(response, KEY)
    assert (info.value.status, info.value.reason) == (403, "Forbidden")
    with pytest.raises(HandshakeError) as info:
        hs.check_response(client_response(b"HTTP/1.1 200\r\n\r\n"), KEY)
    assert info.value.status == 200


@pytest.mark.parametrize("data,offered", [
    (good_response(accept="x3JJHMbDL1EzLkh9GBhXDw=="), []),  # wrong accept
    (good_response(accept=hs.accept_key("AQIDBAUGBwgJCgsMDQ4PEA==")), []),  # other key's accept
    (good_response("Sec-WebSocket-Accept: " + ACCEPT), []),  # twice
    (good_response().replace(b"Sec-WebSocket-Accept: " + ACCEPT.encode() + b"\r\n", b""), []),
    (good_response().replace(b"Upgrade: websocket\r\n", b""), []),
    (good_response().replace(b"Upgrade: websocket", b"Upgrade: h2c"), []),
    (good_response().replace(b"Connection: Upgrade", b"Connection: close"), []),
    (good_response("Sec-WebSocket-Protocol: chat"), []),
    (good_response("Sec-WebSocket-Protocol: other"), ["chat"]),
    (good_response("Sec-WebSocket-Protocol: chat, superchat"), ["chat", "superchat"]),
    (good_response("Sec-WebSocket-Protocol: chat", "Sec-WebSocket-Protocol: chat"), ["chat"]),
    (good_response("Sec-WebSocket-Extensions: permessage-deflate"), []),
    (good_response("Sec-WebSocket-Extensions: a;;"), []),
])
def test_client_rejects_bad_101(data, offered):
    with pytest.raises(HandshakeError) as info:
        hs.check_response(client_response(data), KEY, offered)
    assert info.value.status == 0


def test_client_extension_checks():
    data = good_response("Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover")
    assert hs.check_response(client_response(data), KEY, extensions="permessage-deflate, x-other") is None
    with pytest.raises(HandshakeError):
        hs.check_response(client_response(data), KEY, extensions="x-other")


@pytest.mark.parametrize("line", ["HTTP/1.1", "HTTP/1.1 1010 x", "HTTP/1.1 abc x", "ICY 200 OK", "HTTP/1.1  101 x"])
def test_parse_response_malformed_status_line(line):
    with pytest.raises(HandshakeError) as info:
        client_response(line.encode() + b"\r\n\r\n")
    assert info.value.status == 0


def test_parse_response_status_line_forms():
    assert client_response(b"HTTP/1.1 101\r\n\r\n").reason == ""
    assert client_response(b"HTTP/1.0 404 Not  Found\r\n\r\n").reason == "Not  Found"


# --- properties -------------------------------------------------------------------

_PIECES = st.sampled_from([
    b"GET ", b"POST ", b"/", b"/chat?x", b" HTTP/1.1", b" HTTP/1.0", b"HTTP/1.1 101 OK", b"\r\n", b"\n", b"\r",
    b" ", b"\t", b":", b",", b";", b"=", b'"', b"Host: h", b"Upgrade: websocket", b"Connection: Upgrade",
    b"Sec-WebSocket-Key: " + KEY.encode(), b"Sec-WebSocket-Version: 13", b"Sec-WebSocket-Extensions: a; b=\"c\"",
    b"Sec-WebSocket-Protocol: chat", b"Origin: o", b"\x00", b"\xff", b"\xb2",
])


@settings(max_examples=400, deadline=None)
@given(st.lists(st.binary(max_size=40) | _PIECES, max_size=40), st.integers(1, 64))
def test_random_input_only_raises_handshake_error(pieces, chunk):
    data = b"".join(pieces)
    reader = hs.HeadReader(max_line=200, max_headers=8, max_size=1000)
    try:
        done = False
        for i in range(0, len(data), chunk):
            done = reader.feed(data[i:i + chunk])
        if done:
            req = hs.parse_request(reader)
            req.path, req.query, req.subprotocols, req.extensions  # noqa: B018
            hs.check_request(req)
            hs.accept(req).serialize()
    except HandshakeError as exc:
        assert exc.status in (400, 405, 426, 431)
        hs.error_response(exc).serialize()
    try:
        if reader.complete:
            hs.check_response(hs.parse_response(reader), KEY, ["chat"])
    except HandshakeError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=16), st.sets(st.integers(0, len(VALID) + 16), max_size=30))
def test_random_chunking_gives_same_request(extra, cuts):
    data = VALID + extra
    bounds = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
    reader = hs.HeadReader()
    for a, b in zip(bounds, bounds[1:]):
        reader.feed(data[a:b])
    assert reader.complete and reader.rest == extra
    assert hs.parse_request(reader) == request(VALID)
