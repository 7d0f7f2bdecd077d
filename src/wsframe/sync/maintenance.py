"""One thread that does every connection's waiting: timers and slow writes.

The threaded server gives each connection one thread, the one running the
user's handler; that thread reads the socket whenever the handler calls
``recv()``. Everything that must happen while the handler is busy elsewhere
is done here instead, for all connections at once:

* timers (a deadline heap): handshake timeouts, keepalive pings and pong
  deadlines, close-handshake timeouts;
* writes that would block: a connection whose socket buffer is full
  registers it here, and this thread flushes the connection's outgoing buffer
  when the socket becomes writable (``selectors``, epoll on Linux);
* connections refused before a thread was spent on them (over
  ``max_connections``): request head read, 503 sent, input drained until
  the peer closes or a deadline passes.

This thread never reads a connection's socket on its own initiative; a timer
callback may, under the connection's read lock (see ``WebSocket``).

Callbacks run in this thread and must not block. Other threads talk to it
through :meth:`call_at` and :meth:`post`; selector registrations only change
in this thread, so they need no lock. With ``idle_exit`` the thread exits
after that many idle seconds (no timers, no sockets) and is restarted on
demand; a server stops its own with :meth:`stop`.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import selectors
import socket
import threading
from collections import deque
from time import monotonic
from typing import Any, Callable, Deque, Dict, List, Optional, Set

__all__ = ["Maintenance", "Timer", "shared"]

logger = logging.getLogger("wsframe.server")


#: A scheduled callback: ``[when, sequence, callback]``; :meth:`Maintenance.cancel` clears the callback.
Timer = List[Any]


class Maintenance:
    """Timers and deferred socket writes for many connections, in one thread."""

    def __init__(self, name: str = "wsframe-maintenance", *, idle_exit: Optional[float] = None, daemon: bool = False):
        self.name = name
        self.idle_exit = idle_exit
        self.daemon = daemon
        self._lock = threading.Lock()
        self._heap: List[Timer] = []
        self._seq = itertools.count()
        self._posted: Deque[Callable[[], None]] = deque()
        self._thread: Optional[threading.Thread] = None
        self._selector: Optional[selectors.BaseSelector] = None
        self._wake_r: Optional[socket.socket] = None
        self._wake_w: Optional[socket.socket] = None
        self._sleeping_until = -math.inf  # when select() returns on its own; -inf while awake
        self._woken = False
        self._stopped = False
        self._lingering: Set[socket.socket] = set()

    # -- any thread -------------------------------------------------------------------

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        """Run ``callback()`` in the maintenance thread at ``when`` (``time.monotonic()``)."""
        timer: Timer = [when, next(self._seq), callback]
        with self._lock:
            if self._stopped:
                return timer
            heapq.heappush(self._heap, timer)
            self._ensure_thread_locked()
            wake = when < self._sleeping_until
        if wake:
            self._wake()
        return timer

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        return self.call_at(monotonic() + delay, callback)

    @staticmethod
    def cancel(timer: Optional[Timer]) -> None:
        """Cancel a timer (cheap: it stays in the heap, inert, until its time)."""
        if timer is not None:
            timer[2] = None

    def post(self, fn: Callable[[], None]) -> None:
        """Run ``fn()`` in the maintenance thread, soon, in posting order."""
        with self._lock:
            if self._stopped:
                return
            self._posted.append(fn)
            self._ensure_thread_locked()
        self._wake()

    def watch_writable(self, sock: socket.socket, on_writable: Callable[[], bool]) -> None:
        """Call ``on_writable()`` whenever ``sock`` can take more bytes, until it returns True."""
        self.post(lambda: self._register(sock, selectors.EVENT_WRITE, on_writable))

    def watch_readable(self, sock: socket.socket, on_readable: Callable[[], bool]) -> None:
        """Call ``on_readable()`` whenever ``sock`` has input, until it returns True.

        Independent of :meth:`watch_writable` on the same socket: each event has its own callback.
        """
        self.post(lambda: self._register(sock, selectors.EVENT_READ, on_readable))

    def forget(self, sock: socket.socket) -> None:
        """Stop watching ``sock`` (post this before closing it)."""
        self.post(lambda: self._unregister(sock))

    def refuse(self, sock: socket.socket, response: bytes, timeout: float) -> None:
        """Answer a connection with ``response`` without a thread, then close it.

        The request head is read first (clients may not expect an answer
        before they asked), then ``response`` is sent, and input is drained
        until the peer closes or ``timeout`` passes: closing with unread input
        would reset the connection and could destroy the response. ``sock``
        must be non-blocking.
        """
        refusal = _Refusal(self, sock, response)

        def start() -> None:
            self._lingering.add(sock)
            self._register(sock, selectors.EVENT_READ, refusal.on_readable)
            self.call_later(timeout, lambda: self._close_lingering(sock))

        self.post(start)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread (for good) and close what it still holds."""
        with self._lock:
            self._stopped = True
            thread = self._thread
        self._wake()
        if thread is None:
            self._close_all()
        elif thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                logger.warning("%s did not stop within %.1f s", self.name, timeout)

    # -- the thread --------------------------------------------------------------------

    def _ensure_thread_locked(self) -> None:
        if self._thread is not None:
            return
        if self._selector is None:
            self._selector = selectors.DefaultSelector()
            self._wake_r, self._wake_w = socket.socketpair()
            self._wake_r.setblocking(False)
            self._wake_w.setblocking(False)
            self._selector.register(self._wake_r, selectors.EVENT_READ, {selectors.EVENT_READ: self._drain_wake})
        self._sleeping_until = -math.inf
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=self.daemon)
        self._thread.start()

    def _wake(self) -> None:
        with self._lock:
            if self._woken or self._wake_w is None:
                return
            self._woken = True
        try:
            self._wake_w.send(b"\0")
        except OSError:  # full (already woken) or closed
            pass

    def _drain_wake(self) -> bool:
        assert self._wake_r is not None
        try:
            while self._wake_r.recv(4096):
                pass
        except OSError:
            pass
        with self._lock:
            self._woken = False
        return False

    def _run(self) -> None:
        selector = self._selector
        assert selector is not None
        try:
            while True:
                with self._lock:
                    posted = list(self._posted)
                    self._posted.clear()
                for fn in posted:
                    self._safely(fn)
                now = monotonic()
                while True:
                    with self._lock:
                        if not self._heap or self._heap[0][0] > now:
                            break
                        timer = heapq.heappop(self._heap)
                    callback = timer[2]
                    if callback is not None:
                        timer[2] = None
                        self._safely(callback)
                with self._lock:
                    if self._stopped:
                        break
                    if self._posted:
                        continue
                    while self._heap and self._heap[0][2] is None:  # cancelled timers at the top
                        heapq.heappop(self._heap)
                    timeout = max(0.0, self._heap[0][0] - monotonic()) if self._heap else None
                    if timeout is None and len(selector.get_map()) <= 1 and self.idle_exit is not None:
                        if self._sleeping_until == math.inf:  # idle for a full idle_exit already
                            self._thread = None
                            return
                        timeout = self.idle_exit
                        self._sleeping_until = math.inf  # marks "idle wait": any call_at wakes us
                    else:
                        self._sleeping_until = math.inf if timeout is None else now + timeout
                try:
                    events = selector.select(timeout)
                except OSError:  # a socket closed under us (non-epoll selectors)
                    events = []
                    self._sweep_closed()
                with self._lock:
                    if events or self._posted or self._heap:
                        self._sleeping_until = -math.inf
                for key, mask in events:
                    self._dispatch(key, mask)
        finally:
            with self._lock:
                if self._stopped or self._thread is threading.current_thread():
                    self._thread = None
                stopped = self._stopped
            if stopped:
                self._close_all()

    def _safely(self, fn: Callable[[], Any]) -> None:
        try:
            fn()
        except Exception:
            logger.exception("%s: callback failed", self.name)

    def _register(self, sock: socket.socket, event: int, callback: Callable[[], bool]) -> None:
        """Watch ``sock`` for ``event`` (read or write), keeping a watch on the other event."""
        assert self._selector is not None
        try:
            key = self._selector.get_key(sock)
        except (KeyError, ValueError):
            key = None
        if key is not None and key.fileobj is not sock:  # a closed socket's entry on a reused fd number
            self._unregister(key.fileobj)  # type: ignore[arg-type]
            key = None
        callbacks: Dict[int, Callable[[], bool]] = dict(key.data) if key is not None else {}
        callbacks[event] = callback
        mask = 0
        for bit in callbacks:
            mask |= bit
        try:
            if key is None:
                self._selector.register(sock, mask, callbacks)
            else:
                self._selector.modify(sock, mask, callbacks)
        except (ValueError, OSError, KeyError):  # closed meanwhile
            pass

    def _dispatch(self, key: selectors.SelectorKey, mask: int) -> None:
        """Run the callbacks of the events that happened; drop those that say they are done."""
        callbacks: Dict[int, Callable[[], bool]] = dict(key.data)
        for event in (selectors.EVENT_READ, selectors.EVENT_WRITE):
            callback = callbacks.get(event)
            if callback is not None and mask & event:
                done = True
                try:
                    done = callback()
                except Exception:
                    logger.exception("%s: callback failed", self.name)
                if done:
                    del callbacks[event]
        sock = key.fileobj
        if not callbacks:
            self._unregister(sock)  # type: ignore[arg-type]
            return
        new_mask = 0
        for bit in callbacks:
            new_mask |= bit
        try:
            self._selector.modify(sock, new_mask, callbacks)  # type: ignore[union-attr]
        except (KeyError, ValueError, OSError):
            pass

    def _unregister(self, sock: socket.socket) -> None:
        if self._selector is None:
            return
        try:
            self._selector.unregister(sock)
        except (KeyError, ValueError):
            pass

    def _sweep_closed(self) -> None:
        assert self._selector is not None
        for key in list(self._selector.get_map().values()):
            if getattr(key.fileobj, "fileno", lambda: -1)() < 0:
                self._unregister(key.fileobj)  # type: ignore[arg-type]

    def _close_lingering(self, sock: socket.socket) -> None:
        if sock in self._lingering:
            self._lingering.discard(sock)
            self._unregister(sock)
            sock.close()

    def _close_all(self) -> None:
        for sock in list(self._lingering):
            self._close_lingering(sock)
        with self._lock:
            selector, self._selector = self._selector, None
            wake_r, wake_w = self._wake_r, self._wake_w
            self._wake_r = self._wake_w = None
        if selector is not None:
            selector.close()
        for s in (wake_r, wake_w):
            if s is not None:
                s.close()


class _Refusal:
    """A connection answered by the maintenance thread: read the head, respond, drain, close."""

    __slots__ = ("maint", "sock", "response", "head")

    def __init__(self, maint: Maintenance, sock: socket.socket, response: bytes) -> None:
        self.maint = maint
        self.sock = sock
        self.response: Optional[bytes] = response
        self.head = bytearray()

    def on_readable(self) -> bool:
        sock = self.sock
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                if self.response is not None:
                    self.head += data
                    if b"\n\r\n" in self.head or b"\n\n" in self.head or len(self.head) > 65536:
                        sock.send(self.response)  # small: fits in an empty socket buffer
                        sock.shutdown(socket.SHUT_WR)
                        self.response = None
                        self.head = bytearray()
        except BlockingIOError:
            return False
        except OSError:
            pass
        self.maint._close_lingering(sock)
        return False  # already unregistered


_shared: Optional[Maintenance] = None
_shared_lock = threading.Lock()


def shared() -> Maintenance:
    """The process-wide maintenance thread for connections made by ``upgrade()``.

    A daemon thread that exits after 10 idle seconds and restarts on demand.
    """
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Maintenance("wsframe-maintenance-shared", idle_exit=10.0, daemon=True)
        return _shared
