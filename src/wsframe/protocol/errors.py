"""Exceptions shared by every layer and both backends."""

from __future__ import annotations

from typing import Iterable, List, Tuple

__all__ = ["WebSocketError", "ProtocolError", "HandshakeError", "ConnectionClosed", "InvalidState"]


class WebSocketError(Exception):
    """Base class of every error wsframe raises on purpose."""


class ProtocolError(WebSocketError):
    """The peer broke RFC 6455; ``code`` is the close code to fail the connection with.

    1002 for a protocol violation, 1007 for invalid payload data (bad UTF-8),
    1009 for a frame or message over the configured limit.
    """

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.reason} (close code {self.code})"

    def __eq__(self, other: object) -> bool:
        return (
            type(other) is type(self)
            and self.code == other.code
            and self.reason == other.reason
        )

    def __hash__(self) -> int:
        return hash((type(self), self.code, self.reason))


class HandshakeError(WebSocketError):
    """Why an opening handshake failed. Server side: carries the HTTP response to send.

    ``status`` is the HTTP status to answer with (400, 403, 405, 426, 431 ...).
    Client-side failures use 0, or the non-101 status the server answered with.
    ``reason`` is short and doubles as the response body; ``headers`` are extra
    response headers (``Allow`` for 405, ``Sec-WebSocket-Version`` for 426).
    """

    def __init__(self, status: int, reason: str, headers: Iterable[Tuple[str, str]] = ()) -> None:
        super().__init__(status, reason)
        self.status = status
        self.reason = reason
        self.headers: List[Tuple[str, str]] = list(headers)

    def __str__(self) -> str:
        return f"{self.status} {self.reason}" if self.status else self.reason


class InvalidState(WebSocketError):
    """An operation is not allowed in the connection's current state (e.g. send after close)."""


class ConnectionClosed(WebSocketError):
    """The connection is closed; ``code`` and ``reason`` say how it ended."""

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason

    def __str__(self) -> str:
        return f"connection closed: {self.code} {self.reason}".rstrip()
