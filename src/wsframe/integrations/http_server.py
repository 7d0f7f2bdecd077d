"""A WebSocket endpoint inside an :mod:`http.server` application, on the same port.

``upgrade(self)`` in a request handler's ``do_GET`` checks the upgrade
request with the same rules and limits as :func:`wsframe.serve`, answers
101 and returns the open :class:`~wsframe.sync.connection.WebSocket`; the
request's socket becomes the WebSocket's, and http.server closes it when
``do_GET`` returns.
"""

from __future__ import annotations

import logging
import socket
import ssl
from typing import Any

from ..options import Options
from ..protocol import handshake as hs
from ..protocol.events import Rejected
from ..sync.connection import WebSocket
from ..sync.maintenance import shared
from ..sync.opening import new_server_connection
from ..sync.server import format_address

__all__ = ["upgrade"]

logger = logging.getLogger("wsframe.server")


def upgrade(request_handler: Any, **options: Any) -> WebSocket:
    """Turn the current request of an ``http.server`` handler into a WebSocket.

    Call it from ``do_GET``; use the result as a context manager so the
    closing handshake happens before ``do_GET`` returns. An invalid request
    gets its HTTP error response and raises :class:`wsframe.HandshakeError`.
    ``options`` are :class:`wsframe.options.Options` fields (``subprotocols``,
    ``origins``, ``max_message_size``, timeouts, ``backend``); keepalive and
    buffered writes use one shared maintenance thread. A TLS socket
    (``SSLSocket``) is not supported: terminate TLS in front.

    A runnable example (``python example.py``, then open ws://127.0.0.1:8000/ws)::

        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from wsframe import upgrade

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path == "/ws":
                    with upgrade(self) as ws:
                        for message in ws:
                            ws.send(message)
                    return
                body = b"plain HTTP on the same port\\n"
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        ThreadingHTTPServer(("127.0.0.1", 8000), Handler).serve_forever()
    """
    opts = Options.of(options)
    sock = request_handler.connection
    if isinstance(sock, ssl.SSLSocket):
        raise NotImplementedError("upgrade() cannot take over a TLS socket; terminate TLS in front, or use serve(ssl=...)")
    request_handler.close_connection = True
    conn = new_server_connection(opts)
    try:
        headers = hs.Headers(request_handler.headers.items())
    except ValueError:
        _answer(request_handler, hs.error_response(hs.HandshakeError(400, "invalid header")).serialize())
        raise hs.HandshakeError(400, "invalid header") from None
    request = hs.Request(request_handler.command, request_handler.path, request_handler.request_version, headers)
    conn.receive_request(request)  # the same checks as serve()'s, in the core
    for event in conn.events():
        if isinstance(event, Rejected):
            _answer(request_handler, conn.data_to_send())
            raise hs.HandshakeError(event.status, event.reason)
        break  # the Request event
    response = conn.accept()
    leftover = _buffered_input(request_handler)
    sock.settimeout(None)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    ws = WebSocket(sock, opts, shared(), request_handler.client_address, owns_socket=False,
                   release_on_close=True)
    ws.request = request
    with ws._lock:
        ws.opened_locked(conn, response)
    if leftover:
        with ws._lock:
            conn.receive_data(leftover)
    logger.info("%s open %s from %s (upgrade)", ws.id, request.target, format_address(request_handler.client_address))
    return ws


def _answer(request_handler: Any, response: bytes) -> None:
    """Best effort: the client may be gone already."""
    try:
        request_handler.wfile.write(response)
    except OSError:
        pass


def _buffered_input(request_handler: Any) -> bytes:
    """Bytes http.server's buffered rfile read past the request head (early WebSocket frames)."""
    rfile = getattr(request_handler, "rfile", None)
    sock = request_handler.connection
    if rfile is None or not hasattr(rfile, "read1"):
        return b""
    timeout = sock.gettimeout()
    try:
        sock.setblocking(False)
        data = rfile.read1(65536)
    except (OSError, ValueError):
        data = b""
    finally:
        sock.settimeout(timeout)
    return data or b""
