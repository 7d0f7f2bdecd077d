"""A WebSocket endpoint inside an :mod:`http.server` application, on the same port.

``upgrade(self)`` in a request handler's ``do_GET`` checks the upgrade
request with the same rules and limits as :func:`wsframe.serve`, answers
101 and returns the open :class:`~wsframe.sync.connection.WebSocket`; the
request's socket becomes the WebSocket's, and http.server closes it when
``do_GET`` returns.

TLS. When the server terminates TLS itself (its listening socket wrapped
with ``context.wrap_socket(..., server_side=True)``), the request's socket
is an ``ssl.SSLSocket`` whose TLS state lives inside it and cannot be moved
to the memory-BIO TLS of wsframe's transport. The WebSocket then runs on
one end of a socket pair, and one relay thread per connection carries the
bytes between the other end and the ``SSLSocket``: the same relay as the
WSGI integration's (the werkzeug server is an http.server too). Bytes
read past the request head, in http.server's ``rfile`` buffer or already
decrypted inside the ``SSLSocket``, reach the WebSocket first. After the
closing handshake the relay sends TLS close_notify and a FIN, and the
socket is shut down: http.server can write nothing more on it.
"""

from __future__ import annotations

import logging
import socket
import ssl
from typing import Any, Optional

from ..options import Options
from ..protocol import handshake as hs
from ..protocol.events import Rejected
from ..sync.connection import WebSocket
from ..sync.maintenance import shared
from ..sync.opening import new_server_connection
from ..sync.server import format_address
from .wsgi import _HandedOver, _Handoff, _TLSRelay  # the TLS relay, shared with the WSGI integration

__all__ = ["upgrade"]

logger = logging.getLogger("wsframe.server")


def upgrade(request_handler: Any, **options: Any) -> WebSocket:
    """Turn the current request of an ``http.server`` handler into a WebSocket.

    Call it from ``do_GET``; use the result as a context manager so the
    closing handshake happens before ``do_GET`` returns. An invalid request
    gets its HTTP error response and raises :class:`wsframe.HandshakeError`.
    ``options`` are :class:`wsframe.options.Options` fields (``subprotocols``,
    ``origins``, ``max_message_size``, timeouts, ``backend``); keepalive and
    buffered writes use one shared maintenance thread. On a TLS socket
    (``SSLSocket``: the server's socket wrapped by an ``SSLContext``) the
    WebSocket is the same, its bytes carried by one relay thread per
    connection (see the module's docstring).

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
    leftover = _buffered_input(request_handler)  # before the relay: these bytes come first
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    relay: Optional[_TLSRelay] = None
    ws: WebSocket
    if isinstance(sock, ssl.SSLSocket):
        # All TLS calls in the relay's thread; the WebSocket owns its end of the pair. When the
        # WebSocket is released the relay flushes and stops, and the SSLSocket is shut down.
        relay = _TLSRelay(sock)
        tls_ws = _HandedOver(relay.inner, opts, shared(), request_handler.client_address, owns_socket=True,
                             release_on_close=True)
        tls_ws._handoff = _Handoff(sock, relay, opts.close_timeout or 10.0)
        ws = tls_ws
    else:
        sock.settimeout(None)
        ws = WebSocket(sock, opts, shared(), request_handler.client_address, owns_socket=False,
                       release_on_close=True)
    ws.request = request
    with ws._lock:
        ws.opened_locked(conn, response)
        if leftover:  # frames that came with the request, read ahead by http.server
            conn.receive_data(leftover)
    if relay is not None:
        relay.start(ws.id)
    logger.info("%s open %s from %s (upgrade%s)", ws.id, request.target,
                format_address(request_handler.client_address), ", TLS relay" if relay is not None else "")
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
