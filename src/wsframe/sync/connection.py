"""A WebSocket connection used with blocking calls, either role: what handlers and clients hold.

It is composed of the sans-I/O :class:`~wsframe.protocol.Connection` (the
protocol), a :class:`~.transport.Transport` (the socket, TLS, the bounded
outgoing buffer) and :class:`~.timers.Timers` (keepalive, handshake and
close deadlines), and adds threads and locks, in one place:

* The socket is read by the thread that calls :meth:`WebSocket.recv`
  (normally the handler thread) holding ``_read_lock``; there is no reader
  thread per connection. Timers read on a busy handler's behalf only when
  that lock is free.
* Everything else (the protocol state, the outgoing buffer, the flags) is
  guarded by ``_lock``, held only for work that never waits: feeding
  received bytes, sending without blocking. So :meth:`send` is safe from any
  thread, and frames from different threads never interleave.
* Messages are taken from the protocol as the handler asks for them: the
  ones already received ahead of the next other event in one call
  (``Connection.take_messages``), handed over by :meth:`WebSocket.recv`
  without a lock; a protocol violation or a close frame that arrived behind
  a message takes effect only after the handler got that message, so it can
  answer it, and its answer goes out before the close frame.
* Only the owner thread closes the file descriptor, at the end, under the
  read lock: timers end a connection with ``socket.shutdown()``, which wakes
  a blocked reader, so a descriptor number is never reused under a thread.
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import threading
from collections import deque
from time import monotonic
from typing import Any, Callable, Deque, Dict, Iterable, Iterator, List, Optional, Tuple, Union

from ..options import Options
from ..protocol import handshake as hs
from ..protocol.connection import GATHER_MIN, Connection, SharedMessage, State
from ..protocol.constants import CLOSE_ABNORMAL, CLOSE_INTERNAL_ERROR, CLOSE_POLICY_VIOLATION
from ..protocol.errors import ConnectionClosed, InvalidState
from ..protocol.events import BinaryMessage, Closed, Event, Pong, TextMessage
from ..protocol.extensions import Extension
from .maintenance import Maintenance
from .timers import Timers
from .transport import HOLD_MAX, Transport

__all__ = ["WebSocket", "Data", "CLOSE_SLOW_CONSUMER"]

logger = logging.getLogger("wsframe.server")

#: A message: str for text, bytes for binary.
Data = Union[str, bytes]
Sendable = Union[str, bytes, bytearray, memoryview]

_ids = itertools.count(1)

#: Close code for a peer dropped because it does not read fast enough.
CLOSE_SLOW_CONSUMER = CLOSE_POLICY_VIOLATION


class WebSocket:
    """One WebSocket connection, used with blocking calls.

    ``for message in ws`` / :meth:`recv` read (str for text, bytes for
    binary); :meth:`send` writes from any thread. After the end,
    :attr:`close_code` and :attr:`close_reason` say how it ended. ``id``
    (``"ws-17"``) appears on every log line about the connection.
    """

    __slots__ = (
        "id", "remote_address", "request", "response", "_options", "_lock", "_read_lock", "_cond",
        "_closed_event", "_batch", "_messages", "_messages_size", "_conn", "transport", "timers", "_ended", "_local", "_sent_close",
        "_fragmenting", "_pings", "_pong_watch", "_reader", "_release_on_close", "_events", "_more",
        "__weakref__",
    )

    def __init__(
        self,
        sock: socket.socket,
        options: Options,
        maintenance: Maintenance,
        remote_address: Any = None,
        *,
        owns_socket: bool = True,
        nonblocking: Optional[bool] = None,
        release_on_close: bool = False,
    ) -> None:
        self.id = f"ws-{next(_ids)}"
        self.remote_address = remote_address
        #: The opening handshake request: the client's (server side), ours (client side).
        self.request: Optional[hs.Request] = None
        #: The server's 101 response (client side), or None.
        self.response: Optional[hs.Response] = None
        self._options = options
        self._lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._cond: Optional[threading.Condition] = None  # on _lock; made when someone first waits
        self._closed_event: Optional[threading.Event] = None
        # Messages taken from the protocol in one call (Connection.take_messages), for recv() to hand
        # over without a lock; from one read, so bounded by the read buffer. Older than _messages.
        self._batch: Deque[Data] = deque()
        self._messages: Deque[Data] = deque()  # read on the handler's behalf (timers, closing)
        self._messages_size = 0  # their bytes: reading on behalf stops above a bound
        self._conn: Optional[Connection] = None
        # The protocol's events() generator, kept across pulls: a message at a time without a new
        # generator (and its close) per message; None once exhausted, a new one for the next pull.
        self._events: Optional[Iterator[Event]] = None
        # conn.has_pending_input as the last message was taken (False after any other pull): send()
        # holds a reply for batching only when more input was already there.
        self._more = False
        self.transport = Transport(
            sock, maintenance, self._lock, write_limit=options.write_limit, on_lost=self._lost_locked,
            on_progress=self._notify_locked, nonblocking=nonblocking, owns_socket=owns_socket, label=self.id,
        )
        self.timers = Timers(self, maintenance, self._lock, options)
        self._ended = False  # the Closed event was seen: nothing more comes in
        self._local: Optional[Tuple[int, str]] = None  # why we ended it, when we did (wins over 1006)
        self._sent_close: Optional[Tuple[int, str]] = None
        self._fragmenting: Optional[int] = None  # thread sending a fragmented message
        self._pings: Optional[Dict[bytes, threading.Event]] = None
        self._pong_watch = False  # the maintenance thread watches for input while pings wait
        self._reader = 0  # thread that last took a message from recv()
        # True when no server thread will release the socket: close() and ``with`` do (clients, upgrade()).
        self._release_on_close = release_on_close

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
        """Headers of the opening handshake request (case-insensitive lookups)."""
        return self.request.headers if self.request is not None else None

    @property
    def response_headers(self) -> Optional[hs.Headers]:
        """Headers of the server's 101 response (client side), or None."""
        return self.response.headers if self.response is not None else None

    @property
    def extensions(self) -> List[Extension]:
        """The extensions agreed in the handshake: a :class:`~wsframe.protocol.deflate.PerMessageDeflate`
        (its negotiated parameters as attributes) when compression is on, else none."""
        return list(self._conn.extensions) if self._conn is not None else []

    @property
    def subprotocol(self) -> Optional[str]:
        """The negotiated subprotocol, or None."""
        return self._conn.subprotocol if self._conn is not None else None

    @property
    def state(self) -> State:
        """CONNECTING, OPEN, CLOSING or CLOSED."""
        conn = self._conn
        if conn is None:
            return State.CLOSED if self.transport.dead else State.CONNECTING
        if self.transport.dead and conn.state is not State.CLOSED:
            return State.CLOSED
        return conn.state

    @property
    def open(self) -> bool:
        """True while messages can be sent."""
        return self._conn is not None and self._conn.state is State.OPEN and not self.transport.dead

    @property
    def close_code(self) -> Optional[int]:
        """How the connection ended: the close code, or None while it is not over.

        The peer's code after a closing handshake; ours when we failed it (1002,
        1007, 1009 from the protocol; 1011 keepalive timeout; 1008 slow consumer);
        1006 when TCP ended without a closing handshake.
        """
        if self._local is not None and (self._ended or self.transport.dead):
            return self._local[0]
        return self._conn.close_code if self._conn is not None else None

    @property
    def close_reason(self) -> str:
        """The reason that goes with :attr:`close_code` ('' when none was given)."""
        if self._local is not None and (self._ended or self.transport.dead):
            return self._local[1]
        return self._conn.close_reason if self._conn is not None else ""

    @property
    def buffered_amount(self) -> int:
        """Bytes accepted by :meth:`send` that the kernel has not taken yet."""
        return self.transport.buffered

    @property
    def socket(self) -> socket.socket:
        """The TCP socket (read-only use: options, addresses)."""
        return self.transport.sock

    def __repr__(self) -> str:
        return f"<WebSocket {self.id} {self.state.name} {self.remote_address}>"

    # -- receiving ---------------------------------------------------------------------

    def recv(self, timeout: Optional[float] = None) -> Data:
        """The next message: str for text, bytes for binary.

        Blocks until one arrives; raises :class:`~wsframe.ConnectionClosed`
        once the connection is over (after every message received before the
        end was returned) and ``TimeoutError`` after ``timeout`` seconds.
        """
        batch = self._batch
        if batch and not self._pings:  # taken from the protocol already: no lock (deque.popleft is atomic)
            try:
                taken = batch.popleft()
            except IndexError:  # another thread took the last one
                pass
            else:
                self._reader = threading.get_ident()
                if not batch:
                    with self._lock:
                        self._last_of_batch_locked()
                return taken
        lock = self._lock
        lock.acquire()  # a message already here needs no read lock (acquire/release: half the cost of `with`)
        try:
            message = self._next_message_locked()
            if message is not None:
                self._reader = threading.get_ident()
                if self._pings:
                    self._watch_for_pongs_locked()
                return message
        finally:
            lock.release()
        deadline = None if timeout is None else monotonic() + timeout
        if not self._read_lock.acquire(timeout=-1 if timeout is None else max(0.0, timeout)):
            raise TimeoutError(f"{self.id}: recv() timed out")
        try:
            while True:
                with self._lock:
                    message = self._next_message_locked()
                    if message is not None:
                        self._reader = threading.get_ident()
                        return message
                    if self._ended or (self.transport.dead and self._conn is None):
                        raise self._closed_error()
                    if self.transport.over_limit:
                        self._stop_reading_locked()
                        continue
                    if self.transport.holding:  # replies held for batching go out before we wait
                        self.transport.write_locked(b"")
                n = self.transport.read(deadline)
                if n >= 0:
                    self._feed(n)
        finally:
            self._read_lock.release()
            if self._pings:
                with self._lock:
                    self._watch_for_pongs_locked()

    def _stop_reading_locked(self) -> None:
        """Over ``write_limit``: read nothing until the peer takes our bytes; drop it after ``send_timeout``.

        What we queue includes our automatic answers (pongs, close replies):
        a peer that sends without reading is held back by TCP, not by our memory.
        """
        if not self.transport.flush_below_locked(self.transport.write_limit, self._options.send_timeout):
            logger.warning("%s dropped: %d bytes wait for a peer that does not read (write_limit %d)",
                           self.id, self.transport.buffered, self._options.write_limit)
            self._drop_locked("slow consumer: the peer does not read")

    def __iter__(self) -> Iterator[Data]:
        """Messages until the connection closes (whatever the close code; see :attr:`close_code`)."""
        while True:
            try:
                yield self.recv()
            except ConnectionClosed:
                return

    def _next_message_locked(self) -> Optional[Data]:
        """The next message, taking events from the protocol up to it; None when none is complete."""
        self._more = False
        batch = self._batch
        if not batch:
            if self._messages:  # read on behalf: whatever the protocol had is in the queue
                queued = self._messages.popleft()
                self._messages_size -= len(queued)
                return queued
            conn = self._conn
            if conn is None or self._ended:
                return None
            taken = conn.take_messages()  # the messages ahead of the next event, in one call
            if not taken:
                return self._next_event_locked(conn)
            batch.extend(taken)
        message = batch.popleft()
        if batch:  # more already here: send() may hold the reply for batching
            self._more = True
            return message
        self._last_of_batch_locked()
        return message

    def _last_of_batch_locked(self) -> None:
        """The batch's last message is being handed over: held replies go out unless more input is here."""
        conn = self._conn
        more = self._more = bool(self._messages) or (conn is not None and conn.has_pending_input)
        if not more:
            self.transport.write_locked(b"")

    def _next_event_locked(self, conn: Connection) -> Optional[Data]:
        """The next message by way of the protocol's events, acting on the others up to it."""
        events = self._events
        if events is None:
            events = self._events = conn.events()
        event = next(events, None)
        if event is None:  # nothing new: what the protocol may have left to write, then wait
            self._events = None
            self._answer_locked(conn)
            return None
        kind = type(event)
        if kind is TextMessage or kind is BinaryMessage:
            # A message first: the protocol wrote nothing on its own for it (it answers control
            # frames and failures only, and each of those comes with its own event).
            message: Optional[Data] = event.data  # type: ignore[union-attr]
        else:
            self._on_event_locked(event, kind)
            message = self._pull_locked(until_message=True)  # on the same events, answers written
        if message is not None:
            self._last_of_batch_locked()
        return message

    def _feed(self, n: int) -> None:
        """Hand ``n`` bytes of the receive buffer (0: EOF) to the protocol (read lock held)."""
        with self._lock:
            conn = self._conn
            assert conn is not None
            if n:
                self.timers.received_locked(n)
            self.transport.deliver_locked(n, conn.receive_data)
            if not n or self._messages:
                self._pull_locked(until_message=False)

    def _pull_locked(self, until_message: bool) -> Optional[Data]:
        """Act on the protocol's events; stop at the first message when ``until_message``, else queue them.

        Writes what the protocol answered on its own (pongs, close replies).
        """
        conn = self._conn
        assert conn is not None
        message: Optional[Data] = None
        events = self._events
        if events is None:
            events = self._events = conn.events()
        for event in events:
            kind = type(event)
            if kind is TextMessage or kind is BinaryMessage:
                data: Data = event.data  # type: ignore[union-attr]
                if until_message:
                    message = data
                    break
                self._messages.append(data)
                self._messages_size += len(data)
            else:
                self._on_event_locked(event, kind)
        else:
            self._events = None  # exhausted: the next pull starts a new one
        self._more = False
        self._answer_locked(conn)
        return message

    def _on_event_locked(self, event: Event, kind: type) -> None:
        """Act on an event other than a message (pings are answered by the protocol itself)."""
        if kind is Pong:
            self._on_pong_locked(event.payload)  # type: ignore[union-attr]
        elif kind is Closed:
            self._on_closed_locked()

    def _answer_locked(self, conn: Connection) -> None:
        """Write what the protocol answered on its own (pongs, close replies); our FIN when it is time."""
        out = conn.data_to_send()
        if out:
            self.transport.write_locked(out)
        if conn.should_close_transport:
            self.transport.close_after_flush_locked()

    def _on_pong_locked(self, payload: bytes) -> None:
        pings = self._pings
        if pings and payload in pings:
            for key in list(pings):  # a pong answers its ping and every earlier one
                pings.pop(key).set()
                if key == payload:
                    break

    def _on_closed_locked(self) -> None:
        self._ended = True
        self.timers.cancel_locked()
        self._wake_waiters_locked()

    def _notify_locked(self) -> None:
        if self._cond is not None:
            self._cond.notify_all()

    def _wake_waiters_locked(self) -> None:
        """The connection is over: wake senders, close waiters and ping waiters (their pong will not come)."""
        self._notify_locked()
        if self._closed_event is not None:
            self._closed_event.set()
        pings = self._pings
        if pings:
            self._pings = None
            for event in pings.values():
                event.set()

    def read_on_behalf(self, wait: float = 0.0) -> bool:
        """Read what arrived without the handler, if nobody else is reading; True if it read.

        Messages read wait in the queue for :meth:`recv`. One read at a time,
        and none while the queue holds more than ``write_limit`` (at least
        one read buffer) or our outgoing buffer is over ``write_limit``: TCP
        flow control holds the peer back, not our memory.
        """
        if self._behalf_full():
            return False
        acquired = self._read_lock.acquire(timeout=wait) if wait > 0 else self._read_lock.acquire(False)
        if not acquired:
            return False
        try:
            if self._conn is None or self._ended:
                return False
            n = self.transport.read_nowait()
            if n < 0:
                return False
            with self._lock:
                if n:
                    self.timers.received_locked(n)
                self.transport.deliver_locked(n, self._conn.receive_data)
                self._pull_locked(until_message=False)
            return True
        finally:
            self._read_lock.release()

    def _behalf_full(self) -> bool:
        return self._messages_size > max(self._options.write_limit, 256 * 1024)

    # -- sending -----------------------------------------------------------------------

    def send(self, message: Sendable, compress: Optional[bool] = None) -> None:
        """Send one message: text for str, binary for bytes-like. Safe from any thread.

        ``compress`` overrides the compression threshold for this message
        (False: never compressed, True: compressed even if small) when
        permessage-deflate was agreed.

        Returns once the frame is written or queued. While more than
        ``write_limit`` bytes wait for a slow peer it blocks (backpressure);
        after ``send_timeout`` the peer is dropped with close code 1008 and
        ``TimeoutError`` is raised. Raises :class:`~wsframe.ConnectionClosed`
        when the connection is closing or closed.

        Batching (``batch_writes``, on by default): when the handler sends
        while more received input already waits for it, the frame is held
        and written in one system call with the following ones. Held frames
        go out before :meth:`recv` hands over the last waiting message (or
        reads the socket), at 64 KiB, and before anything else is written.
        """
        lock = self._lock
        lock.acquire()  # once per message: acquire/release cost half of `with`
        try:
            if self._fragmenting is not None:
                self._wait_own_turn_locked()
            conn = self._conn
            transport = self.transport
            if transport.dead or conn is None:
                raise self._closed_error()
            try:
                if len(message) < GATHER_MIN or transport.tls:  # (TLS copies into records anyway)
                    frame = conn.send(message, compress)
                else:  # a large payload is written after its header, not copied behind it
                    *head, frame = conn.send_parts(message, compress)
                    if head:
                        transport.hold_locked(head[0])
            except InvalidState:
                if conn.state is State.OPEN:
                    raise
                raise self._closed_error() from None
            if (
                self._more  # more input already here (as of the handler's last recv)
                and len(frame) < HOLD_MAX
                and self._options.batch_writes
                and self._reader == threading.get_ident()
                and transport.hold_unless_backlogged_locked(frame)
            ):
                return
            self._send_frame_locked(frame)
        finally:
            lock.release()

    def send_fragments(self, fragments: Iterable[Sendable], compress: Optional[bool] = None) -> None:
        """Send one message in pieces, a frame per item (all str, or all bytes-like).

        With permessage-deflate, the first piece decides whether the message is
        compressed (its size against the threshold, or ``compress``).

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
            self._wait_own_turn_locked()
            if self.transport.dead or self._conn is None or self._conn.state is not State.OPEN:
                raise self._closed_error()
            self._fragmenting = me
        complete = False
        try:
            for following in it:
                self._send_fragment(current, False, compress)
                current = following
            self._send_fragment(current, True, compress)
            complete = True
        finally:
            with self._lock:
                self._fragmenting = None
                self._notify_locked()
                if not complete and self._conn is not None and self._conn.state is State.OPEN:
                    # Close (not abort): what is already queued, ours and other threads', still goes out.
                    self._local = self._local or (CLOSE_INTERNAL_ERROR, "incomplete fragmented message")
                    self._start_closing_locked(CLOSE_INTERNAL_ERROR, "incomplete fragmented message")

    def _send_fragment(self, data: Sendable, final: bool, compress: Optional[bool]) -> None:
        with self._lock:
            conn = self._conn
            if self.transport.dead or conn is None:
                raise self._closed_error()
            try:
                frame = conn.send_fragment(data, final, compress)
            except InvalidState:
                raise self._closed_error() from None
            self._send_frame_locked(frame)

    def ping(self, data: Union[str, bytes, None] = None) -> threading.Event:
        """Send a ping; the returned event is set when its pong arrives.

        ``data`` defaults to 4 random bytes; a payload still waiting for its
        pong is a ValueError. The event is also set when the connection ends
        first, so ``wait()`` never outlives the connection: check :attr:`open`.
        While pings wait, the maintenance thread reads what arrives if nobody
        else does (messages wait for :meth:`recv`), so the pong is seen.
        """
        if data is None:
            payload = os.urandom(4)
        else:
            payload = data.encode("utf-8") if isinstance(data, str) else memoryview(data).tobytes()
        with self._lock:
            conn = self._conn
            if self.transport.dead or conn is None:
                raise self._closed_error()
            if self._pings is not None and payload in self._pings:
                raise ValueError("a ping with this payload is already waiting for its pong")
            try:
                frame = conn.send_ping(payload)
            except InvalidState:
                raise self._closed_error() from None
            if self._pings is None:
                self._pings = {}
            event = self._pings[payload] = threading.Event()
            self.transport.write_locked(frame)
            self._watch_for_pongs_locked()
        return event

    def _watch_for_pongs_locked(self) -> None:
        """While pings wait and nobody reads, the maintenance thread reads, so pongs are seen."""
        if self._pings and not self._pong_watch and not self._ended and not self.transport.dead:
            self._pong_watch = True
            self.transport.watch_readable(self._read_for_pongs)

    def _read_for_pongs(self) -> bool:
        """Maintenance thread, on input: read it unless a reader is there; True to stop watching.

        A thread in :meth:`recv` reads the pong itself, and watches again as it leaves.
        """
        if self._pings and not self._ended and not self._behalf_full() and self.read_on_behalf():
            with self._lock:
                if self._pings and not self._ended and not self.transport.dead:
                    return False
        with self._lock:
            self._pong_watch = False
        return True

    def _wait_own_turn_locked(self) -> None:
        """Wait while another thread is in the middle of a fragmented message."""
        if self._fragmenting is not None and self._fragmenting != threading.get_ident():
            self._wait_locked(lambda: self._fragmenting is None, "another thread's fragmented message",
                              self._options.send_timeout)

    def _wait_locked(self, ready: Callable[[], bool], what: str, timeout: Optional[float]) -> None:
        """Wait (under ``_lock``) until ``ready()`` or the end, at most ``timeout``; TimeoutError after."""
        cond = self._cond
        if cond is None:
            cond = self._cond = threading.Condition(self._lock)
        deadline = None if timeout is None else monotonic() + timeout
        while not ready() and not self.transport.dead:
            if deadline is None:
                cond.wait()
                continue
            remaining = deadline - monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{self.id}: waited {timeout} s for {what}")
            cond.wait(remaining)

    def _send_frame_locked(self, frame: bytes) -> None:
        """Write a frame for send(); over ``write_limit``, write the backlog here (backpressure).

        The sending thread waits for the socket itself until the backlog is
        back under ``write_limit``, at most ``send_timeout``, then drops the
        peer. What is left under the limit is flushed by the maintenance thread.
        """
        transport = self.transport
        transport.write_locked(frame)
        if not transport.over_limit:
            return
        if not transport.flush_below_locked(transport.write_limit, self._options.send_timeout):
            logger.warning("%s dropped: the peer does not read (send_timeout)", self.id)
            self._drop_locked("send timeout: the peer does not read")
            raise TimeoutError(f"{self.id}: send() waited {self._options.send_timeout} s for the peer to read")
        if transport.dead:
            raise self._closed_error()

    def send_encoded(self, frame: Union[bytes, SharedMessage]) -> bool:
        """Broadcast: queue a frame encoded once for many connections, never blocking.

        False when the connection cannot take it (closing, in the middle of a
        fragmented message) or is already ``write_limit`` behind: then it is
        dropped with 1008, so one stuck peer never delays the others.
        """
        with self._lock:
            conn = self._conn
            if self.transport.dead or conn is None or conn.state is not State.OPEN or self._fragmenting is not None:
                return False
            if self.transport.over_limit:
                logger.warning("%s dropped: %d bytes wait for a peer that does not read (write_limit %d)",
                               self.id, self.transport.buffered, self._options.write_limit)
                self._drop_locked("slow consumer: send buffer full")
                return False
            try:
                self.transport.write_locked(conn.send_encoded(frame))
            except InvalidState:
                return False
            return True

    # -- ending ------------------------------------------------------------------------

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close with ``code`` and ``reason``, and wait (up to ``close_timeout``) for the peer's close.

        Safe from any thread and idempotent. Messages still unread are kept
        for :meth:`recv`; later data frames are discarded.
        """
        with self._lock:
            conn = self._conn
            if conn is None or conn.state is State.CONNECTING:
                self._abort_locked(CLOSE_ABNORMAL, "closed before the handshake")
            elif conn.state is State.OPEN and not self.transport.dead:
                self._start_closing_locked(code, reason)  # ValueError for a code that cannot be sent
        self._wait_closed()
        if self._release_on_close:
            self.release()

    def __enter__(self) -> "WebSocket":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None or issubclass(exc_type, ConnectionClosed):
            self.close_quietly(1000, "")
        else:
            self.close_quietly(CLOSE_INTERNAL_ERROR, "internal error")

    def _start_closing_locked(self, code: int, reason: str) -> None:
        """Send our close frame; messages already received stay readable."""
        conn = self._conn
        assert conn is not None
        frame = conn.close(code, reason)  # checks the code first
        self._pull_locked(until_message=False)  # messages that arrived before it: theirs to read
        self._sent_close = (code, reason)
        self.transport.write_locked(frame)
        self.timers.start_close_locked()

    def _wait_closed(self) -> None:
        """Wait for the peer's close (up to close_timeout), reading it ourselves whenever no one else is."""
        timeout = self._options.close_timeout
        deadline = None if timeout is None else monotonic() + timeout + 1.0  # the close timer fires first
        while True:
            with self._lock:
                if self._ended or self.transport.dead or self._conn is None:
                    return
                if self._closed_event is None:
                    self._closed_event = threading.Event()
                event = self._closed_event
            if self._read_lock.acquire(timeout=0.05):
                try:
                    while not self._ended and not self.transport.dead:
                        if deadline is not None and monotonic() > deadline:
                            with self._lock:
                                self._abort_locked(CLOSE_ABNORMAL, "closing handshake timed out")
                            break
                        if self.transport.over_limit:  # no reading until the peer takes our bytes
                            with self._lock:
                                remaining = None if deadline is None else max(0.0, deadline - monotonic())
                                self.transport.flush_below_locked(self.transport.write_limit,
                                                                  1.0 if remaining is None else min(1.0, remaining))
                            continue
                        try:
                            n = self.transport.read(deadline)
                        except TimeoutError:
                            with self._lock:
                                self._abort_locked(CLOSE_ABNORMAL, "closing handshake timed out")
                            n = 0
                        if n >= 0:
                            self._feed(n)
                            with self._lock:
                                self._pull_locked(until_message=False)
                finally:
                    self._read_lock.release()
                continue
            # Another thread reads: its reads finish the handshake, or it lets go of the lock.
            if event.wait(0.05):
                return
            if deadline is not None and monotonic() > deadline:
                return

    def going_away(self, code: int = 1001, reason: str = "server shutting down") -> None:
        """Start closing without waiting (server shutdown); the handler's reads or the closer finish it."""
        with self._lock:
            conn = self._conn
            if conn is None:
                self._abort_locked(code, reason)
            elif conn.state is State.OPEN and not self.transport.dead:
                self._start_closing_locked(code, reason)

    def abort(self, code: int, reason: str) -> None:
        """Cut the connection now, without a closing handshake."""
        with self._lock:
            self._abort_locked(code, reason)

    def close_quietly(self, code: int, reason: str) -> None:
        """:meth:`close`, logging instead of raising (the end of a handler)."""
        try:
            self.close(code, reason)
        except Exception:  # pragma: no cover - best effort at the end of a connection
            logger.debug("%s close failed", self.id, exc_info=True)

    def release(self) -> None:
        """The owner's last step: let buffered bytes drain (up to close_timeout), then let go of the socket.

        Takes the read lock, so no other thread is inside a read of this
        socket when its descriptor is closed.
        """
        if not self._read_lock.acquire(timeout=0.5):
            with self._lock:  # a reader blocked somewhere: wake it (EOF), then wait for it
                self._abort_locked(CLOSE_ABNORMAL, "released")
            if not self._read_lock.acquire(timeout=5.0):  # pragma: no cover - a reader that never returns
                logger.warning("%s: a reader still holds the socket; leaving it open", self.id)
                return
        try:
            with self._lock:
                self.timers.cancel_locked()
                self._wake_waiters_locked()
                self._pong_watch = False
                self._events = None
            self.transport.release(self._options.close_timeout or 10.0)
        finally:
            self._read_lock.release()

    def _closed_error(self) -> ConnectionClosed:
        code = self.close_code
        if code is not None:
            return ConnectionClosed(code, self.close_reason)
        if self._local is not None:
            return ConnectionClosed(*self._local)
        if self._sent_close is not None:
            return ConnectionClosed(*self._sent_close)
        return ConnectionClosed(CLOSE_ABNORMAL, "")

    def _lost_locked(self, why: str) -> None:
        self._abort_locked(CLOSE_ABNORMAL, why)

    def _abort_locked(self, code: int, reason: str) -> None:
        """End the transport now: shutdown() wakes a blocked reader with EOF; the owner closes the fd."""
        if self._local is None:
            self._local = (code, reason)
        if self.transport.dead:
            return
        self.transport.abort_locked()
        self.timers.cancel_locked()
        self._wake_waiters_locked()

    def _fail_locked(self, code: int, reason: str) -> None:
        """Send a close frame (best effort) and end the transport without waiting for the reply."""
        if self._local is None:
            self._local = (code, reason)
        conn = self._conn
        if conn is not None and conn.state is State.OPEN and not self.transport.dead:
            self._sent_close = (code, reason)
            self.transport.write_locked(conn.close(code, reason))
        self._abort_locked(code, reason)

    def _drop_locked(self, reason: str) -> None:
        """Close a peer that does not read, without waiting for it (broadcast, send timeout).

        Whole frames still queued are discarded (memory is freed at once) and
        the close frame goes right after the frame being written.
        """
        if self._local is None:
            self._local = (CLOSE_SLOW_CONSUMER, reason)
        conn = self._conn
        if self.transport.dead or conn is None or conn.state is not State.OPEN:
            self._abort_locked(CLOSE_SLOW_CONSUMER, reason)
            return
        self.transport.discard_queued_locked()
        self._sent_close = (CLOSE_SLOW_CONSUMER, reason)
        self.transport.write_locked(conn.close(CLOSE_SLOW_CONSUMER, reason))
        self.timers.start_close_locked()
        self._notify_locked()

    # -- the drivers' side -------------------------------------------------------------

    def opened_locked(self, conn: Connection, response: bytes = b"") -> None:
        """The handshake succeeded: write the 101 (server side) and start the connection's life."""
        if response:
            self.transport.write_locked(response)
        self._conn = conn
        self._events = None
        self.timers.opened_locked()

    def respond_and_end_locked(self, data: bytes) -> None:
        """Send an HTTP response instead of opening (a refusal, a plain HTTP answer), then end."""
        self.transport.write_locked(data)
        self.transport.close_after_flush_locked()

    # TimerOwner: what the timers do to this connection.

    def timer_open_locked(self) -> bool:
        conn = self._conn
        return conn is not None and conn.state is State.OPEN and not self._ended and not self.transport.dead

    def timer_ended_locked(self) -> bool:
        return self._ended or self.transport.dead

    def timer_ping_locked(self) -> None:
        assert self._conn is not None
        self.transport.write_locked(self._conn.send_ping(b""))

    def timer_read(self) -> None:
        self.read_on_behalf()

    def timer_end_locked(self, code: int, reason: str, fail: bool) -> None:
        if fail:
            self._fail_locked(code, reason)
        else:
            self._abort_locked(code, reason)
