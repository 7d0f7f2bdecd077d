"""Bytes in and out of one socket for a blocking driver: reads, non-blocking writes, TLS.

A :class:`Transport` owns the socket, the receive buffer, TLS state and the
bounded outgoing buffer. It never blocks while its owner's lock is held:

* Reads happen in the thread that holds the owner's *read lock* (normally a
  handler in ``recv()``), with the connection lock released.
* Writes (``*_locked`` methods, called with the connection lock held) send
  what the socket takes at once and queue the rest; the maintenance thread
  flushes the queue when the socket becomes writable.

Two ways to write without blocking, chosen once per socket:

* POSIX: the socket stays in blocking mode for reads, and writes pass
  ``MSG_DONTWAIT``;
* elsewhere (Windows), or when forced with ``nonblocking=True``: the socket is
  non-blocking, and a read first waits for input with ``poll``/``select``.

Either way the mode is set explicitly: accepted sockets inherit
``O_NONBLOCK`` from the listener on BSD, macOS and Windows.
"""

from __future__ import annotations

import itertools
import logging
import math
import select
import socket
import ssl
import threading
from collections import deque
from time import monotonic
from typing import Any, Callable, Deque, List, Optional, Union

from .maintenance import Maintenance

__all__ = ["Transport", "MSG_DONTWAIT", "HOLD_MAX"]

logger = logging.getLogger("wsframe.server")

#: ``socket.MSG_DONTWAIT``, or 0 where the platform lacks it (then sockets are made non-blocking).
MSG_DONTWAIT: int = getattr(socket, "MSG_DONTWAIT", 0)
_HAS_SENDMSG = hasattr(socket.socket, "sendmsg")
_HAS_POLL = hasattr(select, "poll")
_IOV_BATCH = 64  # buffers per sendmsg() when flushing a backlog
_READ_MIN = 2048  # receive buffer to start with: idle connections stay small
_READ_MAX = 256 * 1024  # ... doubled while reads fill it, up to this
_DRAIN_MAX = 1 << 20  # unread input discarded before closing, at most (the rest may still cause a reset)
#: Batching: frames held at most, and the largest frame held.
HOLD_MAX = 65536

Buffer = Union[bytes, bytearray, memoryview]


class Transport:
    """One socket's bytes: a reusable receive buffer, TLS, and a bounded queue of unsent bytes."""

    __slots__ = (
        "sock", "label", "_maint", "_lock", "_on_lost", "_on_progress", "write_limit", "owns_socket",
        "_nonblocking", "_flags", "_rbuf", "_rview", "_poller", "_out", "_queued", "_held", "_held_size",
        "_watching", "_flushing", "_close_after_flush", "_write_shut", "dead", "_tls", "_tls_in", "_tls_out",
    )

    def __init__(
        self,
        sock: socket.socket,
        maintenance: Maintenance,
        lock: threading.Lock,
        *,
        write_limit: int,
        on_lost: Callable[[str], None],
        on_progress: Callable[[], None],
        nonblocking: Optional[bool] = None,
        owns_socket: bool = True,
        label: str = "",
    ) -> None:
        self.sock = sock
        self.label = label
        self._maint = maintenance
        self._lock = lock  # the owner's connection lock: held around every *_locked call
        self._on_lost = on_lost  # called (locked) when the socket fails: the owner ends the connection
        self._on_progress = on_progress  # called (locked) when queued bytes went out
        self.write_limit = write_limit
        #: False when someone else closes the socket (a server this one was taken over from).
        self.owns_socket = owns_socket
        self._nonblocking = not MSG_DONTWAIT if nonblocking is None else nonblocking
        self._flags = 0 if self._nonblocking else MSG_DONTWAIT
        sock.setblocking(not self._nonblocking)
        self._rbuf: Optional[bytearray] = None
        self._rview: Optional[memoryview] = None
        self._poller: Any = None
        self._out: Deque[Buffer] = deque()  # bytes not yet in the kernel, in order (the first maybe partly sent)
        self._queued = 0
        self._held: List[bytes] = []  # frames held back to go out with the next write (batching)
        self._held_size = 0
        self._watching = False  # registered with the maintenance thread for writability
        self._flushing = 0  # threads writing the backlog themselves (backpressure)
        self._close_after_flush = False
        self._write_shut = False
        #: True once the transport is shut down: nothing more goes out or comes in.
        self.dead = False
        self._tls: Optional[ssl.SSLObject] = None
        self._tls_in: Optional[ssl.MemoryBIO] = None
        self._tls_out: Optional[ssl.MemoryBIO] = None

    # -- state -------------------------------------------------------------------------

    @property
    def buffered(self) -> int:
        """Bytes accepted for sending that the kernel has not taken yet."""
        return self._queued + self._held_size

    @property
    def tls(self) -> bool:
        """True once TLS runs over the socket."""
        return self._tls is not None

    @property
    def backlogged(self) -> bool:
        """True while bytes wait for the socket (later writes queue behind them)."""
        return bool(self._out)

    @property
    def over_limit(self) -> bool:
        """True while more than ``write_limit`` bytes wait: the owner stops reading and senders wait."""
        return self._queued > self.write_limit

    # -- reading (read lock held) ------------------------------------------------------

    def buffer(self) -> memoryview:
        """The receive buffer, made on first use."""
        view = self._rview
        if view is None:
            self._rbuf = bytearray(_READ_MIN)
            view = self._rview = memoryview(self._rbuf)
        return view

    def read(self, deadline: Optional[float]) -> int:
        """Read once into :meth:`buffer`: bytes read, 0 at EOF, -1 for nothing yet (call again).

        Blocks until input arrives or ``deadline`` passes (TimeoutError). While
        our own bytes wait for the socket, it writes them as the socket takes
        them. While more than ``write_limit`` wait, it reads nothing and returns
        -1 at once: the caller waits for the peer to catch up (or drops it), so
        a peer that sends without reading is held back by TCP, not by our
        memory. A timer shutting the socket down ends the wait (EOF).
        """
        view = self.buffer()
        if self.over_limit:
            return -1
        flags = 0  # a blocking socket: recv waits; a non-blocking one waited in poll first
        if self._out and self._flush_while_waiting(deadline):
            if self.over_limit:
                return -1
            flags = MSG_DONTWAIT
        elif deadline is not None or self._nonblocking:
            self._wait_readable(deadline)
            flags = MSG_DONTWAIT
        try:
            return self.sock.recv_into(view, 0, flags)
        except BlockingIOError:
            return -1
        except OSError:  # reset, or the socket was shut down/closed under us
            return 0

    def read_nowait(self) -> int:
        """Read what is there without waiting (-1: nothing); never while over ``write_limit``."""
        if self.over_limit:
            return -1
        try:
            return self.sock.recv_into(self.buffer(), 0, MSG_DONTWAIT)
        except BlockingIOError:
            return -1
        except OSError:
            return 0

    def deliver_locked(self, n: int, sink: Callable[[Buffer], None]) -> None:
        """Hand the ``n`` bytes just read (0: EOF) to ``sink``, through TLS when it is on."""
        view = self._rview
        assert view is not None
        if self._tls is None:
            sink(view[:n] if n else b"")
        else:
            assert self._tls_in is not None
            if n:
                self._tls_in.write(view[:n])
            else:
                self._tls_in.write_eof()
            self._pull_tls_locked(sink)
        if n == len(view) and n < _READ_MAX:  # reads fill the buffer: a bigger one for the next
            self._rbuf = bytearray(2 * n)
            self._rview = memoryview(self._rbuf)

    def _flush_while_waiting(self, deadline: Optional[float]) -> bool:
        """Write our backlog while waiting for input; True when input is ready, False when the backlog is gone.

        Above ``write_limit`` it returns at once (True): the caller stops
        reading until the backlog is back under the limit (see ``over_limit``).
        """
        with self._lock:
            self._flushing += 1
        try:
            while True:
                with self._lock:
                    if not self._out or self.dead:
                        return False
                    if self.over_limit:  # stop reading: the caller waits for the peer (or drops it)
                        return True
                wait = 1.0 if deadline is None else deadline - monotonic()
                if wait <= 0:
                    raise TimeoutError(f"{self.label}: timed out")
                readable, writable = self._poll(True, True, min(wait, 1.0))
                if readable:
                    return True
                if writable:
                    with self._lock:
                        if not self.dead:
                            self._flush_locked()
        finally:
            with self._lock:
                self._flushing -= 1
                self._watch_locked()

    def _wait_readable(self, deadline: Optional[float]) -> None:
        while True:
            wait = 3600.0 if deadline is None else deadline - monotonic()
            if wait <= 0:
                raise TimeoutError(f"{self.label}: timed out")
            readable, _ = self._poll(True, False, wait)
            if readable:
                return

    def _poll(self, readable: bool, writable: bool, timeout: float) -> "tuple[bool, bool]":
        """Wait up to ``timeout`` for the socket; a closed socket counts as readable (recv reports it)."""
        try:
            if _HAS_POLL:
                poller = self._poller
                if poller is None:
                    poller = self._poller = select.poll()
                    poller.register(self.sock, select.POLLIN)
                mask = (select.POLLIN if readable else 0) | (select.POLLOUT if writable else 0)
                poller.modify(self.sock, mask)
                ready = 0
                for _, events in poller.poll(math.ceil(timeout * 1000)):
                    ready |= events
                return bool(ready & ~select.POLLOUT), bool(ready & select.POLLOUT)
            r, w, _ = select.select([self.sock] if readable else [], [self.sock] if writable else [], [], timeout)
            return bool(r), bool(w)
        except (OSError, ValueError):
            return True, False

    # -- writing (connection lock held) ------------------------------------------------

    def write_locked(self, data: Buffer) -> None:
        """Send ``data`` (after any held frames) as far as the socket takes it now; queue the rest."""
        if self.dead or self._write_shut:
            return
        if self._held:
            held = self._held
            if len(data) < HOLD_MAX:
                held.append(bytes(data))
                data = b"".join(held)
                held.clear()
                self._held_size = 0
            else:  # no copy of a big frame: written after the held ones, in one call where it can be
                self._held = []
                self._held_size = 0
                head = b"".join(held)
                if self._tls is None and not self._out and _HAS_SENDMSG:
                    self._gather_locked(head, data)
                else:
                    self._send_locked(head)
                    self._send_locked(data)
                return
        elif not data:
            return
        self._send_locked(data)

    def hold_locked(self, frame: bytes) -> None:
        """Keep ``frame`` to go out with the next write (batching replies); written at once past HOLD_MAX."""
        self._held.append(frame)
        self._held_size += len(frame)
        if self._held_size >= HOLD_MAX:
            self.write_locked(b"")

    def hold_unless_backlogged_locked(self, frame: bytes) -> bool:
        """:meth:`hold_locked`, unless bytes already wait for the socket (then False: write it instead)."""
        if self._out:
            return False
        self._held.append(frame)
        self._held_size += len(frame)
        if self._held_size >= HOLD_MAX:
            self.write_locked(b"")
        return True

    @property
    def holding(self) -> bool:
        """True while frames are held back (see :meth:`hold_locked`)."""
        return bool(self._held)

    def _send_locked(self, data: Buffer) -> None:
        if self._tls is not None:
            assert self._tls_out is not None
            self._tls.write(data)
            data = self._tls_out.read()
            if not data:
                return
        self.write_raw_locked(data)

    def write_raw_locked(self, data: Buffer) -> None:
        """Send bytes that need no TLS (TLS records themselves, or plain bytes without TLS)."""
        if self._out:  # bytes already wait for the socket: keep the order
            self._out.append(data)
            self._queued += len(data)
            return
        n = self._send_now(data)
        if n < 0:
            return
        if n < len(data):
            rest = memoryview(data)[n:] if n else data
            self._out.append(rest)
            self._queued += len(rest)
            self._watch_locked()

    def _send_now(self, data: Buffer, then: Optional[Buffer] = None) -> int:
        """Bytes the socket took of ``data`` (and ``then`` after it) now: 0 when full, -1 when lost."""
        try:
            if then is None:
                return self.sock.send(data, self._flags)
            return self.sock.sendmsg([data, then], (), self._flags)
        except BlockingIOError:
            return 0
        except OSError as exc:
            logger.debug("%s write failed: %s", self.label, exc)
            self._on_lost("connection lost")
            return -1

    def _gather_locked(self, head: bytes, data: Buffer) -> None:
        """Send ``head`` then ``data`` in one ``sendmsg`` (plain socket, nothing queued); queue the rest."""
        n = self._send_now(head, data)
        if n < 0:
            return
        rest: List[Buffer] = []
        if n < len(head):
            rest.append(memoryview(head)[n:] if n else head)
            rest.append(data)
        elif n - len(head) < len(data):
            rest.append(memoryview(data)[n - len(head):] if n > len(head) else data)
        if rest:
            self._out.extend(rest)
            self._queued += sum(len(part) for part in rest)
            self._watch_locked()

    def _watch_locked(self) -> None:
        """Have the maintenance thread flush the backlog once the socket can take more."""
        if self._out and not self._watching and not self.dead and not self._flushing:
            self._watching = True
            self._maint.watch_writable(self.sock, self._on_writable)

    def watch_readable(self, callback: Callable[[], bool]) -> None:
        """Have the maintenance thread call ``callback()`` on input until it returns True."""
        if not self.dead:
            self._maint.watch_readable(self.sock, callback)

    def _on_writable(self) -> bool:
        """Maintenance thread: the socket can take more. True when nothing is left to write."""
        with self._lock:
            if self._flushing:  # a thread writes its backlog itself; it re-registers if needed
                self._watching = False
                return True
            if not self.dead:
                self._flush_locked()
            done = self.dead or not self._out
            if done:
                self._watching = False
            return done

    def _flush_locked(self) -> None:
        out = self._out
        sock = self.sock
        flags = self._flags
        while out:
            try:
                if len(out) == 1 or not _HAS_SENDMSG:
                    n = sock.send(out[0], flags)
                else:
                    n = sock.sendmsg(list(itertools.islice(out, _IOV_BATCH)), (), flags)
            except BlockingIOError:
                break
            except OSError as exc:
                logger.debug("%s write failed: %s", self.label, exc)
                self._on_lost("connection lost")
                return
            self._queued -= n
            while n:
                head = out[0]
                size = len(head)
                if n >= size:
                    out.popleft()
                    n -= size
                else:
                    out[0] = memoryview(head)[n:]
                    n = 0
        self._on_progress()
        if not out and self._close_after_flush:
            self._shutdown_write_locked()

    def flush_below_locked(self, limit: int, timeout: Optional[float]) -> bool:
        """Write the backlog in this thread until at most ``limit`` bytes wait; False after ``timeout``.

        Backpressure for a sender: it waits for the socket itself (releasing
        the lock meanwhile) instead of handing the work to the maintenance thread.
        """
        deadline = None if timeout is None else monotonic() + timeout
        self._flushing += 1
        try:
            while self._queued > limit and not self.dead:
                wait = 1.0
                if deadline is not None:
                    wait = deadline - monotonic()
                    if wait <= 0:
                        return False
                self._lock.release()
                try:
                    self._wait_writable(min(wait, 1.0))
                finally:
                    self._lock.acquire()
                if not self.dead:
                    self._flush_locked()
            return True
        finally:
            self._flushing -= 1
            self._watch_locked()

    def _wait_writable(self, timeout: float) -> None:
        try:
            if _HAS_POLL:  # a poll object per wait: several senders may wait at once
                poller = select.poll()
                poller.register(self.sock, select.POLLOUT)
                poller.poll(math.ceil(timeout * 1000))
            else:
                select.select([], [self.sock], [], timeout)
        except (OSError, ValueError):  # closed under us: the next send reports it
            pass

    def discard_queued_locked(self) -> None:
        """Drop whole queued chunks not yet started (a slow consumer's backlog); keep the one in progress.

        With TLS nothing can be dropped: the records are already encrypted in sequence.
        """
        self._held.clear()
        self._held_size = 0
        if self._tls is None and len(self._out) > 1:
            head = self._out[0]
            self._out.clear()
            self._out.append(head)
            self._queued = len(head)

    def close_after_flush_locked(self) -> None:
        """Send our FIN once everything queued is out (RFC 6455 7.1.1: the server closes TCP first)."""
        if not self._close_after_flush:
            self._close_after_flush = True
            if not self._out:
                self._shutdown_write_locked()

    def _shutdown_write_locked(self) -> None:
        if self._held and not self.dead:  # held replies go out before our FIN
            held, self._held, self._held_size = self._held, [], 0
            self._send_locked(b"".join(held))
            if self._out:
                self._close_after_flush = True
                return
        if not self._write_shut and not self.dead:
            self._write_shut = True
            try:
                self.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def abort_locked(self) -> None:
        """Shut the socket down now; a thread blocked reading it wakes with EOF. The fd stays open."""
        if self.dead:
            return
        self.dead = True
        self._out.clear()
        self._queued = 0
        self._held.clear()
        self._held_size = 0
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def release(self, drain_timeout: Optional[float]) -> None:
        """The owner's last step (read lock held): let queued bytes drain, then let go of the socket."""
        with self._lock:
            self.write_locked(b"")  # held frames, if any
            deadline = None if drain_timeout is None else monotonic() + drain_timeout
            while self._out and not self.dead:
                remaining = 10.0 if deadline is None else deadline - monotonic()
                if remaining <= 0 or not self.flush_below_locked(0, remaining):
                    break
            self._watching = False
            self.dead = True
            self._out.clear()
            self._queued = 0
            self._held.clear()
            self._held_size = 0
        self._maint.forget(self.sock)  # every watch (write, and read for pongs) ends before the fd can be reused
        if self.owns_socket:
            try:  # unread input would make close() send a reset that can eat our last frames
                budget = _DRAIN_MAX
                while budget > 0:
                    n = self.sock.recv_into(self.buffer(), 0, MSG_DONTWAIT)
                    if n <= 0:
                        break
                    budget -= n
            except OSError:
                pass
            self.sock.close()
        self._rbuf = self._rview = None
        self._poller = None

    # -- TLS ---------------------------------------------------------------------------

    def _pull_tls_locked(self, sink: Callable[[Buffer], None]) -> None:
        """Decrypt what the incoming BIO holds; ``sink(b"")`` at the end of the TLS stream."""
        tls = self._tls
        assert tls is not None and self._tls_out is not None
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
            logger.info("%s TLS error: %s", self.label, exc)
            sink(b"")
            self._on_lost("TLS error")
        out = self._tls_out.read()  # e.g. post-handshake messages
        if out:
            self.write_raw_locked(out)

    def start_tls(self, context: ssl.SSLContext, *, server_side: bool, server_hostname: Optional[str] = None) -> bool:
        """Run the TLS handshake (read lock held); False when the peer went away during it."""
        tls_in, tls_out = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = context.wrap_bio(tls_in, tls_out, server_side=server_side, server_hostname=server_hostname)
        self._tls_in, self._tls_out = tls_in, tls_out
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                pass
            with self._lock:
                out = tls_out.read()
                if out:
                    self.write_raw_locked(out)
            n = self.read(None)
            if n == 0:
                return False
            if n > 0:
                assert self._rview is not None
                tls_in.write(self._rview[:n])
        with self._lock:
            out = tls_out.read()
            if out:
                self.write_raw_locked(out)
            self._tls = tls
        return True

    def read_plain(self) -> bytes:
        """Handshake phase (read lock held): the next plaintext bytes, b"" at EOF."""
        while True:
            if self._tls is not None:
                chunks: List[bytes] = []
                with self._lock:
                    self._pull_tls_locked(lambda data: chunks.append(bytes(data)))
                if chunks:
                    return b"".join(chunks)
            n = self.read(None)
            if n < 0:
                continue
            if n == 0:
                return b""
            assert self._rview is not None
            if self._tls is None:
                return bytes(self._rview[:n])
            assert self._tls_in is not None
            self._tls_in.write(self._rview[:n])
