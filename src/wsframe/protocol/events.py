"""What a connection reports: one immutable value per event, in arrival order."""

from __future__ import annotations

from typing import NamedTuple, Tuple, Union

from .handshake import Request as HTTPRequest
from .handshake import Response as HTTPResponse

__all__ = [
    "Request", "Accepted", "Rejected",
    "TextMessage", "BinaryMessage", "Fragment", "Ping", "Pong",
    "CloseReceived", "Closed", "Event",
]


class Request(NamedTuple):
    """Server side: a valid upgrade request arrived; answer with ``accept()`` or ``reject()``."""

    request: HTTPRequest


class Accepted(NamedTuple):
    """Client side: the server accepted the handshake; the connection is open."""

    subprotocol: "str | None"
    response: HTTPResponse


class Rejected(NamedTuple):
    """The handshake failed: ``status`` is the HTTP status (0 when the client found the response invalid).

    On the server side the error response is already in ``data_to_send()``.
    :class:`Closed` (1006, the same reason) follows: it is always the last event.
    """

    status: int
    reason: str


class TextMessage(NamedTuple):
    """A complete text message, decoded (its UTF-8 was validated as it arrived)."""

    data: str


class BinaryMessage(NamedTuple):
    """A complete binary message."""

    data: bytes


class Fragment(NamedTuple):
    """Streaming mode: one frame's worth of a message as it arrives.

    ``data`` is str for text messages (decoded safely across frame boundaries),
    bytes for binary ones. ``first`` and ``last`` delimit the message.
    """

    data: "str | bytes"
    first: bool
    last: bool


class Ping(NamedTuple):
    """A ping; with ``auto_pong`` (the default) the pong is already queued."""

    payload: bytes


class Pong(NamedTuple):
    """A pong (solicited or not)."""

    payload: bytes


class CloseReceived(NamedTuple):
    """The peer sent a close frame: 1005 when it carried no code. The reply is queued."""

    code: int
    reason: str


class Closed(NamedTuple):
    """The connection is over; the last event, whichever way it ended. ``code`` is the WebSocket close code:

    the peer's code after a closing handshake, ours (1002, 1007, 1009 ...) when
    we failed the connection, 1006 when the transport ended without a close or
    the handshake was refused (after :class:`Rejected`, or ``reject()``).
    """

    code: int
    reason: str


def _event_eq(self: Tuple[object, ...], other: object) -> bool:
    # Events are tuples, but two events are equal only if they are the same kind:
    # without this, Ping(b"x") == Pong(b"x") and Closed(1000, "") == CloseReceived(1000, "").
    return type(self) is type(other) and tuple.__eq__(self, other)


def _event_ne(self: Tuple[object, ...], other: object) -> bool:
    return not _event_eq(self, other)


for _cls in (Request, Accepted, Rejected, TextMessage, BinaryMessage, Fragment, Ping, Pong, CloseReceived, Closed):
    # NamedTuple methods are read-only to mypy; replacing them on the class is the point here.
    _cls.__eq__ = _event_eq  # type: ignore[method-assign]
    _cls.__ne__ = _event_ne  # type: ignore[method-assign, assignment]  # typeshed types object.__ne__'s self as object
    _cls.__hash__ = tuple.__hash__  # type: ignore[method-assign]
del _cls


Event = Union[
    Request, Accepted, Rejected, TextMessage, BinaryMessage, Fragment,
    Ping, Pong, CloseReceived, Closed,
]
