"""Sans-I/O HTTP/1.1 opening handshake for WebSocket (RFC 6455 section 4).

Nothing here touches a socket or a thread: feed received bytes to a
:class:`HeadReader`, turn the completed head into a :class:`Request` or
:class:`Response`, validate it, and send the bytes you get back yourself.

Server::

    reader = HeadReader()
    while not reader.feed(sock.recv(4096)):   # (handle EOF too)
        pass
    try:
        request = parse_request(reader)
        check_request(request)
        chosen = select_subprotocol(request.subprotocols, ["chat"])
        response = accept(request, chosen)
    except HandshakeError as exc:
        response = error_response(exc)        # then close the connection
    sock.sendall(response.serialize())
    # reader.rest holds bytes the client sent after its head (first frames)

Client::

    key = new_key()
    sock.sendall(build_request("example.com", "/chat", key=key, subprotocols=["chat"]))
    ...feed a fresh HeadReader until complete...
    chosen = check_response(parse_response(reader), key, ["chat"])
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from dataclasses import dataclass
from http import HTTPStatus
from typing import Iterable, Iterator, List, Optional, Sequence, Tuple

from .errors import WebSocketError

__all__ = [
    "GUID", "accept_key", "HandshakeError", "Headers", "Request", "Response",
    "HeadReader", "parse_request", "check_request", "accept", "reject",
    "error_response", "select_subprotocol", "check_origin", "parse_extensions",
    "new_key", "build_request", "parse_response", "check_response",
]

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

#: One parsed extension offer: (name, [(param, value or None), ...]).
Extension = Tuple[str, List[Tuple[str, Optional[str]]]]

_TCHARS = r"!#$%&'*+\-.^_`|~0-9A-Za-z"  # RFC 7230 section 3.2.6
_TOKEN = re.compile(f"[{_TCHARS}]+")
_TOKEN_B = re.compile(f"[{_TCHARS}]+".encode())
_BAD_VALUE = re.compile(r"[^\t\x20-\x7e\x80-\xff]")  # CTLs (but HTAB) and non-latin-1
_BAD_VALUE_B = re.compile(rb"[^\t\x20-\x7e\x80-\xff]")
_VISIBLE = re.compile(r"[\x21-\x7e]+")
_TARGET = re.compile(r"[\x21\x22\x24-\x7e]+")  # visible ASCII except '#': no fragments
_ABSOLUTE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")
_VERSION = re.compile(r"HTTP/([0-9])\.([0-9])")
_STATUS_LINE = re.compile(r"HTTP/[0-9]\.[0-9] ([0-9]{3})(?: (.*))?")
_OWS = re.compile(r"[ \t]*")
_QUOTED = re.compile(r'"((?:[^"\\\x00-\x08\x0a-\x1f\x7f]|\\[\t\x20-\x7e\x80-\xff])*)"')


def accept_key(key: str) -> str:
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key: base64(sha1(key + GUID))."""
    digest = hashlib.sha1((key + GUID).encode("ascii")).digest()
    return base64.b64encode(digest).decode("ascii")


def new_key() -> str:
    """A fresh Sec-WebSocket-Key: base64 of 16 random bytes (RFC 6455 section 4.1)."""
    return base64.b64encode(os.urandom(16)).decode("ascii")


class HandshakeError(WebSocketError):
    """Why a handshake failed. Server side: carries the HTTP response to send.

    ``status`` is the HTTP status to answer with (400, 403, 405, 426, 431 ...).
    Client-side failures use 0, or the non-101 status the server answered with.
    ``reason`` is short and doubles as the response body; ``headers`` are extra
    response headers (``Allow`` for 405, ``Sec-WebSocket-Version`` for 426).
    """

    def __init__(self, status: int, reason: str, headers: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__(status, reason)
        self.status = status
        self.reason = reason
        self.headers: list[tuple[str, str]] = list(headers)

    def __str__(self) -> str:
        return f"{self.status} {self.reason}" if self.status else self.reason


class Headers:
    """Case-insensitive, multi-valued, order-preserving HTTP headers.

    Names keep the spelling they were added with (that is what gets sent);
    lookups ignore case as RFC 7230 section 3.2 requires.
    """

    __slots__ = ("_items", "_index")

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str]] = []
        self._index: dict[str, list[str]] = {}
        for name, value in items:
            self.add(name, value)

    def add(self, name: str, value: str) -> None:
        """Append a field; refuse names and values that cannot go on the wire (header injection)."""
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            raise ValueError(f"invalid header name {name!r}")
        if not isinstance(value, str) or _BAD_VALUE.search(value):
            raise ValueError(f"invalid value for header {name}: {value!r}")
        self._items.append((name, value))
        self._index.setdefault(name.lower(), []).append(value)

    def get(self, name: str, default: str | None = None) -> str | None:
        """First value of ``name``, or ``default``."""
        values = self._index.get(name.lower())
        return values[0] if values else default

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name``, in order."""
        return list(self._index.get(name.lower(), ()))

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)

    def __getitem__(self, name: str) -> str:
        values = self._index.get(name.lower())
        if not values:
            raise KeyError(name)
        return values[0]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._index

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return [(n.lower(), v) for n, v in self] == [(n.lower(), v) for n, v in other]

    __hash__ = None  # type: ignore[assignment]  # mutable


def _tokens(headers: Headers, name: str) -> list[str]:
    """Lower-cased elements of every comma-separated ``name`` field (RFC 7230 #rule)."""
    return [t.strip(" \t").lower() for v in headers.get_all(name) for t in v.split(",") if t.strip(" \t")]


def _check_version(version: str) -> None:
    m = _VERSION.fullmatch(version)
    if not m or (int(m[1]), int(m[2])) < (1, 1):
        raise HandshakeError(400, "HTTP/1.1 or higher required")


def _valid_key(key: str) -> bool:
    """Strict check that ``key`` is the canonical base64 of exactly 16 bytes."""
    try:
        raw = base64.b64decode(key, validate=True)
    except ValueError:  # binascii.Error, or non-ASCII input
        return False
    return len(raw) == 16 and base64.b64encode(raw).decode("ascii") == key


def _split_target(target: str) -> tuple[str, str]:
    """(path, query) of an origin-form ("/a?b") or absolute-form ("ws://h/a?b") target."""
    if _ABSOLUTE.match(target):
        rest = target.split("://", 1)[1]
        cuts = [i for i in (rest.find("/"), rest.find("?")) if i >= 0]
        rest = rest[min(cuts):] if cuts else ""
        if not rest.startswith("/"):
            rest = "/" + rest
    else:
        rest = target
    path, _, query = rest.partition("?")
    return path, query


def _serialize_head(start_line: str, headers: Headers) -> bytes:
    lines = [start_line, *(f"{name}: {value}" for name, value in headers), "", ""]
    return "\r\n".join(lines).encode("latin-1")


@dataclass(frozen=True)
class Request:
    """An HTTP request head: the client's opening handshake."""

    method: str
    target: str
    version: str
    headers: Headers

    @property
    def wants_websocket(self) -> bool:
        """True when the request asks to upgrade to WebSocket (valid or not: see check_request)."""
        return "websocket" in _tokens(self.headers, "Upgrade")

    @property
    def path(self) -> str:
        """Target path without the query ("/" for an absolute-form target without one)."""
        return _split_target(self.target)[0]

    @property
    def query(self) -> str:
        """Query string without the '?', or ''."""
        return _split_target(self.target)[1]

    @property
    def key(self) -> str | None:
        """First Sec-WebSocket-Key, or None."""
        return self.headers.get("Sec-WebSocket-Key")

    @property
    def host(self) -> str | None:
        """First Host header, or None."""
        return self.headers.get("Host")

    @property
    def origin(self) -> str | None:
        """First Origin header, or None (non-browser clients usually omit it)."""
        return self.headers.get("Origin")

    @property
    def subprotocols(self) -> list[str]:
        """Subprotocols offered, in client order, from every Sec-WebSocket-Protocol field."""
        return [p.strip(" \t") for v in self.headers.get_all("Sec-WebSocket-Protocol")
                for p in v.split(",") if p.strip(" \t")]

    @property
    def extensions(self) -> list[Extension]:
        """Parsed Sec-WebSocket-Extensions offers; HandshakeError(400) when malformed."""
        return parse_extensions(", ".join(self.headers.get_all("Sec-WebSocket-Extensions")))


@dataclass(frozen=True)
class Response:
    """An HTTP response: the server's answer to the opening handshake."""

    status: int
    reason: str
    headers: Headers
    body: bytes = b""

    def serialize(self) -> bytes:
        """Wire bytes. A non-101 response is made self-delimiting and announces the close."""
        if not 100 <= self.status <= 999:
            raise ValueError(f"invalid status {self.status}")
        if _BAD_VALUE.search(self.reason):
            raise ValueError(f"invalid reason phrase {self.reason!r}")
        headers = Headers(self.headers)
        if self.status == 101:
            if self.body:
                raise ValueError("a 101 response cannot have a body")
        else:
            if self.body and "Content-Type" not in headers:
                headers.add("Content-Type", "text/plain; charset=utf-8")
            if "Content-Length" not in headers:
                headers.add("Content-Length", str(len(self.body)))
            if "Connection" not in headers:
                headers.add("Connection", "close")
        return _serialize_head(f"HTTP/1.1 {self.status} {self.reason}", headers) + self.body


class HeadReader:
    """Incremental reader of one HTTP head (request or response) from arbitrary chunks.

    Lines end in CRLF; a bare LF is tolerated, as most servers do. Empty lines
    before the start line are skipped (RFC 7230 section 3.5). Each byte is
    scanned once, and at most ``max_size`` bytes of head are ever buffered.
    """

    def __init__(self, max_line: int = 8190, max_headers: int = 128, max_size: int = 65536) -> None:
        self.max_line = max_line
        self.max_headers = max_headers
        self.max_size = max_size
        self.complete = False
        self.start_line = ""
        self.headers = Headers()
        self._partial = bytearray()  # start of a line whose end has not arrived yet
        self._size = 0  # bytes of head consumed in complete lines
        self._rest = bytearray()

    @property
    def rest(self) -> bytes:
        """Bytes received after the head (e.g. the first WebSocket frames)."""
        return bytes(self._rest)

    def feed(self, data: bytes) -> bool:
        """Consume ``data``; True once the head is complete. Later bytes go to ``rest``."""
        if self.complete:
            self._rest += data
            return True
        data = bytes(data)
        start = 0
        while True:
            # A line holds at most max_line bytes plus CR LF: never look further for its end.
            budget = self.max_line + 2 - len(self._partial)
            end = data.find(b"\n", start, start + budget)
            if end < 0:
                tail = len(data) - start
                if tail >= budget:
                    raise HandshakeError(431, "header line too long")
                if self._size + len(self._partial) + tail > self.max_size:
                    raise HandshakeError(431, "request head too large")
                self._partial += data[start:]
                return False
            line = bytes(self._partial) + data[start:end]
            self._partial.clear()
            start = end + 1
            self._size += len(line) + 1
            if self._size > self.max_size:
                raise HandshakeError(431, "request head too large")
            if line.endswith(b"\r"):
                line = line[:-1]
            if len(line) > self.max_line:
                raise HandshakeError(431, "header line too long")
            if self._take_line(line):
                self.complete = True
                self._rest += data[start:]
                return True

    def _take_line(self, line: bytes) -> bool:
        """Process one line without its terminator; True at the blank line ending the head."""
        if not line:
            return bool(self.start_line)
        if _BAD_VALUE_B.search(line):
            raise HandshakeError(400, "control character in head")
        if not self.start_line:
            if line[:1] in (b" ", b"\t"):
                raise HandshakeError(400, "whitespace before start line")
            self.start_line = line.decode("latin-1")
            return False
        if line[:1] in (b" ", b"\t"):
            raise HandshakeError(400, "obsolete line folding")
        name, colon, value = line.partition(b":")
        if not colon:
            raise HandshakeError(400, "header line without colon")
        if not _TOKEN_B.fullmatch(name):
            raise HandshakeError(400, "invalid header name")
        if len(self.headers) >= self.max_headers:
            raise HandshakeError(431, "too many headers")
        self.headers.add(name.decode("ascii"), value.strip(b" \t").decode("latin-1"))
        return False


def _require_complete(reader: HeadReader) -> None:
    if not reader.complete:
        raise ValueError("HeadReader has not received a complete head yet")


# --- server role -----------------------------------------------------------------


def parse_request(reader: HeadReader) -> Request:
    """Request from a completed reader; HandshakeError(400) for a malformed request line.

    Versions below HTTP/1.1 are refused with 400: RFC 6455 4.2.1 asks for
    "HTTP/1.1 or higher", and a 505 would wrongly suggest another version works.
    """
    _require_complete(reader)
    parts = reader.start_line.split(" ")
    if len(parts) != 3:
        raise HandshakeError(400, "malformed request line")
    method, target, version = parts
    if not _TOKEN.fullmatch(method):
        raise HandshakeError(400, "invalid method")
    if not _TARGET.fullmatch(target) or not (target.startswith("/") or _ABSOLUTE.match(target)):
        raise HandshakeError(400, "invalid request target")
    _check_version(version)
    return Request(method, target, version, reader.headers)


def check_request(request: Request) -> None:
    """Validate a client handshake per RFC 6455 section 4.2.1; raise HandshakeError if invalid.

    A missing Sec-WebSocket-Version gets the same 426 (with
    ``Sec-WebSocket-Version: 13``) as an unsupported one, so the client
    learns which version to use either way.
    """
    if request.method != "GET":
        raise HandshakeError(405, "method not allowed", [("Allow", "GET")])
    _check_version(request.version)
    headers = request.headers
    hosts = headers.get_all("Host")
    if len(hosts) != 1 or not hosts[0]:
        raise HandshakeError(400, "missing or duplicate Host header")
    if "websocket" not in _tokens(headers, "Upgrade"):
        raise HandshakeError(400, "missing Upgrade: websocket")
    if "upgrade" not in _tokens(headers, "Connection"):
        raise HandshakeError(400, "missing Connection: Upgrade")
    keys = headers.get_all("Sec-WebSocket-Key")
    if len(keys) != 1 or not _valid_key(keys[0]):
        raise HandshakeError(400, "missing or invalid Sec-WebSocket-Key")
    if headers.get_all("Sec-WebSocket-Version") != ["13"]:
        raise HandshakeError(426, "unsupported Sec-WebSocket-Version", [("Sec-WebSocket-Version", "13")])
    if not all(_TOKEN.fullmatch(p) for p in request.subprotocols):
        raise HandshakeError(400, "invalid Sec-WebSocket-Protocol")
    request.extensions  # parse for the side effect: 400 when malformed


def accept(
    request: Request,
    subprotocol: str | None = None,
    extensions: str | None = None,
    extra_headers: Iterable[tuple[str, str]] = (),
) -> Response:
    """The 101 response accepting a (checked) request.

    ``subprotocol`` must be one the client offered and every extension named in
    ``extensions`` (a Sec-WebSocket-Extensions value) must have been offered:
    otherwise ValueError, because the client would have to fail the connection.
    """
    if request.key is None:
        raise ValueError("request has no Sec-WebSocket-Key; call check_request() first")
    headers = Headers([
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", accept_key(request.key)),
    ])
    if subprotocol is not None:
        if subprotocol not in request.subprotocols:
            raise ValueError(f"subprotocol {subprotocol!r} was not offered by the client")
        headers.add("Sec-WebSocket-Protocol", subprotocol)
    if extensions:
        try:
            chosen = parse_extensions(extensions)
        except HandshakeError as exc:
            raise ValueError(f"invalid extensions value: {exc.reason}") from None
        offered = {name for name, _ in request.extensions}
        for name, _ in chosen:
            if name not in offered:
                raise ValueError(f"extension {name!r} was not offered by the client")
        headers.add("Sec-WebSocket-Extensions", extensions)
    for name, value in extra_headers:
        headers.add(name, value)
    return Response(101, "Switching Protocols", headers)


def reject(status: int, body: str | bytes = b"", headers: Iterable[tuple[str, str]] = ()) -> Response:
    """A plain HTTP response refusing the upgrade (or serving something else: 200 ... 599)."""
    if not 200 <= status <= 599:
        raise ValueError(f"cannot reject with status {status}")
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Unknown"
    if isinstance(body, str):
        body = body.encode("utf-8")
    return Response(status, reason, Headers(headers), bytes(body))


def error_response(error: HandshakeError) -> Response:
    """The HTTP response a server sends for a HandshakeError (reason as a text/plain body)."""
    if not 400 <= error.status <= 599:
        raise ValueError(f"{error!r} is not a server-side handshake error")
    return reject(error.status, error.reason, error.headers)


def select_subprotocol(offered: Sequence[str], supported: Sequence[str]) -> str | None:
    """First of the server's ``supported`` subprotocols that the client offered, or None."""
    for protocol in supported:
        if protocol in offered:
            return protocol
    return None


def check_origin(request: Request, allowed: Iterable[str | None] | None) -> None:
    """Raise HandshakeError(403) unless the Origin is in ``allowed``.

    ``allowed=None`` accepts anything. A request without Origin (non-browser
    clients) passes only if ``None`` is in ``allowed``; several Origin fields never do.
    """
    if allowed is None:
        return
    origins = request.headers.get_all("Origin")
    if len(origins) > 1:
        raise HandshakeError(403, "multiple Origin headers")
    origin = origins[0] if origins else None
    if origin not in list(allowed):
        raise HandshakeError(403, "origin not allowed" if origin is not None else "missing Origin")


def parse_extensions(value: str) -> list[Extension]:
    """Parse a Sec-WebSocket-Extensions value (RFC 6455 section 9.1); HandshakeError(400) if malformed.

    ``'a; x=1; y, b; z="2"'`` -> ``[('a', [('x', '1'), ('y', None)]), ('b', [('z', '2')])]``.
    Empty list elements are ignored (RFC 7230 section 7), so ``''`` gives ``[]``.
    """
    def bad(why: str) -> HandshakeError:
        return HandshakeError(400, f"invalid Sec-WebSocket-Extensions: {why}")

    def skip(pos: int) -> int:
        return _OWS.match(value, pos).end()  # type: ignore[union-attr]  # always matches

    def token(pos: int, what: str) -> tuple[str, int]:
        m = _TOKEN.match(value, pos)
        if not m:
            raise bad(f"expected {what} at offset {pos}")
        return m.group(), m.end()

    result: list[Extension] = []
    pos, end = 0, len(value)
    while True:
        pos = skip(pos)
        if pos == end:
            return result
        if value[pos] == ",":
            pos += 1
            continue
        name, pos = token(pos, "extension name")
        params: list[tuple[str, str | None]] = []
        pos = skip(pos)
        while pos < end and value[pos] == ";":
            param, pos = token(skip(pos + 1), "parameter name")
            pos = skip(pos)
            arg: str | None = None
            if pos < end and value[pos] == "=":
                pos = skip(pos + 1)
                quoted = _QUOTED.match(value, pos)
                if quoted:
                    arg = re.sub(r"\\(.)", r"\1", quoted[1])
                    if not _TOKEN.fullmatch(arg):  # section 9.1: unescaped value must be a token
                        raise bad("quoted parameter value is not a token")
                    pos = quoted.end()
                else:
                    arg, pos = token(pos, "parameter value")
                pos = skip(pos)
            params.append((param, arg))
        result.append((name, params))
        if pos < end and value[pos] != ",":
            raise bad(f"unexpected {value[pos]!r} at offset {pos}")


# --- client role -----------------------------------------------------------------


def build_request(
    host: str,
    path: str = "/",
    *,
    key: str,
    origin: str | None = None,
    subprotocols: Sequence[str] = (),
    extensions: str | None = None,
    extra_headers: Iterable[tuple[str, str]] = (),
) -> bytes:
    """Bytes of a client opening handshake (RFC 6455 section 4.1).

    ``host`` is the Host value ("example.com" or "example.com:8080"), ``path``
    the request target including any query. Use :func:`new_key` for ``key``
    and keep it for :func:`check_response`.
    """
    if not _VISIBLE.fullmatch(host):
        raise ValueError(f"invalid host {host!r}")
    if not path.startswith("/") or not _TARGET.fullmatch(path):
        raise ValueError(f"invalid path {path!r}")
    if not _valid_key(key):
        raise ValueError(f"invalid Sec-WebSocket-Key {key!r}")
    if isinstance(subprotocols, str):
        raise TypeError("subprotocols must be a sequence of str, not a str")
    for protocol in subprotocols:
        if not _TOKEN.fullmatch(protocol):
            raise ValueError(f"invalid subprotocol {protocol!r}")
    headers = Headers([
        ("Host", host),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", key),
        ("Sec-WebSocket-Version", "13"),
    ])
    if origin is not None:
        headers.add("Origin", origin)
    if subprotocols:
        headers.add("Sec-WebSocket-Protocol", ", ".join(subprotocols))
    if extensions:
        try:
            parse_extensions(extensions)
        except HandshakeError as exc:
            raise ValueError(exc.reason) from None
        headers.add("Sec-WebSocket-Extensions", extensions)
    for name, value in extra_headers:
        headers.add(name, value)
    return _serialize_head(f"GET {path} HTTP/1.1", headers)


def parse_response(reader: HeadReader) -> Response:
    """Response from a completed reader; HandshakeError(0) for a malformed status line.

    The body of a non-101 response is not read: whatever followed the head is
    left in ``reader.rest``.
    """
    _require_complete(reader)
    m = _STATUS_LINE.fullmatch(reader.start_line)
    if not m:
        raise HandshakeError(0, "malformed status line")
    return Response(int(m[1]), m[2] or "", reader.headers)


def check_response(
    response: Response,
    key: str,
    subprotocols: Sequence[str] = (),
    *,
    extensions: str | None = None,
) -> str | None:
    """Validate the server's answer per RFC 6455 section 4.1; return the chosen subprotocol.

    ``subprotocols`` and ``extensions`` are what the client offered. A non-101
    status raises HandshakeError with that status and reason; any other failure
    raises HandshakeError with status 0.
    """
    if response.status != 101:
        raise HandshakeError(response.status, response.reason or "unexpected status")
    headers = response.headers
    if _tokens(headers, "Upgrade") != ["websocket"]:
        raise HandshakeError(0, "missing Upgrade: websocket")
    if "upgrade" not in _tokens(headers, "Connection"):
        raise HandshakeError(0, "missing Connection: Upgrade")
    if headers.get_all("Sec-WebSocket-Accept") != [accept_key(key)]:
        raise HandshakeError(0, "missing or wrong Sec-WebSocket-Accept")
    chosen = [p.strip(" \t") for v in headers.get_all("Sec-WebSocket-Protocol") for p in v.split(",")]
    if chosen and (len(chosen) != 1 or chosen[0] not in subprotocols):
        raise HandshakeError(0, "server chose a subprotocol the client did not offer")
    accepted = headers.get_all("Sec-WebSocket-Extensions")
    if accepted:
        try:
            names = [name for name, _ in parse_extensions(", ".join(accepted))]
        except HandshakeError as exc:
            raise HandshakeError(0, exc.reason) from None
        offered = {name for name, _ in parse_extensions(extensions)} if extensions else set()
        if any(name not in offered for name in names):
            raise HandshakeError(0, "server accepted an extension the client did not offer")
    return chosen[0] if chosen else None
