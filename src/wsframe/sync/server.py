"""A threaded WebSocket server on :mod:`socketserver`: one thread per connection, and no more.

Quick start::

    from wsframe import serve

    def echo(ws):
        for message in ws:          # str for text, bytes for binary
            ws.send(message)

    with serve(echo, "127.0.0.1", 8080) as server:
        server.serve_forever()      # Ctrl-C or server.shutdown() from another thread stops it

How it runs:

* ``socketserver.ThreadingMixIn`` + ``TCPServer``: each accepted connection
  gets one non-daemon thread with a small stack (``thread_stack_size``,
  512 KiB of address space; only touched pages cost memory), which does the
  handshake and runs ``handler(ws)``. That same thread reads the socket
  whenever the handler calls ``ws.recv()``, into one reusable buffer, and
  every complete frame of a read is parsed in one call. There is no reader
  thread and no keepalive thread per connection.
* One maintenance thread per server does all the waiting: handshake timeouts
  (slowloris), keepalive pings and pong deadlines, close-handshake timeouts,
  and flushing outgoing buffers of sockets that were full while their handler
  was busy elsewhere.
* ``ws.send()`` works from any thread and never interleaves frames. Each
  connection has a bounded outgoing buffer: a ``send()`` that takes it over
  ``write_limit`` writes the backlog itself until it is back under the limit
  (backpressure), and drops the client with 1008 after ``send_timeout``; a
  handler waiting in ``recv()`` also writes its own backlog meanwhile.
  :meth:`Server.broadcast` encodes a message once and never blocks: a client
  already more than ``write_limit`` behind is dropped.
* Writes are batched: replies the handler sends while more received messages
  wait for it go out in one system call (see :meth:`WebSocket.send`;
  ``batch_writes=False`` turns it off). ``TCP_NODELAY`` is set.

Policies and close codes:

* handler raises: logged with the connection id, closed with **1011**; the server goes on.
* handler returns: the connection is closed with **1000** (if still open).
* :meth:`Server.shutdown`: every connection is closed with **1001**.
* message over ``max_message_size``: **1009** (the core's decision, before buffering).
* keepalive: a peer silent for ``ping_interval`` is pinged; if nothing at all
  arrives within ``ping_timeout`` it is closed with **1011** ("keepalive ping
  timeout"). Any received byte counts as life. If the handler is busy and not
  reading, the maintenance thread reads what arrived on its behalf (the
  messages wait for the handler), so a busy handler does not cause a false
  timeout; the trade-off is that up to one read buffer (256 KiB) per ping
  interval may be queued beyond TCP flow control for such a handler.
* slow consumer (broadcast over ``write_limit``, or ``send()`` blocked for
  ``send_timeout``): whole frames still queued are discarded, a close frame
  with **1008** ("slow consumer") follows, and TCP is cut after
  ``close_timeout``. Memory per connection stays under ``write_limit`` plus
  one message.
* over ``max_connections``: HTTP **503** (with ``Retry-After``) before any
  handshake, without spending a thread (over TLS the socket is just closed).
* a plain HTTP request (no ``Upgrade: websocket``): answered by the
  ``process_request`` hook, default **426 Upgrade Required**.

Logging goes to ``logging.getLogger("wsframe.server")``; every line about a
connection starts with its id (``ws-17``).
"""

from __future__ import annotations

import errno
import logging
import selectors
import socket
import socketserver
import ssl
import threading
import time
from time import monotonic
from typing import Any, Callable, Iterable, Optional, Set, Tuple, Union

from ..protocol import backend as _backend
from ..protocol import handshake as hs
from .maintenance import Maintenance, shared
from .connection import CLOSE_SLOW_CONSUMER, Config, Data, WebSocket
from .opening import new_server_connection
from ..protocol.connection import encode_message
from ..protocol.events import Rejected
from ..protocol.errors import ConnectionClosed

__all__ = [
    "serve", "Server", "WebSocket", "EventHandler", "upgrade", "Config", "CLOSE_SLOW_CONSUMER",
]

logger = logging.getLogger("wsframe.server")

Handler = Callable[[WebSocket], Any]

_ACCEPT_ERRORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


def serve(handler: Any, host: str = "127.0.0.1", port: int = 8080, **options: Any) -> "Server":
    """A :class:`Server` bound and listening on ``host:port`` (0: any free port), not yet serving.

    ``handler(ws)`` runs in the connection's thread with a :class:`WebSocket`;
    an :class:`EventHandler` subclass works too. Start it with
    :meth:`Server.serve_forever` (blocks) or :meth:`Server.start` (background
    thread); stop it with :meth:`Server.shutdown` or the ``with`` block.
    The options are :class:`Server`'s.
    """
    return Server(handler, host, port, **options)


class Server:
    """A WebSocket server: a listening socket, a thread per connection, one maintenance thread.

    Options (keywords; seconds for times, ``None`` disables):

    ``max_message_size`` (1 MiB)
        Largest message accepted; more fails the connection with 1009.
    ``max_connections`` (1024)
        Connections at once (handshaking or open); beyond it new ones get HTTP 503.
    ``handshake_timeout`` (10)
        Time for a client to complete TLS and the HTTP upgrade (slowloris).
    ``ping_interval`` (20), ``ping_timeout`` (20)
        Keepalive: ping after that much silence, close with 1011 if nothing arrives in time.
    ``close_timeout`` (10)
        Time the peer has to answer a close frame before TCP is cut.
    ``write_limit`` (256 KiB), ``send_timeout`` (10)
        Outgoing buffer high-water mark and how long ``send()`` may wait under it.
    ``ssl_context``
        An ``ssl.SSLContext`` (server side, certificate loaded) for wss://.
    ``origins``, ``subprotocols``
        Allowed Origin values (None: any; include None for clients without one);
        the server's subprotocols in preference order.
    ``process_request``
        ``hook(request) -> None | (status, headers, body)`` for requests that are
        not WebSocket upgrades (``request`` is a :class:`wsframe.handshake.Request`);
        None gives 426 Upgrade Required.
    ``backend``
        ``"cython"``, ``"python"`` or None (the active one) for the framing core.
    ``max_request_line`` (8190), ``max_request_headers`` (128), ``max_request_size`` (64 KiB)
        HTTP request head limits (431 beyond them).
    ``thread_stack_size`` (512 KiB)
        Stack of each connection thread (None: the interpreter's default, often 8 MiB).
    ``batch_writes`` (True)
        Write replies to already-received messages in one system call (see :meth:`WebSocket.send`).
    """

    def __init__(self, handler: Any, host: str = "127.0.0.1", port: int = 8080, **options: Any) -> None:
        self.handler: Handler = _as_handler(handler)
        self.config = Config(**options)
        self._frames = _backend.load(self.config.backend) if self.config.backend else _backend.active
        self._maint = Maintenance("wsframe-maintenance")
        self._lock = threading.Lock()
        self._open: Set[WebSocket] = set()
        self._live: Set[WebSocket] = set()
        self._threads: Set[threading.Thread] = set()
        self._pending = 0
        self._serving = False
        self._serving_ident: Optional[int] = None
        self._started = threading.Event()
        self._serve_done = threading.Event()
        self._done = threading.Event()
        self._stop_requested = False
        self._closing = False
        self._finish_in_serve = False
        self._accept_thread: Optional[threading.Thread] = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            self._tcp = _TCPServer((host, port), self, family)
        except BaseException:
            self._wake_r.close()
            self._wake_w.close()
            raise

    # -- information -------------------------------------------------------------------

    @property
    def server_address(self) -> Tuple[Any, ...]:
        """The bound address, ``(host, port)``: the real port when 0 was asked for."""
        return self._tcp.server_address  # type: ignore[return-value]

    @property
    def port(self) -> int:
        return self.server_address[1]

    @property
    def backend(self) -> str:
        """The framing backend the connections use: ``"cython"`` or ``"python"``."""
        return self._frames.name

    @property
    def connections(self) -> Set[WebSocket]:
        """The open connections (a snapshot)."""
        with self._lock:
            return set(self._open)

    def __repr__(self) -> str:
        return f"<wsframe Server {self.server_address} {len(self._open)} open>"

    # -- running -----------------------------------------------------------------------

    def serve_forever(self) -> None:
        """Accept connections until :meth:`shutdown`; each runs the handler in its own thread."""
        with self._lock:
            if self._serving or self._serve_done.is_set():
                raise RuntimeError("serve_forever() runs once per server")
            self._serving = True
            self._serving_ident = threading.get_ident()
        listener = self._tcp.socket
        listener.setblocking(False)
        self._started.set()
        logger.info("serving on %s (backend %s)", _format_address(self.server_address), self.backend)
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(listener, selectors.EVENT_READ)
                selector.register(self._wake_r, selectors.EVENT_READ)
                while not self._stop_requested:
                    for key, _ in selector.select():
                        if key.fileobj is self._wake_r:
                            _drain(self._wake_r)
                        elif not self._stop_requested:
                            self._tcp._handle_request_noblock()  # type: ignore[attr-defined]  # accept, process_request()
        finally:
            with self._lock:
                self._serving = False
                self._serving_ident = None
            self._serve_done.set()
        if self._finish_in_serve:  # shutdown() was called in this thread (a signal handler)
            self._shutdown_sequence(None)

    def start(self) -> "Server":
        """Run :meth:`serve_forever` in a background (non-daemon) thread; return self."""
        thread = threading.Thread(target=self.serve_forever, name="wsframe-server", daemon=False)
        self._accept_thread = thread
        thread.start()
        self._started.wait(5.0)
        return self

    def shutdown(self, timeout: Optional[float] = None) -> None:
        """Stop: no new connections, close every connection with 1001, wait for the handlers.

        Waits up to ``timeout`` seconds (default ``close_timeout`` + 1) for the
        handler threads, then cuts the remaining connections; a handler that
        ignores both (e.g. sleeping without reading) is reported in the log.
        Idempotent, and safe from any thread, including a signal handler
        interrupting :meth:`serve_forever` (it then finishes the shutdown as
        it returns).
        """
        with self._lock:
            already = self._closing
            self._closing = True
            self._stop_requested = True
            serving = self._serving
            here = self._serving_ident == threading.get_ident()
        _wake(self._wake_w)
        if already:
            if not here:
                self._done.wait(None if timeout is None else timeout + 5)
            return
        if serving and here:
            self._finish_in_serve = True
            return
        if serving:
            self._serve_done.wait()
        self._shutdown_sequence(timeout)

    def _shutdown_sequence(self, timeout: Optional[float]) -> None:
        me = threading.current_thread()  # a handler may call shutdown(): never join ourselves
        try:
            self._tcp.server_close()  # stop listening
            with self._lock:
                live = list(self._live)
                threads = [t for t in self._threads if t is not me]
            if live:
                logger.info("shutting down: closing %d connection(s) with 1001", len(live))
            for ws in live:
                ws._going_away()
            if timeout is None:
                timeout = (self.config.close_timeout or 10.0) + 1.0
            deadline = monotonic() + timeout
            for thread in threads:
                thread.join(max(0.0, deadline - monotonic()))
            stuck = [t for t in threads if t.is_alive()]
            if stuck:
                with self._lock:
                    live = list(self._live)
                for ws in live:
                    with ws._lock:
                        ws._abort_locked(1001, "server shutting down")
                deadline = monotonic() + 1.0
                for thread in stuck:
                    thread.join(max(0.0, deadline - monotonic()))
                names = [t.name for t in stuck if t.is_alive()]
                if names:
                    logger.warning("shutdown: handler thread(s) still running: %s", ", ".join(names))
        finally:
            self._maint.stop()  # whatever happened above: no thread may outlive shutdown()
            accept = self._accept_thread
            if accept is not None and accept is not me:
                accept.join(5.0)
            self._wake_r.close()
            self._wake_w.close()
            self._done.set()

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()

    # -- broadcasting ------------------------------------------------------------------

    def broadcast(self, message: Union[str, bytes, bytearray, memoryview], connections: Optional[Iterable[WebSocket]] = None) -> int:
        """Send ``message`` to every open connection (or to ``connections``); return how many took it.

        The frame is encoded once. Never blocks: each connection gets the
        frame written or buffered, and a client already more than
        ``write_limit`` bytes behind is dropped (close 1008) instead, so one
        stuck client never delays the others. Connections that are closing, or
        in the middle of ``send_fragments()``, are skipped.
        """
        frame = encode_message(message, self._frames.name)
        targets = self.connections if connections is None else connections
        sent = 0
        for ws in targets:
            if ws._send_encoded(frame):
                sent += 1
        return sent

    # -- connections (socketserver glue) -----------------------------------------------

    def _spawn(self, sock: socket.socket, address: Any) -> None:
        """Accept thread: start the connection's thread, or refuse it without one."""
        cfg = self.config
        with self._lock:
            if self._closing:
                sock.close()
                return
            if cfg.max_connections is not None and self._pending >= cfg.max_connections:
                busy = True
            else:
                busy = False
                self._pending += 1
        if busy:
            logger.warning("refusing %s: max_connections (%d) reached", _format_address(address), cfg.max_connections)
            self._refuse_busy(sock)
            return
        thread = threading.Thread(
            target=self._tcp.process_request_thread, args=(sock, address), name="wsframe-connection", daemon=False
        )
        with self._lock:
            self._threads.add(thread)
        stack = cfg.thread_stack_size
        try:
            previous = threading.stack_size(stack) if stack else None
            try:
                thread.start()
            finally:
                if previous is not None:
                    threading.stack_size(previous)
        except RuntimeError as exc:  # can't start new thread
            with self._lock:
                self._threads.discard(thread)
                self._pending -= 1
            logger.error("refusing %s: cannot start a thread (%s)", _format_address(address), exc)
            self._refuse_busy(sock)

    def _refuse_busy(self, sock: socket.socket) -> None:
        if self.config.ssl_context is not None:  # no thread for a TLS handshake: just close
            sock.close()
            return
        response = hs.reject(
            503, "503 Service Unavailable: too many connections\n", [("Retry-After", "5")]
        ).serialize()
        sock.setblocking(False)
        self._maint.refuse(sock, response, self.config.handshake_timeout or 10.0)

    def _run_connection(self, sock: socket.socket, address: Any) -> None:
        """Connection thread: handshake, handler, close, release."""
        ws = WebSocket(sock, self.config, self._maint, address, server=self)
        thread = threading.current_thread()
        thread.name = f"wsframe-{ws.id}"
        opened = False
        with self._lock:
            self._live.add(ws)
        try:
            if self._closing or not ws._server_handshake():
                return
            with self._lock:
                if self._closing:
                    ws._going_away()
                self._open.add(ws)
            opened = True
            if logger.isEnabledFor(logging.INFO):
                logger.info(
                    "%s open %s from %s%s", ws.id, ws.request.target, _format_address(address),  # type: ignore[union-attr]
                    f" subprotocol {ws.subprotocol}" if ws.subprotocol else "",
                )
            _run_handler(self.handler, ws)
        finally:
            with self._lock:
                self._open.discard(ws)
            ws._release()
            with self._lock:
                self._live.discard(ws)
                self._threads.discard(thread)
                self._pending -= 1
            if opened:
                logger.info("%s closed %s %s", ws.id, ws.close_code, ws.close_reason)


class _RequestHandler(socketserver.BaseRequestHandler):
    server: "_TCPServer"

    def handle(self) -> None:
        self.server.owner._run_connection(self.request, self.client_address)


class _TCPServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    """socketserver's threading TCP server, with :class:`Server` deciding how threads start."""

    daemon_threads = False
    block_on_close = False  # Server.shutdown() joins the connection threads, with a timeout
    allow_reuse_address = True
    request_queue_size = 1024

    def __init__(self, address: Tuple[Any, ...], owner: Server, family: int) -> None:
        self.address_family = family
        self.owner = owner
        super().__init__(address, _RequestHandler)

    def get_request(self) -> Tuple[socket.socket, Any]:
        try:
            sock, address = self.socket.accept()
        except OSError as exc:
            if exc.errno in _ACCEPT_ERRORS:  # out of descriptors: do not spin on the listener
                logger.error("accept failed: %s", exc)
                time.sleep(0.1)
            raise
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock, address

    def process_request(self, request: Any, client_address: Any) -> None:
        self.owner._spawn(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.exception("error handling the connection from %s", _format_address(client_address))


# -- event style -----------------------------------------------------------------------


class EventHandler:
    """The event style: subclass, override the ``on_*`` methods, and serve the class.

    ::

        class Chat(EventHandler):
            def on_connect(self):
                self.send("welcome")

            def on_message(self, message):
                self.broadcast(message)

            def on_close(self, code, reason):
                print(self.id, "left with", code)

        serve(Chat, port=8080).serve_forever()

    One instance per connection, on top of the same :class:`WebSocket`
    (``self.ws``); the methods run in the connection's thread, in order.
    ``on_close`` runs once, after the connection ended (``code`` is
    :attr:`WebSocket.close_code`). An exception in ``on_connect`` or
    ``on_message`` is logged and closes the connection with 1011. Works with
    :func:`upgrade` too: ``Chat(upgrade(self)).run()``.
    """

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws

    @property
    def id(self) -> str:
        return self.ws.id

    def on_connect(self) -> None:
        """The connection is open."""

    def on_message(self, message: Data) -> None:
        """A message arrived: str for text, bytes for binary."""

    def on_close(self, code: Optional[int], reason: str) -> None:
        """The connection is over."""

    def send(self, message: Union[str, bytes]) -> None:
        self.ws.send(message)

    def close(self, code: int = 1000, reason: str = "") -> None:
        self.ws.close(code, reason)

    def broadcast(self, message: Union[str, bytes]) -> int:
        """Send to every open connection of the server (just this one after ``upgrade()``)."""
        server = self.ws.server
        if server is None:
            self.ws.send(message)
            return 1
        return server.broadcast(message)

    def run(self) -> None:
        """The connection's life: on_connect, on_message for each message, on_close."""
        _run_handler(self._converse, self.ws)
        self.on_close(self.ws.close_code, self.ws.close_reason)

    def _converse(self, ws: WebSocket) -> None:
        self.on_connect()
        for message in ws:
            self.on_message(message)


def _run_handler(handler: Handler, ws: WebSocket) -> None:
    """Run ``handler(ws)``, then close: 1000 when it returns, 1011 (logged) when it raises."""
    try:
        handler(ws)
    except ConnectionClosed:
        pass
    except Exception:
        logger.exception("%s handler failed; closing with 1011", ws.id)
        ws._close_quietly(1011, "internal error")
    ws._close_quietly(1000, "")


def _as_handler(handler: Any) -> Handler:
    if isinstance(handler, type) and issubclass(handler, EventHandler):
        cls = handler
        return lambda ws: cls(ws).run()
    if not callable(handler):
        raise TypeError("handler must be a callable taking a WebSocket, or an EventHandler subclass")
    return handler  # type: ignore[no-any-return]


# -- taking over an http.server request ----------------------------------------------------


def upgrade(request_handler: Any, **options: Any) -> WebSocket:
    """Turn the current request of an ``http.server`` handler into a WebSocket.

    For apps that already serve HTTP with :mod:`http.server` and want a
    WebSocket endpoint on the same port. Call it from ``do_GET``; it checks
    the upgrade request, answers 101 and returns the open :class:`WebSocket`
    (the request's socket becomes the WebSocket's; http.server closes it when
    ``do_GET`` returns). Use it as a context manager so the closing handshake
    happens before that. An invalid request gets its HTTP error response and
    raises :class:`wsframe.HandshakeError`. Options are :class:`Server`'s
    (``subprotocols``, ``origins``, ``max_message_size``, timeouts, ``backend``);
    keepalive and buffered writes use one shared maintenance thread.
    A TLS socket (``SSLSocket``) is not supported: terminate TLS in front.

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
    cfg = Config(**options)
    sock = request_handler.connection
    if isinstance(sock, ssl.SSLSocket):
        raise NotImplementedError("upgrade() cannot take over a TLS socket; terminate TLS in front, or use serve(ssl_context=...)")
    request_handler.close_connection = True
    conn = new_server_connection(cfg)
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
    ws = WebSocket(sock, cfg, shared(), request_handler.client_address)
    ws._adopt(conn, response, leftover)
    logger.info("%s open %s from %s (upgrade)", ws.id, request.target, _format_address(request_handler.client_address))
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


# -- helpers ---------------------------------------------------------------------------


def _wake(sock: socket.socket) -> None:
    try:
        sock.send(b"\0")
    except OSError:
        pass


def _drain(sock: socket.socket) -> None:
    try:
        while sock.recv(4096):
            pass
    except OSError:
        pass


def _format_address(address: Any) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        host = address[0]
        return f"[{host}]:{address[1]}" if ":" in str(host) else f"{host}:{address[1]}"
    return str(address)
