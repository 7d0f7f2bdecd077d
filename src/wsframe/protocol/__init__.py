"""The sans-I/O layer: bytes in, events out; method calls in, bytes out. No sockets, no threads, no clocks.

Modules, bottom up: ``constants`` (opcodes, close codes), ``errors``,
``frames`` (RFC 6455 section 5, one typed source for both backends) over the
per-byte ``kernels`` (``kernels_c`` compiled, ``kernels_py`` its pure twin),
``backend`` (which of the two is active), ``http11`` (the HTTP/1.1 heads the
handshake travels in), ``handshake`` (section 4), ``events`` and
``connection`` (the state machine of both roles: ``TRANSITIONS``).
"""

from .backend import BACKEND
from .connection import ClientConnection, Connection, ServerConnection, State
from .errors import ConnectionClosed, InvalidState, ProtocolError, WebSocketError
from .events import (
    Accepted,
    BinaryMessage,
    CloseReceived,
    Closed,
    Event,
    Fragment,
    Ping,
    Pong,
    Rejected,
    Request,
    TextMessage,
)
from .handshake import HandshakeError

__all__ = [
    "BACKEND", "ClientConnection", "Connection", "ServerConnection", "State",
    "ConnectionClosed", "InvalidState", "ProtocolError", "WebSocketError", "HandshakeError",
    "Accepted", "BinaryMessage", "CloseReceived", "Closed", "Event", "Fragment", "Ping", "Pong",
    "Rejected", "Request", "TextMessage",
]
