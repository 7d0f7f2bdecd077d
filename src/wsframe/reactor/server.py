"""The reactor server: event-style handlers on one thread, for many connections with little in flight.

``serve(Handler, ...)`` with an :class:`~wsframe.EventHandler` subclass runs
here: one thread waits on every connection (``selectors``: epoll, kqueue),
accepts through the ``socketserver`` listeners the threaded server uses,
parses every read with the compiled batch parser and calls the handler's
``on_*`` methods inline. No thread per connection. A callback that blocks
stalls every connection: slow callbacks are logged, and
:meth:`~wsframe.EventHandler.run_in_thread` hands work to a thread pool.
"""

from __future__ import annotations

import logging
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from time import monotonic
from typing import Any, Callable, List, Optional, Set, Union

from ..options import Options
from ..protocol import backend as _backend
from ..protocol import handshake as hs
from ..protocol.connection import SharedMessage
from ..sync.server import _listen, format_address
from .connection import READ_SIZE, ReactorConnection
from .loop import Loop

__all__ = ["ReactorServer"]

logger = logging.getLogger("wsframe.reactor")

Factory = Callable[[ReactorConnection], Any]


class ReactorServer:
    """Listening sockets and one reactor thread serving every connection's event-style handler."""

    def __init__(
        self,
        factory: Factory,
        host: Optional[str] = "127.0.0.1",
        port: int = 8080,
        *,
        path: Optional[str] = None,
        sock: Optional[socket.socket] = None,
        **options: Any,
    ) -> None:
        self.options = Options.of(options)
        self.factory = factory
        self._frames = _backend.load(self.options.backend) if self.options.backend else _backend.active
        self.loop = Loop()
        self.read_buffer = bytearray(READ_SIZE)  # one for every connection: reads are parsed before the next
        self.read_view = memoryview(self.read_buffer)  # (never resized: no release needed)
        self._live: Set[ReactorConnection] = set()
        self._open: Set[ReactorConnection] = set()
        self._lock = threading.Lock()
        self._pool: Optional[ThreadPoolExecutor] = None
        self._thread: Optional[threading.Thread] = None
        self._done = threading.Event()
        self._closing = False
        self._listeners = _listen(self, host, port, path, sock)  # type: ignore[arg-type]

    # -- information --------------------------------------------------------------------

    @property
    def server_address(self) -> Any:
        return self._listeners[0].server_address

    @property
    def sockets(self) -> List[socket.socket]:
        return [listener.socket for listener in self._listeners]

    @property
    def port(self) -> int:
        address = self.server_address
        return address[1] if isinstance(address, tuple) else 0

    @property
    def backend(self) -> str:
        name: str = self._frames.name
        return name

    @property
    def connections(self) -> Set[ReactorConnection]:
        with self._lock:
            return set(self._open)

    # -- running ------------------------------------------------------------------------

    def serve_forever(self) -> None:
        """Run the reactor in this thread until :meth:`shutdown`."""
        for listener in self._listeners:
            listener.socket.setblocking(False)
            self.loop.selector.register(listener.socket, 1, self._acceptor(listener))
        logger.info("serving on %s (reactor, backend %s)",
                    ", ".join(format_address(lst.server_address) for lst in self._listeners), self.backend)
        try:
            self.loop.run()
        finally:
            for listener in self._listeners:
                listener.server_close()
                listener.remove_path()
            for ws in list(self._live):
                ws._abort(1001, "server shutting down")
            self.loop.close()
            if self._pool is not None:
                self._pool.shutdown(wait=False)
            self._done.set()

    def start(self) -> "ReactorServer":
        """Run the reactor in a background thread; return self."""
        self._thread = threading.Thread(target=self.serve_forever, name="wsframe-reactor", daemon=False)
        self._thread.start()
        return self

    def shutdown(self, timeout: Optional[float] = None) -> None:
        """Close every connection with 1001, wait up to ``timeout`` (default ``close_timeout``) for them, stop.

        Safe from any thread, and from a signal handler running in the loop's
        thread (then it returns at once and the loop stops when done).
        """
        wait = timeout if timeout is not None else (self.options.close_timeout or 10.0)
        if self._closing:
            if not self.loop.in_loop():
                self._done.wait(wait + 5)
            return
        self._closing = True
        deadline = monotonic() + wait
        if self.loop.in_loop():  # a callback, or a signal handler interrupting the loop's wait
            self.loop.call_soon_threadsafe(lambda: self._begin_shutdown(deadline))  # also wakes the wait
            return
        if self._thread is None:  # never started
            for listener in self._listeners:
                listener.server_close()
                listener.remove_path()
            self.loop.close()
            self._done.set()
            return
        self.loop.call_soon_threadsafe(lambda: self._begin_shutdown(deadline))
        self._done.wait(wait + 5)
        if self._thread is not threading.current_thread():
            self._thread.join(5.0)

    def _begin_shutdown(self, deadline: float) -> None:
        """Loop thread: stop accepting, close every connection with 1001, stop when they are gone."""
        for listener in self._listeners:
            try:
                self.loop.selector.unregister(listener.socket)
            except (KeyError, ValueError):
                pass
        for ws in list(self._live):
            ws.going_away()

        def check() -> None:
            if not self._live or monotonic() >= deadline:
                self.loop.stop()
            else:
                self.loop.call_later(0.02, check)

        check()

    def __enter__(self) -> "ReactorServer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()

    def broadcast(self, message: Union[str, bytes, bytearray, memoryview], connections: Any = None) -> int:
        """Send ``message`` to every open connection (a peer ``write_limit`` behind is dropped).

        Encoded (and compressed) once for the connections that can share the
        frame, per connection for those whose compression keeps context.

        In the loop's thread it returns how many took it; from another thread it
        is handed to the loop and returns the number of open connections then.
        """
        frame = SharedMessage(message)
        targets = list(self.connections if connections is None else connections)
        if self.loop.in_loop():
            return sum(1 for ws in targets if ws.send_encoded(frame))

        def send_all() -> None:
            for ws in targets:
                ws.send_encoded(frame)

        self.loop.call_soon_threadsafe(send_all)
        return len(targets)

    def run_in_thread(self, fn: Callable[..., Any], *args: Any, then: Optional[Callable[[Any], None]] = None) -> None:
        """Run ``fn(*args)`` in the server's thread pool; ``then(result)`` runs back in the loop."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="wsframe-worker")
        future = self._pool.submit(fn, *args)
        if then is not None:
            callback = then

            def done(f: Any) -> None:
                if f.exception() is None:
                    self.loop.call_soon_threadsafe(lambda: callback(f.result()))
                else:
                    logger.error("work handed to a thread failed", exc_info=f.exception())

            future.add_done_callback(done)

    # -- connections (loop thread) ---------------------------------------------------------

    def _acceptor(self, listener: Any) -> Callable[[int], None]:
        return lambda mask: self._accept(listener)

    def _accept(self, listener: Any) -> None:
        for _ in range(64):  # accept what is waiting, bounded per turn
            try:
                sock, address = listener.get_request()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            self._spawn(sock, address)

    def _spawn(self, sock: socket.socket, address: Any) -> None:
        max_connections = self.options.max_connections
        with self._lock:
            busy = self._closing or (max_connections is not None and len(self._live) >= max_connections)
        if busy:
            try:
                sock.setblocking(False)
                sock.send(hs.reject(503, "503 Service Unavailable: too many connections\n",
                                    [("Retry-After", "5")]).serialize())
            except OSError:
                pass
            sock.close()
            return
        ws = ReactorConnection(self, sock, address)
        ws.handler = self.factory(ws)
        with self._lock:
            self._live.add(ws)
        ws.start()

    def _opened(self, ws: ReactorConnection) -> None:
        with self._lock:
            self._open.add(ws)

    def _closed(self, ws: ReactorConnection) -> None:
        with self._lock:
            self._open.discard(ws)

    def _released(self, ws: ReactorConnection) -> None:
        with self._lock:
            self._open.discard(ws)
            self._live.discard(ws)
