"""A threaded WebSocket server on :mod:`socketserver`: one thread per connection, and no more.

Quick start::

    from wsframe import serve

    def echo(ws):
        for message in ws:          # str for text, bytes for binary
            ws.send(message)

    with serve(echo, "127.0.0.1", 8080) as server:
        server.serve_forever()      # Ctrl-C or server.shutdown() from another thread stops it

How it runs:

* ``socketserver``'s TCP (or Unix) server: each accepted connection gets one
  non-daemon thread, which does the handshake and runs ``handler(ws)``. That same thread reads the socket
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
* :meth:`Server.shutdown`: every connection is closed with **1001**; it
  waits at most ``close_timeout`` for the closing handshakes and the
  handlers (reading the peers' answers for handlers busy elsewhere), then
  cuts what is left and logs the handlers still running.
* message over ``max_message_size``: **1009** (the core's decision, before buffering).
* the peer sends faster than it reads (its answers, pongs included, pile up
  over ``write_limit``): the connection stops reading, so TCP holds the peer
  back; if it still does not read for ``send_timeout``, it is dropped with
  **1008**.
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
import inspect
import logging
import os
import selectors
import socket
import socketserver
import threading
from socket import socket as Socket
import time
from time import monotonic
from typing import Any, Callable, Iterable, List, Optional, Set, Tuple, Union

from ..options import Options
from ..protocol import backend as _backend
from ..protocol import handshake as hs
from ..protocol.connection import SharedMessage
from ..protocol.constants import CLOSE_GOING_AWAY, CLOSE_INTERNAL_ERROR, CLOSE_NORMAL
from ..protocol.errors import ConnectionClosed
from .connection import CLOSE_SLOW_CONSUMER, Data, WebSocket
from .maintenance import Maintenance
from .opening import ServerHandshake

__all__ = ["serve", "Server", "WebSocket", "EventHandler", "CLOSE_SLOW_CONSUMER"]

logger = logging.getLogger("wsframe.server")

Handler = Callable[[WebSocket], Any]

_ACCEPT_ERRORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


def serve(
    handler: Any,
    host: Optional[str] = "127.0.0.1",
    port: int = 8080,
    *,
    path: Optional[str] = None,
    sock: Optional[socket.socket] = None,
    threaded: bool = False,
    **options: Any,
) -> Any:
    """A :class:`Server` listening on ``host:port`` (0: any free port), not yet serving.

    ``handler(ws)`` runs in the connection's thread with a :class:`WebSocket`;
    an :class:`EventHandler` subclass works too. Instead of ``host:port``,
    ``path`` listens on a Unix domain socket and ``sock`` takes a socket
    already bound (and listening). A name with several addresses
    (``localhost``: 127.0.0.1 and ::1; None or "": every interface) listens
    on each. Start with :meth:`Server.serve_forever` (blocks) or
    :meth:`Server.start` (background thread); stop with
    :meth:`Server.shutdown` or the ``with`` block. ``options`` are
    :class:`wsframe.options.Options` fields.

    An :class:`EventHandler` subclass runs on the reactor (one thread for
    every connection, callbacks inline: see :mod:`wsframe.reactor`) unless
    ``threaded=True`` gives each connection its own thread; a plain function
    (the blocking style, ``for message in ws``) always has its own thread.
    """
    if isinstance(handler, type) and issubclass(handler, EventHandler) and not threaded:
        from ..reactor.server import ReactorServer

        _check_event_handler(handler)
        holder: List[Any] = []
        server = ReactorServer(lambda ws: handler(ws, holder[0]), host, port, path=path, sock=sock, **options)
        holder.append(server)
        return server
    return Server(handler, host, port, path=path, sock=sock, **options)


class Server:
    """A WebSocket server: listening sockets, a thread per connection, one maintenance thread.

    Options are keywords, the fields of :class:`wsframe.options.Options`
    (see :func:`serve`); an unknown or invalid one fails here, not per connection.
    """

    def __init__(
        self,
        handler: Any,
        host: Optional[str] = "127.0.0.1",
        port: int = 8080,
        *,
        path: Optional[str] = None,
        sock: Optional[socket.socket] = None,
        **options: Any,
    ) -> None:
        self.options = Options.of(options)
        self.handler: Handler = _as_handler(handler, self)
        self._frames = _backend.load(self.options.backend) if self.options.backend else _backend.active
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
        try:
            self._listeners = _listen(self, host, port, path, sock)
        except BaseException:
            self._wake_r.close()
            self._wake_w.close()
            raise

    # -- information -------------------------------------------------------------------

    @property
    def server_address(self) -> Any:
        """The (first) bound address: ``(host, port)`` with the real port when 0 was asked for, or a path."""
        return self._listeners[0].server_address

    @property
    def sockets(self) -> List[socket.socket]:
        """The listening sockets (one per address)."""
        return [listener.socket for listener in self._listeners]

    @property
    def port(self) -> int:
        """The TCP port listened on (0 for a Unix socket)."""
        address = self.server_address
        return address[1] if isinstance(address, tuple) else 0

    @property
    def backend(self) -> str:
        """The framing backend the connections use: ``"cython"`` or ``"python"``."""
        name: str = self._frames.name
        return name

    @property
    def connections(self) -> Set[WebSocket]:
        """The open connections (a snapshot)."""
        with self._lock:
            return set(self._open)

    def __repr__(self) -> str:
        return f"<wsframe Server {format_address(self.server_address)} {len(self._open)} open>"

    # -- running -----------------------------------------------------------------------

    def serve_forever(self) -> None:
        """Accept connections until :meth:`shutdown`; each runs the handler in its own thread."""
        with self._lock:
            if self._serving or self._serve_done.is_set():
                raise RuntimeError("serve_forever() runs once per server")
            self._serving = True
            self._serving_ident = threading.get_ident()
        self._started.set()
        logger.info("serving on %s (backend %s)",
                    ", ".join(format_address(lst.server_address) for lst in self._listeners), self.backend)
        try:
            with selectors.DefaultSelector() as selector:
                for listener in self._listeners:
                    listener.socket.setblocking(False)
                    selector.register(listener.socket, selectors.EVENT_READ, listener)
                selector.register(self._wake_r, selectors.EVENT_READ, None)
                while not self._stop_requested:
                    for key, _ in selector.select():
                        if key.data is None:
                            _drain(self._wake_r)
                        elif not self._stop_requested:
                            key.data._handle_request_noblock()  # accept, then process_request()
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

        Waits up to ``timeout`` seconds (default ``close_timeout``, or 10) for
        the closing handshakes and the handler threads, reading the peers'
        answers for handlers that are busy elsewhere; then cuts the remaining
        connections and logs the handlers still running. Idempotent, and safe
        from any thread, including a signal handler interrupting
        :meth:`serve_forever` (it then finishes the shutdown as it returns).
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
            for listener in self._listeners:
                listener.server_close()  # stop listening
            with self._lock:
                live = list(self._live)
            if live:
                logger.info("shutting down: closing %d connection(s) with 1001", len(live))
            for ws in live:
                ws.going_away(CLOSE_GOING_AWAY, "server shutting down")
            if timeout is None:
                timeout = self.options.close_timeout or 10.0
            deadline = monotonic() + timeout
            while monotonic() < deadline:
                with self._lock:
                    threads = [t for t in self._threads if t is not me and t.is_alive()]
                    live = list(self._live)
                if not threads:
                    break
                for ws in live:  # handlers busy elsewhere: read their peers' answers for them
                    ws.read_on_behalf()
                threads[0].join(min(0.05, max(0.0, deadline - monotonic())))
            with self._lock:
                stuck = [t for t in self._threads if t is not me and t.is_alive()]
                live = list(self._live)
            if stuck:
                for ws in live:
                    ws.abort(CLOSE_GOING_AWAY, "server shutting down")
                end = monotonic() + 1.0
                for thread in stuck:
                    thread.join(max(0.0, end - monotonic()))
                names = [t.name for t in stuck if t.is_alive()]
                if names:
                    logger.warning("shutdown: handler thread(s) still running after %.1f s: %s",
                                   timeout, ", ".join(names))
        finally:
            self._maint.stop()  # whatever happened above: no thread may outlive shutdown()
            accept = self._accept_thread
            if accept is not None and accept is not me:
                accept.join(5.0)
            self._wake_r.close()
            self._wake_w.close()
            for listener in self._listeners:
                listener.remove_path()
            self._done.set()

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()

    # -- broadcasting ------------------------------------------------------------------

    def broadcast(
        self, message: Union[str, bytes, bytearray, memoryview], connections: Optional[Iterable[WebSocket]] = None
    ) -> int:
        """Send ``message`` to every open connection (or to ``connections``); return how many took it.

        The frame is encoded once, and compressed once for the connections
        whose compression keeps no context (per connection for the others). Never blocks: each connection gets the
        frame written or buffered, and a client already more than
        ``write_limit`` bytes behind is dropped (close 1008) instead, so one
        stuck client never delays the others. Connections that are closing, or
        in the middle of ``send_fragments()``, are skipped.
        """
        frame = SharedMessage(message)
        targets = self.connections if connections is None else connections
        return sum(1 for ws in targets if ws.send_encoded(frame))

    # -- connections (socketserver glue) -----------------------------------------------

    def _spawn(self, sock: socket.socket, address: Any) -> None:
        """Accept thread: start the connection's thread, or refuse it without one."""
        options = self.options
        with self._lock:
            if self._closing:
                sock.close()
                return
            busy = options.max_connections is not None and self._pending >= options.max_connections
            if not busy:
                self._pending += 1
        if busy:
            logger.warning("refusing %s: max_connections (%d) reached", format_address(address), options.max_connections)
            self._refuse_busy(sock)
            return
        thread = threading.Thread(target=self._run_connection, args=(sock, address), name="wsframe-connection",
                                  daemon=False)
        with self._lock:
            self._threads.add(thread)
        try:
            thread.start()
        except RuntimeError as exc:  # can't start new thread
            with self._lock:
                self._threads.discard(thread)
                self._pending -= 1
            logger.error("refusing %s: cannot start a thread (%s)", format_address(address), exc)
            self._refuse_busy(sock)

    def _refuse_busy(self, sock: socket.socket) -> None:
        if self.options.ssl is not None:  # no thread for a TLS handshake: just close
            sock.close()
            return
        response = hs.reject(503, "503 Service Unavailable: too many connections\n", [("Retry-After", "5")]).serialize()
        sock.setblocking(False)
        self._maint.refuse(sock, response, self.options.open_timeout or 10.0)

    def _run_connection(self, sock: socket.socket, address: Any) -> None:
        """Connection thread: handshake, handler, close, release."""
        thread = threading.current_thread()
        ws: Optional[WebSocket] = None
        opened = False
        try:
            ws = WebSocket(sock, self.options, self._maint, address)
            thread.name = f"wsframe-{ws.id}"
            with self._lock:
                self._live.add(ws)
            if self._closing:
                return
            with ws._read_lock:
                if not ServerHandshake(ws, self.options).run():
                    return
            with self._lock:
                if self._closing:
                    ws.going_away(CLOSE_GOING_AWAY, "server shutting down")
                self._open.add(ws)
            opened = True
            if logger.isEnabledFor(logging.INFO):
                target = ws.request.target if ws.request is not None else "?"
                logger.info("%s open %s from %s%s", ws.id, target, format_address(address),
                            f" subprotocol {ws.subprotocol}" if ws.subprotocol else "")
            run_handler(self.handler, ws)
        finally:
            if ws is None:
                sock.close()
            else:
                with self._lock:
                    self._open.discard(ws)
                ws.release()
            with self._lock:
                if ws is not None:
                    self._live.discard(ws)
                self._threads.discard(thread)
                self._pending -= 1
            if opened and ws is not None:
                logger.info("%s closed %s %s", ws.id, ws.close_code, ws.close_reason)


class _Listener:
    """The socketserver side of one listening socket: accept, then hand the socket to the Server."""

    server_address: Any
    socket: Socket
    owner: Server
    unix_path: Optional[str] = None

    def get_request(self) -> Tuple[Socket, Any]:
        try:
            sock, address = self.socket.accept()
        except OSError as exc:
            if exc.errno in _ACCEPT_ERRORS:  # out of descriptors: do not spin on the listener
                logger.error("accept failed: %s", exc)
                time.sleep(0.1)
            raise
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock, address

    def process_request(self, request: Any, client_address: Any) -> None:
        self.owner._spawn(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.exception("error handling the connection from %s", format_address(client_address))

    def remove_path(self) -> None:
        if self.unix_path is not None:
            try:
                os.unlink(self.unix_path)
            except OSError:
                pass


class _TCPListener(_Listener, socketserver.TCPServer):
    allow_reuse_address = True
    request_queue_size = 1024

    def __init__(self, owner: Server, family: int, address: Any, sock: Optional[socket.socket] = None) -> None:
        self.address_family = family
        self.owner = owner
        if sock is None:
            socketserver.TCPServer.__init__(self, address, socketserver.BaseRequestHandler, bind_and_activate=False)
            try:
                if family == socket.AF_INET6:
                    self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                self.server_bind()
                self.server_activate()
            except BaseException:
                self.server_close()
                raise
        else:
            socketserver.TCPServer.__init__(self, sock.getsockname(), socketserver.BaseRequestHandler,
                                            bind_and_activate=False)
            self.socket.close()
            self.socket = sock
            self.server_address = sock.getsockname()


class _UnixListener(_Listener, socketserver.UnixStreamServer):
    request_queue_size = 1024

    def __init__(self, owner: Server, path: str) -> None:
        self.owner = owner
        socketserver.UnixStreamServer.__init__(self, path, socketserver.BaseRequestHandler)
        self.unix_path = path


def _listen(owner: Server, host: Optional[str], port: int, path: Optional[str],
            sock: Optional[socket.socket]) -> List[Any]:
    """The listening sockets for ``serve()``'s address arguments."""
    if path is not None:
        if sock is not None:
            raise TypeError("give path or sock, not both")
        return [_UnixListener(owner, path)]
    if sock is not None:
        if sock.family == getattr(socket, "AF_UNIX", None):
            listener = _UnixListener.__new__(_UnixListener)
            socketserver.UnixStreamServer.__init__(listener, sock.getsockname(), socketserver.BaseRequestHandler,
                                                   bind_and_activate=False)
            listener.socket.close()
            listener.socket = sock
            listener.owner = owner
            return [listener]
        return [_TCPListener(owner, sock.family, None, sock)]
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise ValueError(f"port must be an int from 0 to 65535, not {port!r}")
    addresses: List[Tuple[int, Any]] = []
    if host == "localhost":  # both loopbacks whatever /etc/hosts says (RFC 6761): browsers try ::1 first
        addresses.append((socket.AF_INET, ("127.0.0.1", port)))
        if _ipv6_loopback():
            addresses.append((socket.AF_INET6, ("::1", port, 0, 0)))
    infos = [] if addresses else socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                                    flags=socket.AI_PASSIVE)
    for info in infos:
        family, address = int(info[0]), info[4]
        if family in (socket.AF_INET, socket.AF_INET6) and (family, address[0]) not in [(f, a[0]) for f, a in addresses]:
            addresses.append((family, address))
    listeners: List[Any] = []
    try:
        for family, address in addresses:
            if port == 0 and listeners:  # every address on the port the first one got
                address = (address[0], listeners[0].server_address[1], *address[2:])
            listeners.append(_TCPListener(owner, family, address))
    except BaseException:
        for listener in listeners:
            listener.server_close()
        raise
    return listeners


def _ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


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
    :func:`wsframe.upgrade` too: ``Chat(upgrade(self)).run()``.
    """

    def __init__(self, ws: Any, server: Any = None) -> None:
        #: The connection: a :class:`WebSocket` (threaded) or a reactor connection, with the same methods.
        self.ws = ws
        #: The server the connection came from (None after ``upgrade()``).
        self.server = server

    @property
    def id(self) -> str:
        """The connection's id, as in the logs (``ws-17``)."""
        ident: str = self.ws.id
        return ident

    def on_connect(self) -> None:
        """The connection is open."""

    def on_message(self, message: Data) -> None:
        """A message arrived: str for text, bytes for binary."""

    def on_close(self, code: Optional[int], reason: str) -> None:
        """The connection is over."""

    def on_ping(self, payload: bytes) -> None:
        """A ping arrived (the pong is already on its way). On the reactor only."""

    def on_pong(self, payload: bytes) -> None:
        """A pong arrived. On the reactor only."""

    def run_in_thread(self, fn: Callable[..., Any], *args: Any, then: Optional[Callable[[Any], None]] = None) -> None:
        """Run blocking work off the reactor: ``fn(*args)`` in a thread pool, then ``then(result)`` back here.

        On the reactor a callback that blocks stalls every connection; this is
        the way out. With a thread per connection it simply runs in this thread.
        """
        run = getattr(self.server, "run_in_thread", None)
        if run is not None:
            run(fn, *args, then=then)
            return
        result = fn(*args)
        if then is not None:
            then(result)

    def send(self, message: Union[str, bytes], compress: Optional[bool] = None) -> None:
        """Send a message to this connection (``compress``: see :meth:`WebSocket.send`)."""
        self.ws.send(message, compress)

    def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        """Close this connection."""
        self.ws.close(code, reason)

    def broadcast(self, message: Union[str, bytes]) -> int:
        """Send to every open connection of the server (just this one after ``upgrade()``)."""
        if self.server is None:
            self.ws.send(message)
            return 1
        count: int = self.server.broadcast(message)
        return count

    def run(self) -> None:
        """The connection's life: on_connect, on_message for each message, on_close."""
        run_handler(self._converse, self.ws)
        self.on_close(self.ws.close_code, self.ws.close_reason)

    def _converse(self, ws: WebSocket) -> None:
        self.on_connect()
        for message in ws:
            self.on_message(message)


def run_handler(handler: Handler, ws: WebSocket) -> None:
    """Run ``handler(ws)``, then close: 1000 when it returns, 1011 (logged) when it raises."""
    try:
        handler(ws)
    except ConnectionClosed:
        pass
    except Exception:
        logger.exception("%s handler failed; closing with 1011", ws.id)
        ws.close_quietly(CLOSE_INTERNAL_ERROR, "internal error")
    ws.close_quietly(CLOSE_NORMAL, "")


def _is_async(fn: Any) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn) or (
        not inspect.isfunction(fn) and not inspect.isclass(fn)
        and inspect.iscoroutinefunction(getattr(fn, "__call__", None))
    )


def _check_event_handler(cls: type) -> None:
    for name in ("on_connect", "on_message", "on_close", "on_ping", "on_pong"):
        if _is_async(getattr(cls, name)):
            raise TypeError(f"{cls.__name__}.{name} is async: wsframe calls plain methods")


def _as_handler(handler: Any, server: Optional[Server] = None) -> Handler:
    """The function a connection thread calls; refuses what cannot run in a thread, now."""
    if isinstance(handler, type) and issubclass(handler, EventHandler):
        cls = handler
        _check_event_handler(cls)
        return lambda ws: cls(ws, server).run()
    if not callable(handler):
        raise TypeError("handler must be a callable taking a WebSocket, or an EventHandler subclass")
    if _is_async(handler):
        raise TypeError("handler is an async function: the threaded server runs plain functions in threads")
    return handler  # type: ignore[no-any-return]


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


def format_address(address: Any) -> str:
    """``host:port``, ``[v6]:port`` or a Unix path, for logs and banners."""
    if isinstance(address, tuple) and len(address) >= 2:
        host = address[0]
        return f"[{host}]:{address[1]}" if ":" in str(host) else f"{host}:{address[1]}"
    return str(address)


