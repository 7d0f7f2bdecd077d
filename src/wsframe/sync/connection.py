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

The class is assembled from mixins, one job per module, sharing the state
declared once in ``WebSocket.__slots__`` and the locks above: ``_transport``
moves bytes (socket, TLS, outgoing buffer), ``_opening`` runs the opening
handshake, ``_timers`` the keepalive and close timers. This module keeps the
public API: messages in and out, backpressure, and how a connection ends.
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import ssl
import threading
from collections import deque
from time import monotonic
from typing import Any, Callable, Deque, Dict, Iterable, Iterator, List, Optional, Tuple, Union

from ..protocol import handshake as hs
from ..options import Config
from .maintenance import Maintenance, Timer
from .opening import _Opening
from .timers import _Timers
from .transport import _DONTWAIT, _HOLD_MAX, _READ_MAX, _Transport
from ..protocol.connection import Connection, State
from ..protocol.errors import ConnectionClosed, InvalidState
from ..protocol.events import BinaryMessage, Closed, Pong, TextMessage

__all__ = ["WebSocket", "Config", "Data"]

logger = logging.getLogger("wsframe.server")

Data = Union[str, bytes]

_ids = itertools.count(1)

#: Close code for a client dropped because it does not read fast enough.
CLOSE_SLOW_CONSUMER = 1008


class WebSocket(_Opening, _Timers, _Transport):
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

    # -- receiving ---------------------------------------------------------------------

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

    # -- sending -----------------------------------------------------------------------

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
