"""The server side of the opening handshake over a connection's socket: TLS, then HTTP.

A mixin of :class:`~wsframe._websocket.WebSocket` (which declares the shared
``__slots__``): reads the HTTP request through the transport, answers plain
HTTP requests and refusals, and on success hands the WebSocket its open
:class:`~wsframe.connection.Connection`. Bounded by ``handshake_timeout``.
"""

from __future__ import annotations

import logging
import ssl
from time import monotonic
from typing import List

from ..protocol import handshake as hs
from ..options import Config
from .maintenance import Maintenance
from ..protocol.connection import Connection, ServerConnection
from ..protocol.events import Request

__all__: List[str] = []

logger = logging.getLogger("wsframe.server")


class _Opening:
    """From the accepted socket to an open WebSocket: :meth:`_server_handshake`, or :meth:`_adopt`."""

    __slots__ = ()

    def _handshake_timed_out(self) -> None:
        with self._lock:
            self._hs_timer = None
            if self._conn is None and not self._dead:
                logger.info("%s handshake timed out", self.id)
                self._abort_locked(1006, "handshake timed out")

    def _read_chunk(self) -> bytes:
        """Handshake phase: the next plaintext bytes (b"" at EOF)."""
        while True:
            if self._tls is not None:
                chunks: List[bytes] = []
                with self._lock:
                    self._tls_pull_locked(chunks.append)
                if chunks:
                    return b"".join(chunks)
            n = self._read(None)
            if n < 0:
                continue
            if n == 0:
                return b""
            if self._tls is None:
                return bytes(self._rview[:n])  # type: ignore[index]
            self._tls_in.write(self._rview[:n])  # type: ignore[union-attr,index]

    def _respond(self, data: bytes) -> None:
        """Send an HTTP response (not an upgrade) and end the connection after it."""
        with self._lock:
            self._write_locked(data)
            self._shut_after_flush = True
            if not self._out:
                self._shutdown_write_locked()

    def _server_handshake(self) -> bool:
        """Read the request and answer it; True when the WebSocket is open.

        Not an upgrade: ``process_request`` answers it (default 426). An invalid
        upgrade gets its 4xx from the core. Bounded by ``handshake_timeout``
        (the timer shuts the socket down, which ends any read here).
        """
        cfg = self._cfg
        if cfg.handshake_timeout is not None:
            with self._lock:
                self._hs_timer = self._maint.call_later(cfg.handshake_timeout, self._handshake_timed_out)
        try:
            if cfg.ssl_context is not None and not self._tls_handshake(cfg.ssl_context):
                return False
            head = hs.HeadReader(cfg.max_request_line, cfg.max_request_headers, cfg.max_request_size)
            while True:
                chunk = self._read_chunk()
                if not chunk:
                    return False
                try:
                    if head.feed(chunk):
                        break
                    continue
                except hs.HandshakeError as exc:
                    self._refuse(exc)
                    return False
            try:
                request = hs.parse_request(head)
            except hs.HandshakeError as exc:
                self._refuse(exc)
                return False
            self.request = request
            if not request.wants_websocket:
                self._respond(self._http_response(request))
                return False
            conn = new_server_connection(cfg)
            conn.receive_request(request)
            rest = head.rest
            if rest:  # frames that came with the request
                conn.receive_data(rest)
            for event in conn.events():
                if type(event) is Request:
                    break
                logger.info("%s handshake refused: %s", self.id, event)
                self._respond(conn.data_to_send())
                return False
            else:  # pragma: no cover - a complete head always makes an event
                return False
            with self._lock:
                if self._dead:  # timed out meanwhile
                    return False
                Maintenance.cancel(self._hs_timer)
                self._hs_timer = None
                self._write_locked(conn.accept())
                self._conn = conn
                self._last_rx = monotonic()
                self._start_keepalive_locked()
                self._process_locked()  # frames that came with the request
            return True
        except (ssl.SSLError, ConnectionError) as exc:
            logger.info("%s handshake failed: %s", self.id, exc)
            return False

    def _refuse(self, exc: hs.HandshakeError) -> None:
        logger.info("%s bad request: %s", self.id, exc)
        self._respond(hs.error_response(exc).serialize())

    def _http_response(self, request: hs.Request) -> bytes:
        """The answer to a plain HTTP request: the ``process_request`` hook's, or 426."""
        hook = self._cfg.process_request
        try:
            result = None if hook is None else hook(request)
            if result is None:
                response = hs.reject(
                    426, "426 Upgrade Required: this is a WebSocket endpoint\n",
                    [("Upgrade", "websocket"), ("Sec-WebSocket-Version", "13")],
                )
            else:
                status, headers, body = result
                if isinstance(headers, dict):
                    headers = list(headers.items())
                if not isinstance(body, (str, bytes, bytearray, memoryview)):
                    raise TypeError(f"process_request returned a {type(body).__name__} body")
                response = hs.reject(status, body, headers)
        except Exception:  # a broken hook still gets the client an answer
            logger.exception("%s process_request failed", self.id)
            response = hs.reject(500, "500 Internal Server Error\n")
        logger.info("%s %s %s -> %d", self.id, request.method, request.target, response.status)
        data = response.serialize()
        if request.method == "HEAD" and response.body:
            data = data[: -len(response.body)]
        return data

    def _adopt(self, conn: Connection, response: bytes, leftover: bytes) -> None:
        """Open over a socket whose HTTP request someone else read (``upgrade()``)."""
        self._owns_fd = False
        self.request = conn.request
        with self._lock:
            self._write_locked(response)
            self._conn = conn
            self._last_rx = monotonic()
            self._start_keepalive_locked()
            if leftover:
                conn.receive_data(leftover)
                self._process_locked()


def new_server_connection(cfg: Config) -> ServerConnection:
    """The sans-I/O core for one server connection, with the server's options."""
    return ServerConnection(
        origins=cfg.origins,
        subprotocols=cfg.subprotocols,
        max_request_line=cfg.max_request_line,
        max_request_headers=cfg.max_request_headers,
        max_request_size=cfg.max_request_size,
        max_message_size=cfg.max_message_size,
        backend=cfg.backend,
    )
