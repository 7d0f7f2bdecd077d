"""The server side of the opening handshake over a blocking socket: TLS, the HTTP request, the answer.

:class:`ServerHandshake` reads the request through the connection's
transport, lets the hooks decide (``process_request`` for plain HTTP,
``process_upgrade`` and ``select_subprotocol`` for upgrades), answers
refusals, and on success hands the connection its open sans-I/O core. It is
bounded by ``open_timeout`` (the connection's timer shuts the socket down,
which ends any read here).
"""

from __future__ import annotations

import logging
import ssl
from typing import Tuple

from ..hooks import decide_upgrade, plain_http_response
from ..options import Options, Refuse
from ..protocol import handshake as hs
from ..protocol.connection import ServerConnection
from ..protocol.events import Request
from .connection import WebSocket

__all__ = ["ServerHandshake", "new_server_connection", "negotiate_upgrade"]

logger = logging.getLogger("wsframe.server")


def new_server_connection(options: Options) -> ServerConnection:
    """The sans-I/O core for one server connection, with these options."""
    return ServerConnection(
        origins=options.origins,
        subprotocols=options.subprotocols,
        max_request_line=options.max_request_line,
        max_request_headers=options.max_request_headers,
        max_request_size=options.max_request_size,
        max_message_size=options.max_message_size,
        max_fragments=options.max_fragments,
        backend=options.backend,
        extensions=options.server_extensions(),
    )


def negotiate_upgrade(
    conn: ServerConnection, request: hs.Request, options: Options, label: str, rest: bytes = b""
) -> Tuple[bool, bytes]:
    """Decide on a parsed upgrade request: the core's RFC 6455 checks, then the hooks.

    ``(True, response)``: the 101 to send, and ``conn`` is open. ``(False, response)``:
    the refusal to send (the core's 400/403/405/426, the hook's ``Refuse``, or a 500
    for a hook that chose what cannot be accepted). ``rest``: bytes that came after the head.
    For every driver: the threaded server, ``http.server`` upgrade(), the WSGI integration.
    """
    conn.receive_request(request)  # the RFC 6455 checks, in the core
    if rest:  # frames that came with the request
        conn.receive_data(rest)
    for event in conn.events():
        if type(event) is not Request:
            logger.info("%s upgrade refused: %s", label, event)
            return False, conn.data_to_send()
        break
    decision = decide_upgrade(label, request, options)
    if isinstance(decision, Refuse):
        return False, conn.reject(decision.status, decision.body, decision.headers)
    subprotocol, headers = decision
    try:
        return True, conn.accept(subprotocol, headers)
    except ValueError as exc:  # a hook chose a subprotocol not offered, or a reserved header
        logger.error("%s cannot accept the upgrade: %s", label, exc)
        return False, conn.reject(500, "500 Internal Server Error\n")


class ServerHandshake:
    """Runs the opening handshake of one server-side :class:`WebSocket` (in its thread, read lock held)."""

    __slots__ = ("ws", "options")

    def __init__(self, ws: WebSocket, options: Options) -> None:
        self.ws = ws
        self.options = options

    def run(self) -> bool:
        """Read the request and answer it; True when the WebSocket is open."""
        ws, options = self.ws, self.options
        with ws._lock:
            ws.timers.start_open_locked()
        try:
            if options.ssl is not None and not ws.transport.start_tls(options.ssl, server_side=True):
                return False
            head = hs.HeadReader(options.max_request_line, options.max_request_headers, options.max_request_size)
            try:
                while not head.feed(self._next_chunk()):
                    pass
                request = hs.parse_request(head)
            except EOFError:
                return False
            except hs.HandshakeError as exc:
                logger.info("%s bad request: %s", ws.id, exc)
                self._respond(hs.error_response(exc).serialize())
                return False
            ws.request = request
            if not request.wants_websocket:
                self._respond(plain_http_response(ws.id, request, options))
                return False
            return self._upgrade(request, head.rest)
        except (ssl.SSLError, ConnectionError) as exc:
            logger.info("%s opening handshake failed: %s", ws.id, exc)
            return False

    def _next_chunk(self) -> bytes:
        chunk = self.ws.transport.read_plain()
        if not chunk:
            raise EOFError
        return chunk

    def _upgrade(self, request: hs.Request, rest: bytes) -> bool:
        ws = self.ws
        conn = new_server_connection(self.options)
        accepted, response = negotiate_upgrade(conn, request, self.options, ws.id, rest)
        if not accepted:
            self._respond(response)
            return False
        with ws._lock:
            if ws.transport.dead:  # timed out meanwhile
                return False
            ws.opened_locked(conn, response)
        return True

    def _respond(self, data: bytes) -> None:
        with self.ws._lock:
            self.ws.respond_and_end_locked(data)
