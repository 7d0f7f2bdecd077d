"""A WebSocket endpoint inside an :mod:`http.server` application, on the same port.

``upgrade(self)`` in a request handler's ``do_GET`` checks the upgrade
request with the same rules, limits and hooks as :func:`wsframe.serve`, answers
101 and returns the open :class:`~wsframe.sync.connection.WebSocket`; the
request's socket becomes the WebSocket's. When the WebSocket is released (the
end of ``with``), input nobody will read is drained and the socket shut down,
so closing it, as http.server does when ``do_GET`` returns, sends no reset
that could destroy the last frames.

TLS. When the server terminates TLS itself (its listening socket wrapped
with ``context.wrap_socket(..., server_side=True)``), the request's socket
is an ``ssl.SSLSocket`` whose TLS state lives inside it and cannot be moved
to the memory-BIO TLS of wsframe's transport. The WebSocket then runs on
one end of a socket pair, and one relay thread per connection carries the
bytes between the other end and the ``SSLSocket``: the same relay as the
WSGI integration's (the werkzeug server is an http.server too), in
:mod:`wsframe.integrations._handoff`. Bytes
read past the request head, in http.server's ``rfile`` buffer or already
decrypted inside the ``SSLSocket``, reach the WebSocket first. After the
closing handshake the relay sends TLS close_notify and a FIN, and the
socket is shut down: http.server can write nothing more on it.
"""

from __future__ import annotations

from typing import Any

from ..options import Options
from ..protocol import handshake as hs
from ..sync.connection import WebSocket
from ..sync.server import format_address
from ._handoff import negotiate, read_ahead, read_response, take_over

__all__ = ["upgrade"]


def upgrade(request_handler: Any, **options: Any) -> WebSocket:
    """Turn the current request of an ``http.server`` handler into a WebSocket.

    Call it from ``do_GET``; use the result as a context manager so the
    closing handshake happens before ``do_GET`` returns. The request is
    decided as :func:`wsframe.serve` decides: the RFC 6455 checks, then the
    ``process_upgrade`` and ``select_subprotocol`` hooks; permessage-deflate
    is negotiated the same way. A refused request (invalid, a refused Origin,
    the hook's ``Refuse``) gets its HTTP response and raises
    :class:`wsframe.HandshakeError` with that status (the body as its reason).
    ``options`` are :class:`wsframe.options.Options` fields (``subprotocols``,
    ``origins``, ``select_subprotocol``, ``process_upgrade``, ``compression``,
    ``max_message_size``, timeouts, ``backend``); keepalive and
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
    label = f"upgrade {format_address(request_handler.client_address)}"
    try:
        headers = hs.Headers(request_handler.headers.items())
    except ValueError:
        _answer(request_handler, hs.error_response(hs.HandshakeError(400, "invalid header")).serialize())
        raise hs.HandshakeError(400, "invalid header") from None
    request = hs.Request(request_handler.command, request_handler.path, request_handler.request_version, headers)
    conn, response = negotiate(request, opts, label)  # the same checks and hooks as serve()'s
    if conn is None:
        _answer(request_handler, response)
        raise _refusal(response)
    # Bytes http.server's rfile read past the head, before the relay: these bytes come first.
    leftover = read_ahead(getattr(request_handler, "rfile", None), sock) or b""
    # Released, the socket is drained and shut down (TLS: by the relay); http.server then closes it.
    return take_over(sock, conn, request, response, opts, request_handler.client_address, leftover, via="upgrade")


def _answer(request_handler: Any, response: bytes) -> None:
    """Best effort: the client may be gone already."""
    try:
        request_handler.wfile.write(response)
    except OSError:
        pass


#: Headers of the written response that describe its body, not the refusal: left out of the HandshakeError.
_FRAMING = frozenset({"content-type", "content-length", "connection"})


def _refusal(response: bytes) -> hs.HandshakeError:
    """What upgrade() raises for the refusal it answered: its status, its body as the reason, its own headers
    (``Allow``, a hook's ``WWW-Authenticate``)."""
    refused = read_response(response)
    reason = refused.body[:200].decode("utf-8", "replace").strip() or refused.reason
    return hs.HandshakeError(refused.status, reason, [(n, v) for n, v in refused.headers if n.lower() not in _FRAMING])
