"""A WebSocket connection driven by blocking calls: the threaded server's per-connection object.

Threads and locks, in one place:

* The socket is in blocking mode. The thread that calls :meth:`WebSocket.recv`
  (normally the handler thread) reads it with ``recv_into`` into one reusable
  buffer, holding ``_read_lock``; there is no reader thread per connection.
* Everything else about the connection (the sans-I/O core, the outgoing
  buffer, the flags) is guarded by ``_lock``, held only for non-blocking work:
  feeding received bytes and sending (``send(..., MSG_DONTWAIT)``) never wait
  under it. So ``send()`` is safe from any thread, and frames from different
  threads never interleave.
* When the socket cannot take more bytes, the rest waits in a bounded
  outgoing buffer and the server-wide maintenance thread flushes it when the
  socket becomes writable (see ``_maintenance``). ``send()`` blocks while the
  buffer is over ``write_limit`` (backpressure); ``broadcast`` never blocks.
* Timers (handshake, keepalive, close) run in the maintenance thread. To wake
  a reader blocked in ``recv_into`` they call ``socket.shutdown()``, never
  ``close()``: only the owner thread closes the file descriptor, at the end,
  so a descriptor number is never reused under another thread's feet.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import select
import socket
import ssl
import threading
from collections import deque
from time import monotonic
from typing import Any, Callable, Deque, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

from . import handshake as hs
from ._maintenance import Maintenance, Timer
from .connection import DEFAULT_MAX_MESSAGE_SIZE, Connection, ServerConnection, State
from .errors import ConnectionClosed, InvalidState
from .events import BinaryMessage, Closed, Pong, Request, TextMessage

__all__ = ["WebSocket", "Config", "Data"]

logger = logging.getLogger("wsframe.server")

Data = Union[str, bytes]

_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)  # 0 where absent (Windows): writes then block
_SENDMSG = bool(_DONTWAIT) and hasattr(socket.socket, "sendmsg")
_IOV_BATCH = 64  # buffers per sendmsg() when flushing a backlog
_READ_MIN = 2048  # receive buffer to start with: idle connections stay small
_READ_MAX = 256 * 1024  # ... doubled while reads fill it, up to this
_HAS_POLL = hasattr(select, "poll")
_HOLD_MAX = 65536  # batching: frames held at most, and the largest frame held

_ids = itertools.count(1)

#: Close code for a client dropped because it does not read fast enough.
CLOSE_SLOW_CONSUMER = 1008


class Config:
    """Limits, timeouts and hooks shared by every connection of a server.

    Times are in seconds; ``None`` disables a timeout (or keepalive).
    """

    __slots__ = (
        "max_message_size", "max_connections", "handshake_timeout", "ping_interval", "ping_timeout",
        "close_timeout", "write_limit", "send_timeout", "ssl_context", "origins", "subprotocols",
        "backend", "process_request", "max_request_line", "max_request_headers", "max_request_size",
        "thread_stack_size", "batch_writes",
    )

    def __init__(
        self,
        *,
        max_message_size: Optional[int] = DEFAULT_MAX_MESSAGE_SIZE,
        max_connections: Optional[int] = 1024,
        handshake_timeout: Optional[float] = 10.0,
        ping_interval: Optional[float] = 20.0,
        ping_timeout: Optional[float] = 20.0,
        close_timeout: Optional[float] = 10.0,
        write_limit: int = 256 * 1024,
        send_timeout: Optional[float] = 10.0,
        ssl_context: Optional[ssl.SSLContext] = None,
        origins: Optional[Iterable[Optional[str]]] = None,
        subprotocols: Sequence[str] = (),
        backend: Optional[str] = None,
        process_request: Optional[Callable[[hs.Request], Any]] = None,
        max_request_line: int = 8190,
        max_request_headers: int = 128,
        max_request_size: int = 65536,
        thread_stack_size: Optional[int] = 512 * 1024,
        batch_writes: bool = True,
    ) -> None:
        for name, value in (
            ("handshake_timeout", handshake_timeout), ("ping_interval", ping_interval),
            ("ping_timeout", ping_timeout), ("close_timeout", close_timeout), ("send_timeout", send_timeout),
        ):
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive or None")
        if write_limit < 0:
            raise ValueError("write_limit must be >= 0")
        if max_connections is not None and max_connections < 1:
            raise ValueError("max_connections must be >= 1 or None")
        if isinstance(subprotocols, str):
            raise TypeError("subprotocols must be a sequence of str, not a str")
        if backend is not None:
            from . import _backend

            _backend.load(backend)  # fail now (ImportError/ValueError), not per connection
        self.max_message_size = max_message_size
        self.max_connections = max_connections
        self.handshake_timeout = handshake_timeout
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.close_timeout = close_timeout
        self.write_limit = write_limit
        self.send_timeout = send_timeout
        self.ssl_context = ssl_context
        self.origins = None if origins is None else list(origins)
        self.subprotocols = list(subprotocols)
        self.backend = backend
        self.process_request = process_request
        self.max_request_line = max_request_line
        self.max_request_headers = max_request_headers
        self.max_request_size = max_request_size
        self.thread_stack_size = thread_stack_size
        self.batch_writes = batch_writes


class WebSocket:
    """One WebSocket connection, used with blocking calls from its handler thread.

    ``for message in ws`` / :meth:`recv` read (str for text, bytes for
    binary); :meth:`send` writes from any thread. After the end,
    :attr:`close_code` and :attr:`close_reason` say how it ended. ``id``
    (``"ws-17"``) appears on every log line about the connection.
    """

    __slots__ = (
        "id", "server", "remote_address", "request", "_sock", "_cfg", "_maint", "_conn",
        "_lock", "_read_lock", "_cond", "_closed_event", "_messages", "_rbuf", "_rview",
        "_out", "_buffered", "_writing", "_shut_after_flush", "_wr_shut", "_dead", "_ended",
        "_local", "_sent_close", "_dropped", "_fragmenting", "_last_rx", "_rx_bytes", "_ka_mark",
        "_ka_timer", "_close_timer", "_hs_timer", "_pings", "_tls", "_tls_in", "_tls_out",
        "_poller", "_owns_fd", "_held", "_held_size", "_reader", "_flushing", "__weakref__",
    )

    def __init__(
        self,
        sock: socket.socket,
        config: Config,
        maintenance: Maintenance,
        remote_address: Any = None,
        *,
        server: Any = None,
    ) -> None:
        self.id = f"ws-{next(_ids)}"
        #: The :class:`~wsframe.server.Server` this connection belongs to (None after ``upgrade()``).
        self.server = server
        self.remote_address = remote_address
        #: The opening handshake request (:class:`wsframe.handshake.Request`).
        self.request: Optional[hs.Request] = None
        self._sock = sock
        self._cfg = config
        self._maint = maintenance
        self._conn: Optional[Connection] = None
        self._lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._cond: Optional[threading.Condition] = None  # on _lock; made when someone first waits
        self._closed_event: Optional[threading.Event] = None
        self._messages: Deque[Data] = deque()
        self._rbuf: Optional[bytearray] = None
        self._rview: Optional[memoryview] = None
        self._out: Deque[Any] = deque()  # whole frames (the first maybe partly sent) not yet in the kernel
        self._buffered = 0
        self._writing = False  # registered with the maintenance thread for writability
        self._shut_after_flush = False
        self._wr_shut = False
        self._dead = False  # transport shut down: nothing more goes out
        self._ended = False  # the Closed event was seen: nothing more comes in
        self._local: Optional[Tuple[int, str]] = None  # why we ended it, when we did (wins over 1006)
        self._sent_close: Optional[Tuple[int, str]] = None
        self._dropped = False
        self._fragmenting: Optional[int] = None  # thread sending a fragmented message
        self._last_rx = monotonic()
        self._rx_bytes = 0
        self._ka_mark = -1
        self._ka_timer: Optional[Timer] = None
        self._close_timer: Optional[Timer] = None
        self._hs_timer: Optional[Timer] = None
        self._pings: Optional[Dict[bytes, threading.Event]] = None
        self._tls: Optional[ssl.SSLObject] = None
        self._tls_in: Optional[ssl.MemoryBIO] = None
        self._tls_out: Optional[ssl.MemoryBIO] = None
        self._poller: Any = None
        self._owns_fd = True
        self._held: List[bytes] = []  # frames the handler sent while more messages waited (batching)
        self._held_size = 0
        self._reader = 0  # thread that last took a message from recv()
        self._flushing = 0  # senders writing their backlog themselves (backpressure)

    # -- what the handler sees -------------------------------------------------------

    @property
    def path(self) -> Optional[str]:
        """Request path without the query string."""
        return self.request.path if self.request is not None else None

    @property
    def query(self) -> str:
        """Query string of the request (without '?'), or ''."""
        return self.request.query if self.request is not None else ""

    @property
    def request_headers(self) -> Optional[hs.Headers]:
        """Headers of the opening handshake (case-insensitive lookups)."""
        return self.request.headers if self.request is not None else None

    @property
    def subprotocol(self) -> Optional[str]:
        """The negotiated subprotocol, or None."""
        return self._conn.subprotocol if self._conn is not None else None

    @property
    def state(self) -> State:
        """CONNECTING, OPEN, CLOSING or CLOSED."""
        if self._conn is None:
            return State.CLOSED if self._dead else State.CONNECTING
        if self._dead and self._conn.state is not State.CLOSED:
            return State.CLOSED
        return self._conn.state

    @property
    def open(self) -> bool:
        """True while messages can be sent."""
        return self._conn is not None and self._conn.state is State.OPEN and not self._dead

    @property
    def close_code(self) -> Optional[int]:
        """How the connection ended: the close code, or None while it is not over.

        The peer's code after a closing handshake; ours when we failed it (1002,
        1007, 1009 from the protocol; 1011 keepalive timeout; 1008 slow consumer);
        1006 when TCP ended without a closing handshake.
        """
        if self._local is not None and (self._ended or self._dead):
            return self._local[0]
        return self._conn.close_code if self._conn is not None else None

    @property
    def close_reason(self) -> str:
        if self._local is not None and (self._ended or self._dead):
            return self._local[1]
        return self._conn.close_reason if self._conn is not None else ""

    @property
    def buffered_amount(self) -> int:
        """Bytes accepted by :meth:`send` that the kernel has not taken yet."""
        return self._buffered + self._held_size

    @property
    def socket(self) -> socket.socket:
        """The TCP socket (read-only use: options, addresses)."""
        return self._sock

    def __repr__(self) -> str:
        return f"<WebSocket {self.id} {self.state.name} {self.remote_address}>"

    def recv(self, timeout: Optional[float] = None) -> Data:
        """The next message: str for text, bytes for binary.

        Blocks until one arrives; raises :class:`~wsframe.ConnectionClosed`
        once the connection is over (after every message received before the
        end was returned) and ``TimeoutError`` after ``timeout`` seconds.
        """
        messages = self._messages
        if messages:
            if self._held and len(messages) == 1:  # the last waiting message: send the held replies first
                with self._lock:
                    self._write_locked(b"")
            try:
                message = messages.popleft()
            except IndexError:  # another thread calling recv() took it: wait below
                pass
            else:
                self._reader = threading.get_ident()
                return message
        if self._held:
            with self._lock:
                self._write_locked(b"")
        deadline = None if timeout is None else monotonic() + timeout
        if not self._read_lock.acquire(timeout=-1 if timeout is None else max(0.0, timeout)):
            raise TimeoutError(f"{self.id}: recv() timed out")
        try:
            while True:
                if messages:
                    self._reader = threading.get_ident()
                    return messages.popleft()
                if self._ended:
                    raise self._closed_error()
                n = self._read(deadline)
                if n >= 0:
                    self._feed(n)
        finally:
            self._read_lock.release()

    def __iter__(self) -> Iterator[Data]:
        """Messages until the connection closes (whatever the close code; see :attr:`close_code`)."""
        while True:
            try:
                yield self.recv()
            except ConnectionClosed:
                return

    def send(self, message: Union[str, bytes, bytearray, memoryview]) -> None:
        """Send one message: text for str, binary for bytes-like. Safe from any thread.

        Returns once the frame is written or buffered. While more than
        ``write_limit`` bytes wait for a slow client it blocks (backpressure);
        after ``send_timeout`` the client is dropped with close code 1008 and
        ``TimeoutError`` is raised. Raises :class:`~wsframe.ConnectionClosed`
        when the connection is closing or closed.

        Batching (``batch_writes``, on by default): when the handler sends
        while more received messages already wait for it, the frame is held
        and written in one system call with the following ones. Held frames
        go out before :meth:`recv` hands over the last waiting message (or
        reads the socket), at 64 KiB, and before anything else is written
        (another thread's send, a ping, a close). So a reply waits at most
        while the handler deals with messages that arrived with its request.
        """
        with self._lock:
            if self._fragmenting is not None and self._fragmenting != threading.get_ident():
                self._wait_locked(
                    lambda: self._fragmenting is None, "another thread's fragmented message", self._cfg.send_timeout
                )
            conn = self._conn
            if self._dead or conn is None:
                raise self._closed_error()
            try:
                frame = conn.send(message)
            except InvalidState:
                if conn.state is State.OPEN:
                    raise
                raise self._closed_error() from None
            if (
                self._messages
                and len(frame) < _HOLD_MAX
                and self._cfg.batch_writes
                and self._reader == threading.get_ident()
                and not self._out
            ):
                self._held.append(frame)
                self._held_size += len(frame)
                if self._held_size >= _HOLD_MAX:
                    self._write_locked(b"")
                return
            self._send_frame_locked(frame)

    def send_fragments(self, fragments: Iterable[Data]) -> None:
        """Send one message in pieces, a frame per item (all str, or all bytes-like).

        Nothing is sent for an empty iterable. If the iterable raises midway,
        the message cannot be completed: the connection is closed with 1011.
        Other threads' messages wait until this one is complete.
        """
        it = iter(fragments)
        try:
            current = next(it)
        except StopIteration:
            return
        me = threading.get_ident()
        with self._lock:
            if self._fragmenting is not None and self._fragmenting != me:
                self._wait_locked(
                    lambda: self._fragmenting is None, "another thread's fragmented message", self._cfg.send_timeout
                )
            if self._dead or self._conn is None or self._conn.state is not State.OPEN:
                raise self._closed_error()
            self._fragmenting = me
        complete = False
        try:
            for following in it:
                self._send_fragment(current, False)
                current = following
            self._send_fragment(current, True)
            complete = True
        finally:
            with self._lock:
                self._fragmenting = None
                if self._cond is not None:
                    self._cond.notify_all()
                if not complete and self._conn is not None and self._conn.state is State.OPEN:
                    self._fail_locked(1011, "incomplete fragmented message")

    def ping(self, data: Union[str, bytes, None] = None) -> threading.Event:
        """Send a ping; the returned event is set when its pong arrives.

        ``data`` defaults to 4 random bytes; a payload still waiting for its
        pong is a ValueError. The event is also set when the connection ends
        first, so ``wait()`` never outlives the connection: check :attr:`open`.
        Pongs are only seen while someone reads (the handler's ``recv()``),
        like every incoming frame.
        """
        if data is None:
            payload = os.urandom(4)
        else:
            payload = data.encode("utf-8") if isinstance(data, str) else memoryview(data).tobytes()
        with self._lock:
            conn = self._conn
            if self._dead or conn is None:
                raise self._closed_error()
            try:
                frame = conn.send_ping(payload)
            except InvalidState:
                raise self._closed_error() from None
            if self._pings is None:
                self._pings = {}
            elif payload in self._pings:
                raise ValueError("a ping with this payload is already waiting for its pong")
            event = self._pings[payload] = threading.Event()
            self._write_locked(frame)
        return event

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close with ``code`` and ``reason``, and wait (up to ``close_timeout``) for the peer's close.

        Safe from any thread and idempotent. Messages still unread are kept
        for :meth:`recv`; later data frames are discarded.
        """
        with self._lock:
            conn = self._conn
            if conn is None or conn.state is State.CONNECTING:
                self._abort_locked(1006, "closed before the handshake")
            elif conn.state is State.OPEN and not self._dead:
                frame = conn.close(code, reason)  # ValueError for a code that cannot be sent
                self._sent_close = (code, reason)
                self._write_locked(frame)
                self._arm_close_timer_locked()
        self._wait_closed()

    def __enter__(self) -> "WebSocket":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None or issubclass(exc_type, ConnectionClosed):
            self._close_quietly(1000, "")
        else:
            self._close_quietly(1011, "internal error")
        if not self._owns_fd:
            self._release(close_fd=False)

    # -- reading -----------------------------------------------------------------------

    def _buffer(self) -> memoryview:
        view = self._rview
        if view is None:
            self._rbuf = bytearray(_READ_MIN)
            view = self._rview = memoryview(self._rbuf)
        return view

    def _read(self, deadline: Optional[float]) -> int:
        """Read once into the receive buffer: bytes read, 0 at EOF, -1 for nothing (retry).

        Call with ``_read_lock`` held. Blocks until data arrives or ``deadline``
        (then TimeoutError). A timer shutting the socket down ends the wait (EOF).
        """
        view = self._buffer()
        flags = 0
        if self._out and _DONTWAIT and self._flush_while_waiting(deadline):
            flags = _DONTWAIT
        elif deadline is not None:
            self._wait_readable(deadline)
            flags = _DONTWAIT
        try:
            return self._sock.recv_into(view, 0, flags)
        except BlockingIOError:
            return -1
        except OSError:  # reset, or the socket was shut down/closed under us
            return 0

    def _flush_while_waiting(self, deadline: Optional[float]) -> bool:
        """Wait for input while writing our own backlog as the socket takes it.

        True when input is ready; False when the backlog is gone first (then
        wait for input as usual). The maintenance thread stands aside meanwhile.
        """
        with self._lock:
            self._flushing += 1
        poller = None
        try:
            if _HAS_POLL:
                poller = self._reader_poller()
                poller.modify(self._sock, select.POLLIN | select.POLLOUT)
            while True:
                with self._lock:
                    if not self._out or self._dead:
                        return False
                wait = 1.0 if deadline is None else deadline - monotonic()
                if wait <= 0:
                    raise TimeoutError(f"{self.id}: timed out")
                try:
                    if poller is not None:
                        ready = 0
                        for _, mask in poller.poll(math.ceil(min(wait, 1.0) * 1000)):
                            ready |= mask
                        readable = bool(ready & ~select.POLLOUT)
                        writable = bool(ready & select.POLLOUT)
                    else:
                        r, w, _ = select.select([self._sock], [self._sock], [], min(wait, 1.0))
                        readable, writable = bool(r), bool(w)
                except (OSError, ValueError):
                    return True  # closed under us: let recv_into report it
                if readable:
                    return True
                if writable:
                    with self._lock:
                        if not self._dead:
                            self._flush_locked()
        finally:
            if poller is not None:
                try:
                    poller.modify(self._sock, select.POLLIN)
                except (OSError, ValueError, KeyError):
                    pass
            with self._lock:
                self._flushing -= 1
                if self._out and not self._writing and not self._dead and not self._flushing:
                    self._writing = True
                    self._maint.watch_writable(self._sock, self._on_writable)

    def _reader_poller(self) -> Any:
        """The reader's poll object (POLLIN): only the thread holding ``_read_lock`` uses it."""
        poller = self._poller
        if poller is None:
            poller = self._poller = select.poll()
            poller.register(self._sock, select.POLLIN)
        return poller

    def _read_nowait(self) -> int:
        try:
            return self._sock.recv_into(self._buffer(), 0, _DONTWAIT)
        except BlockingIOError:
            return -1
        except OSError:
            return 0

    def _wait_readable(self, deadline: float) -> None:
        remaining = deadline - monotonic()
        if remaining <= 0:
            raise TimeoutError(f"{self.id}: timed out")
        try:
            if _HAS_POLL:
                ready = self._reader_poller().poll(math.ceil(remaining * 1000))
            else:
                ready = select.select([self._sock], [], [], remaining)[0]
        except (OSError, ValueError):  # closed under us: let recv_into report it
            return
        if not ready:
            raise TimeoutError(f"{self.id}: timed out")

    def _feed(self, n: int) -> None:
        """Hand ``n`` bytes of the receive buffer (0: EOF) to the connection; act on the events."""
        with self._lock:
            conn = self._conn
            assert conn is not None
            if n:
                self._rx_bytes += n
                self._last_rx = monotonic()
                if self._tls is None:
                    conn.receive_data(self._rview[:n])  # type: ignore[index]
                else:
                    self._tls_in.write(self._rview[:n])  # type: ignore[union-attr,index]
                    self._tls_pull_locked(conn.receive_data)
            else:
                conn.receive_data(b"")
            self._process_locked()
        if n == len(self._rbuf) and n < _READ_MAX:  # type: ignore[arg-type]
            self._rbuf = bytearray(2 * n)  # reads fill the buffer: use a bigger one
            self._rview = memoryview(self._rbuf)

    def _process_locked(self) -> None:
        conn = self._conn
        assert conn is not None
        messages = self._messages
        for event in conn.events():
            kind = type(event)
            if kind is TextMessage or kind is BinaryMessage:
                messages.append(event.data)  # type: ignore[union-attr]
            elif kind is Pong:
                self._on_pong_locked(event.payload)  # type: ignore[union-attr]
            elif kind is Closed:
                self._on_closed_locked()
        out = conn.data_to_send()  # pongs, close replies, failure closes
        if out:
            self._write_locked(out)
        if self._ended and not self._shut_after_flush:
            # After the closing handshake the server closes TCP first (RFC 6455 7.1.1).
            self._shut_after_flush = True
            if not self._out:
                self._shutdown_write_locked()

    def _on_pong_locked(self, payload: bytes) -> None:
        pings = self._pings
        if pings and payload in pings:
            for key in list(pings):  # a pong answers its ping and every earlier one
                pings.pop(key).set()
                if key == payload:
                    break

    def _wake_waiters_locked(self) -> None:
        """The connection is over: wake senders, close waiters and ping waiters (their pong will not come)."""
        if self._cond is not None:
            self._cond.notify_all()
        if self._closed_event is not None:
            self._closed_event.set()
        pings = self._pings
        if pings:
            self._pings = None
            for event in pings.values():
                event.set()

    def _on_closed_locked(self) -> None:
        self._ended = True
        Maintenance.cancel(self._ka_timer)
        Maintenance.cancel(self._close_timer)
        self._ka_timer = self._close_timer = None
        self._wake_waiters_locked()

    # -- writing -----------------------------------------------------------------------

    def _write_locked(self, data: bytes) -> None:
        """Send ``data`` (after any held frames) now as far as the socket takes it; buffer the rest."""
        if self._dead or self._wr_shut:
            return
        if self._held:
            held = self._held
            if len(data) < _HOLD_MAX:
                held.append(data)
                data = b"".join(held)
            else:  # no copy of a big frame: two writes
                self._held = []
                self._held_size = 0
                self._write_locked(b"".join(held))
                self._write_locked(data)
                return
            held.clear()
            self._held_size = 0
        elif not data:
            return
        if self._tls is not None:
            self._tls.write(data)
            data = self._tls_out.read()  # type: ignore[union-attr]
            if not data:
                return
        self._write_raw_locked(data)

    def _write_raw_locked(self, data: Any) -> None:
        if self._out:  # the maintenance thread is waiting for the socket: keep the order
            self._out.append(data)
            self._buffered += len(data)
            return
        if not _DONTWAIT:
            try:
                self._sock.sendall(data)
            except OSError as exc:
                self._lost_locked(exc)
            return
        try:
            n = self._sock.send(data, _DONTWAIT)
        except BlockingIOError:
            n = 0
        except OSError as exc:
            self._lost_locked(exc)
            return
        if n < len(data):
            rest = memoryview(data)[n:] if n else data
            self._out.append(rest)
            self._buffered += len(rest)
            if not self._writing and not self._flushing:
                self._writing = True
                self._maint.watch_writable(self._sock, self._on_writable)

    def _on_writable(self) -> bool:
        """Maintenance thread: the socket can take more. True when there is nothing left to write."""
        with self._lock:
            if self._flushing:  # a sender writes its backlog itself; it re-registers if needed
                self._writing = False
                return True
            if not self._dead:
                self._flush_locked()
            done = self._dead or not self._out
            if done:
                self._writing = False
            return done

    def _flush_locked(self) -> None:
        out = self._out
        sock = self._sock
        while out:
            try:
                if len(out) == 1 or not _SENDMSG:
                    n = sock.send(out[0], _DONTWAIT)
                else:
                    n = sock.sendmsg(list(itertools.islice(out, _IOV_BATCH)), (), _DONTWAIT)
            except BlockingIOError:
                break
            except OSError as exc:
                self._lost_locked(exc)
                return
            self._buffered -= n
            while n:
                head = out[0]
                size = len(head)
                if n >= size:
                    out.popleft()
                    n -= size
                else:
                    out[0] = memoryview(head)[n:]
                    n = 0
        if self._cond is not None and self._buffered <= self._cfg.write_limit:
            self._cond.notify_all()
        if not out and self._shut_after_flush:
            self._shutdown_write_locked()

    def _shutdown_write_locked(self) -> None:
        self._held.clear()  # nothing goes out after our FIN
        self._held_size = 0
        if not self._wr_shut and not self._dead:
            self._wr_shut = True
            try:
                self._sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def _wait_locked(self, ready: Callable[[], bool], what: str, timeout: Optional[float]) -> None:
        """Wait (under ``_lock``) until ``ready()`` or the end, at most ``timeout``; TimeoutError after."""
        cond = self._cond
        if cond is None:
            cond = self._cond = threading.Condition(self._lock)
        deadline = None if timeout is None else monotonic() + timeout
        while not ready() and not self._dead:
            if deadline is None:
                cond.wait()
                continue
            remaining = deadline - monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{self.id}: waited {timeout} s for {what}")
            cond.wait(remaining)

    def _send_frame_locked(self, frame: bytes) -> None:
        """Write a frame for send(); over ``write_limit``, write the backlog here (backpressure).

        The sending thread waits for the socket itself (poll) and writes until
        the backlog is back under ``write_limit``, at most ``send_timeout``:
        no hand-off to the maintenance thread on the hot path of big messages.
        What is left under the limit is flushed by the maintenance thread.
        Other threads never wait for this one: they append to the buffer.
        """
        limit = self._cfg.write_limit
        if self._buffered + len(frame) <= limit or not _DONTWAIT:
            self._write_locked(frame)
            return
        self._flushing += 1
        try:
            self._write_locked(frame)
            self._flush_until_locked(limit)
        finally:
            self._flushing -= 1
            if self._out and not self._writing and not self._dead and not self._flushing:
                self._writing = True
                self._maint.watch_writable(self._sock, self._on_writable)
        if self._dropped or self._dead:
            raise self._closed_error()

    def _flush_until_locked(self, limit: int) -> None:
        timeout = self._cfg.send_timeout
        deadline = None if timeout is None else monotonic() + timeout
        while self._buffered > limit and not self._dead:
            wait = 1.0
            if deadline is not None:
                wait = deadline - monotonic()
                if wait <= 0:
                    logger.warning("%s dropped: the client does not read (send_timeout)", self.id)
                    self._drop_locked("send timeout: the client does not read")
                    raise TimeoutError(f"{self.id}: send() waited {timeout} s for the client to read")
            self._lock.release()
            try:
                self._wait_writable(min(wait, 1.0))
            finally:
                self._lock.acquire()
            if not self._dead:
                self._flush_locked()

    def _wait_writable(self, timeout: float) -> None:
        try:
            if _HAS_POLL:  # a poll object per wait: several senders may wait at once
                poller = select.poll()
                poller.register(self._sock, select.POLLOUT)
                poller.poll(math.ceil(timeout * 1000))
            else:
                select.select([], [self._sock], [], timeout)
        except (OSError, ValueError):  # closed under us: the next send reports it
            pass

    def _drop_locked(self, reason: str) -> None:
        """Close a client that does not read, without waiting for it (broadcast, send timeout).

        Whole frames still waiting in our buffer are discarded (memory is freed
        at once) and the close frame goes right after the frame being written.
        """
        self._dropped = True
        if self._local is None:
            self._local = (CLOSE_SLOW_CONSUMER, reason)
        conn = self._conn
        if self._dead or conn is None or conn.state is not State.OPEN:
            self._abort_locked(CLOSE_SLOW_CONSUMER, reason)
            return
        self._held.clear()  # not written yet: not even encrypted
        self._held_size = 0
        if self._tls is None and len(self._out) > 1:  # TLS records cannot be dropped
            head = self._out[0]
            self._out.clear()
            self._out.append(head)
            self._buffered = len(head)
        self._sent_close = (CLOSE_SLOW_CONSUMER, reason)
        self._write_locked(conn.close(CLOSE_SLOW_CONSUMER, reason))
        self._arm_close_timer_locked()
        if self._cond is not None:
            self._cond.notify_all()

    def _send_encoded(self, frame: bytes) -> bool:
        """Broadcast: queue an encoded frame without ever blocking; drop the client if it lags."""
        with self._lock:
            conn = self._conn
            if self._dead or conn is None or conn.state is not State.OPEN or self._fragmenting is not None:
                return False
            if self._buffered > self._cfg.write_limit:
                logger.warning(
                    "%s dropped: %d bytes wait for a client that does not read (write_limit %d)",
                    self.id, self._buffered, self._cfg.write_limit,
                )
                self._drop_locked("slow consumer: send buffer full")
                return False
            try:
                self._write_locked(conn.send_encoded(frame))
            except InvalidState:
                return False
            return True

    def _send_fragment(self, data: Data, final: bool) -> None:
        with self._lock:
            conn = self._conn
            if self._dead or conn is None:
                raise self._closed_error()
            try:
                frame = conn.send_fragment(data, final)
            except InvalidState:
                raise self._closed_error() from None
            self._send_frame_locked(frame)

    # -- ending ------------------------------------------------------------------------

    def _closed_error(self) -> ConnectionClosed:
        code = self.close_code
        if code is not None:
            return ConnectionClosed(code, self.close_reason)
        if self._local is not None:
            return ConnectionClosed(*self._local)
        if self._sent_close is not None:
            return ConnectionClosed(*self._sent_close)
        return ConnectionClosed(1006, "")

    def _lost_locked(self, exc: OSError) -> None:
        logger.debug("%s connection lost: %s", self.id, exc)
        self._abort_locked(1006, "connection lost")

    def _abort_locked(self, code: int, reason: str) -> None:
        """End the transport now: shutdown() wakes a blocked reader with EOF; the owner closes the fd."""
        if self._local is None:
            self._local = (code, reason)
        if self._dead:
            return
        self._dead = True
        self._out.clear()
        self._buffered = 0
        self._held.clear()
        self._held_size = 0
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        for timer in (self._ka_timer, self._close_timer, self._hs_timer):
            Maintenance.cancel(timer)
        self._ka_timer = self._close_timer = self._hs_timer = None
        self._wake_waiters_locked()

    def _fail_locked(self, code: int, reason: str) -> None:
        """Send a close frame (best effort) and end the transport without waiting for the reply."""
        if self._local is None:
            self._local = (code, reason)
        conn = self._conn
        if conn is not None and conn.state is State.OPEN and not self._dead:
            self._sent_close = (code, reason)
            self._write_locked(conn.close(code, reason))
        self._abort_locked(code, reason)

    def _arm_close_timer_locked(self) -> None:
        timeout = self._cfg.close_timeout
        if self._close_timer is None and timeout is not None:
            self._close_timer = self._maint.call_later(timeout, self._close_timed_out)

    def _close_timed_out(self) -> None:
        with self._lock:
            self._close_timer = None
            if not self._ended and not self._dead:
                logger.info("%s close handshake timed out", self.id)
                self._abort_locked(1006, "close handshake timed out")

    def _wait_closed(self) -> None:
        """Read until the peer's close arrives (or close_timeout), unless another thread is reading."""
        timeout = self._cfg.close_timeout
        deadline = None if timeout is None else monotonic() + timeout + 1.0  # the close timer fires first
        if self._read_lock.acquire(blocking=False):
            try:
                while not self._ended and self._conn is not None:
                    try:
                        n = self._read(deadline)
                    except TimeoutError:
                        with self._lock:
                            self._abort_locked(1006, "close handshake timed out")
                        n = 0
                    if n >= 0:
                        self._feed(n)
            finally:
                self._read_lock.release()
            return
        with self._lock:
            if self._ended or self._dead:
                return
            if self._closed_event is None:
                self._closed_event = threading.Event()
            event = self._closed_event
        event.wait(None if deadline is None else max(0.0, deadline - monotonic()))

    def _going_away(self) -> None:
        """Server shutdown: close with 1001 without waiting (the handler's reads finish it)."""
        with self._lock:
            conn = self._conn
            if conn is None:
                self._abort_locked(1001, "server shutting down")
            elif conn.state is State.OPEN and not self._dead:
                self._sent_close = (1001, "server shutting down")
                self._write_locked(conn.close(1001, "server shutting down"))
                self._arm_close_timer_locked()

    def _close_quietly(self, code: int, reason: str) -> None:
        try:
            self.close(code, reason)
        except Exception:  # pragma: no cover - best effort at the end of a connection
            logger.debug("%s close failed", self.id, exc_info=True)

    def _release(self, close_fd: bool = True) -> None:
        """The owner's last step: let buffered bytes drain (up to close_timeout), then let go of the socket."""
        with self._lock:
            self._write_locked(b"")  # held frames, if any
            if self._out and not self._dead:
                try:
                    self._wait_locked(lambda: not self._out, "the last bytes", self._cfg.close_timeout or 10.0)
                except TimeoutError:
                    pass
            for timer in (self._ka_timer, self._close_timer, self._hs_timer):
                Maintenance.cancel(timer)
            self._ka_timer = self._close_timer = self._hs_timer = None
            writing = self._writing
            self._dead = True
            self._out.clear()
            self._buffered = 0
            self._held.clear()
            self._held_size = 0
            self._wake_waiters_locked()
        if writing:
            self._maint.forget(self._sock)
        if close_fd:
            try:  # unread input would make close() send a reset that can eat our last frames
                for _ in range(16):
                    if self._sock.recv_into(self._buffer(), 0, _DONTWAIT) <= 0:
                        break
            except OSError:
                pass
            self._sock.close()
        self._rbuf = self._rview = None
        self._poller = None

    # -- keepalive (maintenance thread) --------------------------------------------------

    def _start_keepalive_locked(self) -> None:
        interval = self._cfg.ping_interval
        if interval is not None:
            self._ka_timer = self._maint.call_at(self._last_rx + interval, self._keepalive)

    def _keepalive(self) -> None:
        """Ping a connection that has been silent for ping_interval.

        Any bytes received count as a sign of life, so busy connections are
        never pinged.
        """
        interval, timeout = self._cfg.ping_interval, self._cfg.ping_timeout
        assert interval is not None  # no keepalive timer without it
        with self._lock:
            conn = self._conn
            if self._ended or self._dead or conn is None or conn.state is not State.OPEN:
                return
            now = monotonic()
            due = self._last_rx + interval
            if now < due:
                self._ka_timer = self._maint.call_at(due, self._keepalive)
                return
            self._write_locked(conn.send_ping(b""))
            self._ka_mark = self._rx_bytes
            if timeout is None:
                self._ka_timer = self._maint.call_at(now + interval, self._keepalive)
            else:
                self._ka_timer = self._maint.call_at(now + timeout, self._keepalive_check)

    def _keepalive_check(self) -> None:
        """ping_timeout after a keepalive ping: alive if anything was received since.

        Pongs are parsed by whoever reads the socket. When the handler is busy
        (not in ``recv()``), this thread reads what is there on its behalf,
        under the same read lock, so a busy handler does not make a live peer
        look dead; the messages read wait in the connection's queue for the
        handler. Only silence with nobody able to read it counts as death.
        """
        with self._lock:
            if self._ka_alive_locked():
                return
        if _DONTWAIT and self._read_lock.acquire(blocking=False):
            try:
                n = self._read_nowait()
                if n >= 0:
                    self._feed(n)
            finally:
                self._read_lock.release()
        with self._lock:
            if self._ka_alive_locked():
                return
            logger.info("%s keepalive ping timeout: closing with 1011", self.id)
            self._fail_locked(1011, "keepalive ping timeout")

    def _ka_alive_locked(self) -> bool:
        conn = self._conn
        if self._ended or self._dead or conn is None or conn.state is not State.OPEN:
            return True  # nothing to do
        if self._rx_bytes != self._ka_mark:
            self._ka_timer = self._maint.call_at(self._last_rx + (self._cfg.ping_interval or 0.0), self._keepalive)
            return True
        return False

    # -- opening -----------------------------------------------------------------------

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

    def _tls_pull_locked(self, sink: Callable[[bytes], None]) -> None:
        """Decrypt what the incoming BIO holds; ``sink(b"")`` at the end of the TLS stream."""
        tls = self._tls
        assert tls is not None
        try:
            while True:
                data = tls.read(65536)
                if not data:
                    sink(b"")
                    break
                sink(data)
        except ssl.SSLWantReadError:
            pass
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            sink(b"")
        except ssl.SSLError as exc:
            logger.info("%s TLS error: %s", self.id, exc)
            sink(b"")
            self._abort_locked(1006, "TLS error")
        out = self._tls_out.read()  # type: ignore[union-attr]  # e.g. post-handshake messages
        if out:
            self._write_raw_locked(out)

    def _tls_handshake(self, context: ssl.SSLContext) -> bool:
        self._tls_in = ssl.MemoryBIO()
        self._tls_out = ssl.MemoryBIO()
        tls = context.wrap_bio(self._tls_in, self._tls_out, server_side=True)
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                pass
            with self._lock:
                out = self._tls_out.read()
                if out:
                    self._write_raw_locked(out)
            n = self._read(None)
            if n == 0:
                return False
            if n > 0:
                self._tls_in.write(self._rview[:n])  # type: ignore[index]
        with self._lock:
            out = self._tls_out.read()
            if out:
                self._write_raw_locked(out)
            self._tls = tls
        return True

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
            received: List[bytes] = []
            while True:
                chunk = self._read_chunk()
                if not chunk:
                    return False
                received.append(chunk)
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
            if not _wants_websocket(request):
                self._respond(self._http_response(request))
                return False
            conn = ServerConnection(
                origins=cfg.origins,
                subprotocols=cfg.subprotocols,
                max_request_line=cfg.max_request_line,
                max_request_headers=cfg.max_request_headers,
                max_request_size=cfg.max_request_size,
                max_message_size=cfg.max_message_size,
                backend=cfg.backend,
            )
            conn.receive_data(b"".join(received))
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
                self.request = conn.request  # one parsed copy per connection, not two
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

    def _adopt(self, conn: Connection, request: hs.Request, response: bytes, leftover: bytes) -> None:
        """Open over a socket whose HTTP request someone else read (``upgrade()``)."""
        self._owns_fd = False
        self.request = request
        with self._lock:
            self._write_locked(response)
            self._conn = conn
            self._last_rx = monotonic()
            self._start_keepalive_locked()
            if leftover:
                conn.receive_data(leftover)
                self._process_locked()


def _wants_websocket(request: hs.Request) -> bool:
    """True for a request asking to upgrade to WebSocket (validated further by the core)."""
    return any(
        token.strip(" \t").lower() == "websocket"
        for value in request.headers.get_all("Upgrade")
        for token in value.split(",")
    )
