"""Sans-I/O opening handshake for WebSocket: the rules of RFC 6455 section 4.

Keys and Sec-WebSocket-Accept, the checks of a client's request and of a
server's answer, subprotocols, extensions, Origin. The HTTP/1.1 heads they
travel in (headers, parsing, serialisation, size limits) are :mod:`http11`'s;
the names used with them are re-exported here, so both work as ``hs.X``.

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
from typing import Iterable, List, Optional, Sequence, Tuple, Union

from . import http11
from .errors import HandshakeError
from .http11 import OWS, QUOTED_STRING, TOKEN, Headers, HeadReader, Response, comma_list, parse_response

__all__ = [
    "GUID", "accept_key", "HandshakeError", "Headers", "Request", "Response",
    "HeadReader", "parse_request", "check_request", "accept", "reject",
    "error_response", "select_subprotocol", "check_origin", "parse_extensions",
    "new_key", "build_request", "parse_response", "check_response",
    "RESERVED_REQUEST_HEADERS", "RESERVED_RESPONSE_HEADERS",
]

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

#: One parsed extension offer: (name, [(param, value or None), ...]).
Extension = Tuple[str, List[Tuple[str, Optional[str]]]]

#: Headers the 101 response is made of: the library writes them, a caller's extra headers may not.
RESERVED_RESPONSE_HEADERS = frozenset(
    {"upgrade", "connection", "sec-websocket-accept", "sec-websocket-protocol", "sec-websocket-extensions"}
)
#: Headers the client's upgrade request is made of, likewise.
RESERVED_REQUEST_HEADERS = frozenset(
    {"host", "upgrade", "connection", "sec-websocket-key", "sec-websocket-version",
     "sec-websocket-protocol", "sec-websocket-extensions"}
)


def accept_key(key: str) -> str:
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key: base64(sha1(key + GUID))."""
    digest = hashlib.sha1((key + GUID).encode("ascii")).digest()
    return base64.b64encode(digest).decode("ascii")


def new_key() -> str:
    """A fresh Sec-WebSocket-Key: base64 of 16 random bytes (RFC 6455 section 4.1)."""
    return base64.b64encode(os.urandom(16)).decode("ascii")


def _check_version(version: str) -> None:
    """RFC 6455 4.2.1: "HTTP/1.1 or higher" (a 505 would wrongly suggest another version works)."""
    parsed = http11.http_version(version)
    if parsed is None or parsed < (1, 1):
        raise HandshakeError(400, "HTTP/1.1 or higher required")


def _valid_key(key: str) -> bool:
    """Strict check that ``key`` is the canonical base64 of exactly 16 bytes."""
    try:
        raw = base64.b64decode(key, validate=True)
    except ValueError:  # binascii.Error, or non-ASCII input
        return False
    return len(raw) == 16 and base64.b64encode(raw).decode("ascii") == key


def _add_extra(headers: Headers, extra: Iterable[Tuple[str, str]], reserved: frozenset[str]) -> None:
    """Append a caller's headers; ValueError for one the handshake itself writes (e.g. a second Upgrade)."""
    for name, value in extra:
        if isinstance(name, str) and name.lower() in reserved:
            raise ValueError(f"{name} is reserved for the handshake: it cannot be an extra header")
        headers.add(name, value)


class Request(http11.Request):
    """An HTTP request head read as a client's opening handshake: its WebSocket fields."""

    @property
    def wants_websocket(self) -> bool:
        """True when the request asks to upgrade to WebSocket (valid or not: see check_request)."""
        return "websocket" in comma_list(self.headers, "Upgrade")

    @property
    def key(self) -> Optional[str]:
        """First Sec-WebSocket-Key, or None."""
        return self.headers.get("Sec-WebSocket-Key")

    @property
    def origin(self) -> Optional[str]:
        """First Origin header, or None (non-browser clients usually omit it)."""
        return self.headers.get("Origin")

    @property
    def subprotocols(self) -> List[str]:
        """Subprotocols offered, in client order, from every Sec-WebSocket-Protocol field."""
        return [p.strip(" \t") for v in self.headers.get_all("Sec-WebSocket-Protocol")
                for p in v.split(",") if p.strip(" \t")]

    @property
    def extensions(self) -> List[Extension]:
        """Parsed Sec-WebSocket-Extensions offers; HandshakeError(400) when malformed."""
        return parse_extensions(", ".join(self.headers.get_all("Sec-WebSocket-Extensions")))


# --- server role -----------------------------------------------------------------


def parse_request(reader: HeadReader) -> Request:
    """Request from a completed reader; HandshakeError(400) for a malformed request line.

    Versions below HTTP/1.1 are refused with 400: RFC 6455 4.2.1 asks for
    "HTTP/1.1 or higher", and a 505 would wrongly suggest another version works.
    """
    head = http11.parse_request(reader)
    _check_version(head.version)
    return Request(head.method, head.target, head.version, head.headers)


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
    if "websocket" not in comma_list(headers, "Upgrade"):
        raise HandshakeError(400, "missing Upgrade: websocket")
    if "upgrade" not in comma_list(headers, "Connection"):
        raise HandshakeError(400, "missing Connection: Upgrade")
    keys = headers.get_all("Sec-WebSocket-Key")
    if len(keys) != 1 or not _valid_key(keys[0]):
        raise HandshakeError(400, "missing or invalid Sec-WebSocket-Key")
    if headers.get_all("Sec-WebSocket-Version") != ["13"]:
        raise HandshakeError(426, "unsupported Sec-WebSocket-Version", [("Sec-WebSocket-Version", "13")])
    if not all(TOKEN.fullmatch(p) for p in request.subprotocols):
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
    ``extra_headers`` may not set the handshake's own headers
    (:data:`RESERVED_RESPONSE_HEADERS`): ValueError.
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
    _add_extra(headers, extra_headers, RESERVED_RESPONSE_HEADERS)
    return Response(101, "Switching Protocols", headers)


def reject(status: int, body: Union[str, bytes] = b"", headers: Iterable[Tuple[str, str]] = ()) -> Response:
    """A plain HTTP response refusing the upgrade (or serving something else: 200 ... 599)."""
    if not 200 <= status <= 599:
        raise ValueError(f"cannot reject with status {status}")
    return http11.text_response(status, body, headers)


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
        return OWS.match(value, pos).end()  # type: ignore[union-attr]  # always matches

    def token(pos: int, what: str) -> tuple[str, int]:
        m = TOKEN.match(value, pos)
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
                quoted = QUOTED_STRING.match(value, pos)
                if quoted:
                    arg = re.sub(r"\\(.)", r"\1", quoted[1])
                    if not TOKEN.fullmatch(arg):  # section 9.1: unescaped value must be a token
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
    and keep it for :func:`check_response`. ``extra_headers`` may not set the
    handshake's own headers (:data:`RESERVED_REQUEST_HEADERS`): ValueError.
    """
    if not http11.is_host(host):
        raise ValueError(f"invalid host {host!r}")
    if not _valid_key(key):
        raise ValueError(f"invalid Sec-WebSocket-Key {key!r}")
    if isinstance(subprotocols, str):
        raise TypeError("subprotocols must be a sequence of str, not a str")
    for protocol in subprotocols:
        if not TOKEN.fullmatch(protocol):
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
    _add_extra(headers, extra_headers, RESERVED_REQUEST_HEADERS)
    return http11.request_head("GET", path, headers)


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
    if comma_list(headers, "Upgrade") != ["websocket"]:
        raise HandshakeError(0, "missing Upgrade: websocket")
    if "upgrade" not in comma_list(headers, "Connection"):
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
