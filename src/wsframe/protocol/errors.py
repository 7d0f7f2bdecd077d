"""Exceptions shared by every layer and both backends."""

from __future__ import annotations

__all__ = ["WebSocketError", "ProtocolError", "ConnectionClosed", "InvalidState"]


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
            and self.code == other.code  # type: ignore[attr-defined]
            and self.reason == other.reason  # type: ignore[attr-defined]
        )

    __hash__ = Exception.__hash__


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
