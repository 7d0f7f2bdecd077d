"""Sans-I/O HTTP/1.1 message heads (RFC 7230): what the opening handshake is carried in.

Nothing here knows about WebSocket: headers, request and response heads, an
incremental :class:`HeadReader` with size limits, parsing and serialisation.
The RFC 6455 rules on top of them are in :mod:`handshake`.

Errors carry the HTTP status to answer with: :class:`HandshakeError` with 400
for a malformed head, 431 for one over the limits (0 on the client side).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from http import HTTPStatus
from typing import Iterable, Iterator, Union

from .errors import HandshakeError

__all__ = [
    "Headers", "Request", "Response", "HeadReader", "parse_request", "parse_response",
    "comma_list", "http_version", "is_host", "request_head", "text_response",
    "DEFAULT_MAX_LINE", "DEFAULT_MAX_HEADERS", "DEFAULT_MAX_SIZE",
]

#: Default limits of a head: bytes per line, header fields, bytes in all (as most servers).
DEFAULT_MAX_LINE = 8190
DEFAULT_MAX_HEADERS = 128
DEFAULT_MAX_SIZE = 65536

_TCHARS = r"!#$%&'*+\-.^_`|~0-9A-Za-z"  # RFC 7230 section 3.2.6
#: A token (RFC 7230 3.2.6): header names, methods, and the handshake's subprotocols and extensions.
TOKEN = re.compile(f"[{_TCHARS}]+")
#: A quoted-string (RFC 7230 3.2.6); group 1 is its content, escapes not yet removed.
QUOTED_STRING = re.compile(r'"((?:[^"\\\x00-\x08\x0a-\x1f\x7f]|\\[\t\x20-\x7e\x80-\xff])*)"')
#: Optional whitespace (RFC 7230 3.2.3).
OWS = re.compile(r"[ \t]*")

_TOKEN_B = re.compile(f"[{_TCHARS}]+".encode())
_BAD_VALUE = re.compile(r"[^\t\x20-\x7e\x80-\xff]")  # CTLs (but HTAB) and non-latin-1
_BAD_VALUE_B = re.compile(rb"[^\t\x20-\x7e\x80-\xff]")
_VISIBLE = re.compile(r"[\x21-\x7e]+")
_TARGET = re.compile(r"[\x21\x22\x24-\x7e]+")  # visible ASCII except '#': no fragments
_ABSOLUTE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")
_VERSION = re.compile(r"HTTP/([0-9])\.([0-9])")
_STATUS_LINE = re.compile(r"HTTP/[0-9]\.[0-9] ([0-9]{3})(?: (.*))?")
_CR = 0x0D


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
        if not isinstance(name, str) or not TOKEN.fullmatch(name):
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


def comma_list(headers: Headers, name: str) -> list[str]:
    """Lower-cased elements of every comma-separated ``name`` field (RFC 7230 #rule)."""
    return [t.strip(" \t").lower() for v in headers.get_all(name) for t in v.split(",") if t.strip(" \t")]


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
    """An HTTP request head."""

    method: str
    target: str
    version: str
    headers: Headers

    @property
    def path(self) -> str:
        """Target path without the query ("/" for an absolute-form target without one)."""
        return _split_target(self.target)[0]

    @property
    def query(self) -> str:
        """Query string without the '?', or ''."""
        return _split_target(self.target)[1]

    @property
    def host(self) -> str | None:
        """First Host header, or None."""
        return self.headers.get("Host")


@dataclass(frozen=True)
class Response:
    """An HTTP response: head, and the body of a non-101 answer."""

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


def text_response(status: int, body: Union[str, bytes] = b"", headers: Iterable[tuple[str, str]] = ()) -> Response:
    """A response with the standard reason phrase for ``status`` and ``body`` (str is sent as UTF-8)."""
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Unknown"
    if isinstance(body, str):
        body = body.encode("utf-8")
    return Response(status, reason, Headers(headers), bytes(body))


def request_head(method: str, target: str, headers: Headers) -> bytes:
    """Bytes of an HTTP/1.1 request head; ValueError for a target that is not origin-form."""
    if not TOKEN.fullmatch(method):
        raise ValueError(f"invalid method {method!r}")
    if not target.startswith("/") or not _TARGET.fullmatch(target):
        raise ValueError(f"invalid path {target!r}")
    return _serialize_head(f"{method} {target} HTTP/1.1", headers)


def is_host(value: str) -> bool:
    """True for a Host value that can go on the wire as is: visible ASCII, no spaces."""
    return bool(_VISIBLE.fullmatch(value))


class HeadReader:
    """Incremental reader of one HTTP head (request or response) from arbitrary chunks.

    Lines end in CRLF; a bare LF is tolerated, as most servers do. Empty lines
    before the start line are skipped (RFC 7230 section 3.5). Each byte is
    scanned once, and at most ``max_size`` bytes of head are ever buffered:
    431 beyond a limit, 400 for a malformed line (as :class:`HandshakeError`),
    the first in byte order, whatever the reads the head came in.
    """

    def __init__(
        self, max_line: int = DEFAULT_MAX_LINE, max_headers: int = DEFAULT_MAX_HEADERS, max_size: int = DEFAULT_MAX_SIZE
    ) -> None:
        if min(max_line, max_headers, max_size) < 0:
            raise ValueError(f"negative head limit: {max_line}, {max_headers}, {max_size}")
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
        """Consume ``data``; True once the head is complete. Later bytes go to ``rest``.

        The verdict depends on the bytes only, never on how they are split into
        reads: each limit is judged at the byte that crosses it (:meth:`_check_limits`)
        and a line's content when its LF arrives, so the first refusal in the stream wins.
        """
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
                self._check_limits(data[start:start + budget], ended=False)
                self._partial += data[start:]  # shorter than budget, or _check_limits raised
                return False
            piece = data[start:end]
            self._check_limits(piece, ended=True)
            line = bytes(self._partial) + piece
            self._partial.clear()
            self._size += len(line) + 1
            start = end + 1
            if self._take_line(line[:-1] if line.endswith(b"\r") else line):
                self.complete = True
                self._rest += data[start:]
                return True

    def _check_limits(self, piece: bytes, ended: bool) -> None:
        """Raise 431 if the current line (``_partial`` + ``piece``, then LF if ``ended``) crosses a limit.

        The line is too long at its first byte past ``max_line`` that is not the CR
        of its CR LF; the head is too large at its byte number ``max_size + 1``. The
        one crossed first is reported, the head size when both are at the same byte,
        so that the reason cannot depend on where a read ends (docs/fuzzing.md F4).
        """
        held = len(self._partial)
        length = held + len(piece)  # bytes of the line before its LF, as far as known
        too_long_at: int | None = None  # offset in the line of the byte that makes it too long
        if length > self.max_line:
            first_over = self._partial[self.max_line] if held > self.max_line else piece[self.max_line - held]
            if first_over != _CR:
                too_long_at = self.max_line
            elif length > self.max_line + 1:  # that CR is not followed by LF
                too_long_at = self.max_line + 1
        too_large_at = self.max_size - self._size  # offset in the line of head byte max_size + 1
        if too_large_at < length + int(ended) and (too_long_at is None or too_large_at <= too_long_at):
            raise HandshakeError(431, "request head too large")
        if too_long_at is not None:
            raise HandshakeError(431, "header line too long")

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


def http_version(version: str) -> tuple[int, int] | None:
    """(major, minor) of an "HTTP/x.y" string, or None when it is not one."""
    m = _VERSION.fullmatch(version)
    return (int(m[1]), int(m[2])) if m else None


def parse_request(reader: HeadReader) -> Request:
    """Request head from a completed reader; HandshakeError(400) for a malformed request line."""
    _require_complete(reader)
    parts = reader.start_line.split(" ")
    if len(parts) != 3:
        raise HandshakeError(400, "malformed request line")
    method, target, version = parts
    if not TOKEN.fullmatch(method):
        raise HandshakeError(400, "invalid method")
    if not _TARGET.fullmatch(target) or not (target.startswith("/") or _ABSOLUTE.match(target)):
        raise HandshakeError(400, "invalid request target")
    if http_version(version) is None:
        raise HandshakeError(400, "malformed HTTP version")
    return Request(method, target, version, reader.headers)


def parse_response(reader: HeadReader) -> Response:
    """Response head from a completed reader; HandshakeError(0) for a malformed status line.

    The body of a non-101 response is not read: whatever followed the head is
    left in ``reader.rest``.
    """
    _require_complete(reader)
    m = _STATUS_LINE.fullmatch(reader.start_line)
    if not m or not 100 <= int(m[1]) <= 599:  # RFC 9110 section 15: other codes are not statuses
        raise HandshakeError(0, "malformed status line")
    return Response(int(m[1]), m[2] or "", reader.headers)
