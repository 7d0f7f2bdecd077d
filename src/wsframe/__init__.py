"""wsframe: RFC 6455 WebSockets with a compiled framing hot path.

The framing functions below come from the active backend (:data:`BACKEND`):
compiled when the extension is built, pure Python otherwise or when
``WSFRAME_NO_EXTENSIONS=1`` is set at import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .protocol.backend import BACKEND, active as _active
from .protocol.connection import ClientConnection, Connection, ServerConnection, SharedMessage, State
from .protocol.deflate import ZLIB, Deflate
from .protocol.errors import ConnectionClosed, InvalidState, ProtocolError, WebSocketError
from .protocol.events import (
    Accepted,
    BinaryMessage,
    CloseReceived,
    Closed,
    Fragment,
    Ping,
    Pong,
    Rejected,
    Request,
    TextMessage,
)
from .protocol.handshake import HandshakeError

__version__ = "0.1.0"

Frame = _active.Frame
Header = _active.Header
FrameReader = _active.FrameReader
parse_header = _active.parse_header
encode_frame = _active.encode_frame
encode_frame_into = _active.encode_frame_into
frame_size = _active.frame_size
mask = _active.mask
mask_inplace = _active.mask_inplace
Utf8Validator = _active.Utf8Validator
validate_utf8 = _active.validate_utf8

# The threaded server is imported on first use: sans-I/O users never load
# socketserver, ssl or selectors.
_SERVER_NAMES = ("EventHandler", "Server", "WebSocket", "serve")
_CLIENT_NAMES = ("connect", "InvalidURI", "InvalidStatus", "InvalidHandshake", "ProxyError")


if TYPE_CHECKING:
    from .integrations.http_server import upgrade
    from .options import Accept, Options, Refuse
    from .sync.connection import WebSocket
    from .sync.client import InvalidHandshake, InvalidStatus, InvalidURI, ProxyError, connect
    from .sync.server import EventHandler, Server, serve


def __getattr__(name: str) -> Any:  # PEP 562
    if name in _SERVER_NAMES:
        from .sync import server

        return getattr(server, name)
    if name == "upgrade":
        from .integrations import http_server

        return http_server.upgrade
    if name in _CLIENT_NAMES:
        from .sync import client

        return getattr(client, name)
    if name in ("Options", "Accept", "Refuse"):
        from . import options

        return getattr(options, name)
    raise AttributeError(f"module 'wsframe' has no attribute {name!r}")


__all__ = [
    "connect",
    "Deflate",
    "SharedMessage",
    "InvalidHandshake",
    "InvalidStatus",
    "InvalidURI",
    "ProxyError",
    "Accept",
    "Options",
    "Refuse",
    "EventHandler",
    "Server",
    "WebSocket",
    "serve",
    "upgrade",
    "BACKEND",
    "ZLIB",
    "Accepted",
    "BinaryMessage",
    "ClientConnection",
    "CloseReceived",
    "Closed",
    "Connection",
    "Fragment",
    "HandshakeError",
    "Ping",
    "Pong",
    "Rejected",
    "Request",
    "ServerConnection",
    "State",
    "TextMessage",
    "ConnectionClosed",
    "Frame",
    "FrameReader",
    "Header",
    "InvalidState",
    "ProtocolError",
    "Utf8Validator",
    "WebSocketError",
    "encode_frame",
    "encode_frame_into",
    "frame_size",
    "mask",
    "mask_inplace",
    "parse_header",
    "validate_utf8",
]
