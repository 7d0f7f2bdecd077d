"""The reactor's loop: one thread that waits on every socket and runs every timer.

Callbacks run in the loop's thread, one at a time, and must not block: a
callback that takes longer than ``slow_callback`` seconds is logged with
what it was doing, as asyncio's debug mode does. Time the interpreter spent
collecting garbage meanwhile is not the callback's: it is taken out and, when
long, logged as a pause of its own (:class:`GcPauses`). Other threads hand
work to the loop with :meth:`Loop.call_soon_threadsafe`.
"""

from __future__ import annotations

import gc
import heapq
import itertools
import logging
import select
import selectors
import socket
import threading
from collections import deque
from time import monotonic, perf_counter
from typing import Any, Callable, Deque, Dict, List, Optional, Sequence, Set, Tuple

__all__ = ["Loop", "Handle", "Poller", "GcPauses"]

logger = logging.getLogger("wsframe.reactor")

#: A scheduled callback ``[when, sequence, callback]``; :meth:`Loop.cancel` clears the callback.
Handle = List[Any]


class GcPauses:
    """Seconds the cyclic garbage collector ran in one thread, while installed (``gc.callbacks``).

    A full collection walks every tracked object: with 10,000 connections
    open it takes over 0.1 s, in whichever callback happened to allocate.
    The loop subtracts :attr:`total` from what a callback took, so the
    warning names callbacks that block, not the one the collector chose.
    """

    __slots__ = ("ident", "total", "longest", "generation", "_started")

    def __init__(self) -> None:
        self.ident = -1
        #: Seconds collected in the thread since :meth:`install`.
        self.total = 0.0
        #: The longest single collection since :meth:`take_longest`, and its generation.
        self.longest = 0.0
        self.generation = -1
        self._started = 0.0

    def install(self) -> None:
        """Start counting the collections of the calling thread."""
        self.ident = threading.get_ident()
        gc.callbacks.append(self._on_gc)

    def uninstall(self) -> None:
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)

    def take_longest(self) -> Tuple[float, int]:
        """The longest collection since the last call, and its generation; then start again."""
        longest, generation = self.longest, self.generation
        self.longest, self.generation = 0.0, -1
        return longest, generation

    def _on_gc(self, phase: str, info: Dict[str, int]) -> None:
        if threading.get_ident() != self.ident:
            return
        if phase == "start":
            self._started = perf_counter()
            return
        took = perf_counter() - self._started
        self.total += took
        if took > self.longest:
            self.longest, self.generation = took, info["generation"]


class Poller:
    """Sockets and their callbacks: ``select.epoll`` directly where there is one, else ``selectors``.

    epoll's ``poll()`` gives (fd, events) pairs that map to callbacks in one
    dict lookup: cheaper per event than ``selectors``' keys, which matters
    when every message is an event.
    """

    def __init__(self) -> None:
        self._epoll: Any = select.epoll() if hasattr(select, "epoll") else None
        self._selector: Optional[selectors.BaseSelector] = None if self._epoll else selectors.DefaultSelector()
        self._callbacks: Dict[int, Callable[[int], None]] = {}
        self._fds: Dict[Any, int] = {}

    def register(self, sock: Any, events: int, callback: Callable[[int], None]) -> None:
        fd = sock.fileno()
        if self._epoll is not None:
            self._epoll.register(fd, _to_epoll(events))
        else:
            assert self._selector is not None
            self._selector.register(sock, events, callback)
        self._callbacks[fd] = callback
        self._fds[sock] = fd

    def modify(self, sock: Any, events: int, callback: Callable[[int], None]) -> None:
        fd = self._fds[sock]
        if self._epoll is not None:
            self._epoll.modify(fd, _to_epoll(events))
        else:
            assert self._selector is not None
            self._selector.modify(sock, events, callback)
        self._callbacks[fd] = callback

    def unregister(self, sock: Any) -> None:
        fd = self._fds.pop(sock)
        self._callbacks.pop(fd, None)
        if self._epoll is not None:
            try:
                self._epoll.unregister(fd)
            except (OSError, ValueError):
                pass
        else:
            assert self._selector is not None
            self._selector.unregister(sock)

    def select(self, timeout: Optional[float]) -> List[Tuple[Callable[[int], None], int]]:
        """The callbacks of the ready sockets, with selectors' EVENT_READ/EVENT_WRITE mask."""
        ready: List[Tuple[Callable[[int], None], int]] = []
        if self._epoll is not None:
            try:
                events = self._epoll.poll(-1 if timeout is None else timeout)
            except InterruptedError:  # pragma: no cover
                return ready
            callbacks = self._callbacks
            masks = _MASKS
            for fd, mask in events:
                callback = callbacks.get(fd)
                if callback is not None:
                    ready.append((callback, masks.get(mask) or _from_epoll(mask)))
            return ready
        assert self._selector is not None
        try:
            for key, mask in self._selector.select(timeout):
                ready.append((key.data, mask))
        except OSError:  # pragma: no cover - a descriptor closed under the selector
            pass
        return ready

    def close(self) -> None:
        if self._epoll is not None:
            self._epoll.close()
        elif self._selector is not None:
            self._selector.close()


def _to_epoll(events: int) -> int:
    mask = 0
    if events & selectors.EVENT_READ:
        mask |= select.EPOLLIN
    if events & selectors.EVENT_WRITE:
        mask |= select.EPOLLOUT
    return mask


def _from_epoll(mask: int) -> int:
    events = 0
    if mask & (select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR | select.EPOLLRDHUP):
        events |= selectors.EVENT_READ
    if mask & (select.EPOLLOUT | select.EPOLLHUP | select.EPOLLERR):
        events |= selectors.EVENT_WRITE
    return events


#: The common epoll masks, translated once (a dict lookup per event instead of a call).
_MASKS: Dict[int, int] = {} if not hasattr(select, "epoll") else {
    m: _from_epoll(m) for m in (select.EPOLLIN, select.EPOLLOUT, select.EPOLLIN | select.EPOLLOUT)
}


class Loop:
    """Selectors plus a timer heap, run by :meth:`run` in one thread until :meth:`stop`."""

    def __init__(self, name: str = "wsframe-reactor", slow_callback: float = 0.1) -> None:
        self.name = name
        self.slow_callback = slow_callback
        self.selector = Poller()
        self._timers: List[Handle] = []
        self._seq = itertools.count()
        self._soon: Deque[Callable[[], None]] = deque()
        self._soon_lock = threading.Lock()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self.selector.register(self._wake_r, selectors.EVENT_READ, self._drain_wake)
        self._stopping = False
        self.thread: Optional[threading.Thread] = None
        #: The loop thread's ``threading.get_ident()`` while it runs (-1 before).
        self.ident = -1
        #: Objects with a ``flush()`` to call once at the end of the current turn (gathered writes).
        self.dirty: Set[Any] = set()
        #: ``time.monotonic()`` as the current turn began (the time stamp of what it reads).
        self.now = monotonic()
        #: What the running callback is doing ("on_message"), set by it for the slow-callback warning.
        self.current: Optional[str] = None
        self.gc_pauses = GcPauses()

    # -- scheduling ---------------------------------------------------------------------

    def call_at(self, when: float, callback: Callable[[], None]) -> Handle:
        """Run ``callback()`` at ``when`` (``time.monotonic()``); loop thread only."""
        handle: Handle = [when, next(self._seq), callback]
        heapq.heappush(self._timers, handle)
        return handle

    def call_later(self, delay: float, callback: Callable[[], None]) -> Handle:
        return self.call_at(monotonic() + delay, callback)

    @staticmethod
    def cancel(handle: Optional[Handle]) -> None:
        if handle is not None:
            handle[2] = None

    def call_soon_threadsafe(self, callback: Callable[[], None]) -> None:
        """Run ``callback()`` in the loop thread soon; safe from any thread."""
        with self._soon_lock:
            self._soon.append(callback)
        try:
            self._wake_w.send(b"\0")
        except OSError:  # full: already woken; closed: stopping
            pass

    def in_loop(self) -> bool:
        """True in the loop's own thread."""
        return self.ident == threading.get_ident()

    # -- running ------------------------------------------------------------------------

    def run(self) -> None:
        """Run until :meth:`stop`; the calling thread becomes the loop's."""
        self.thread = threading.current_thread()
        self.ident = threading.get_ident()
        self.gc_pauses.install()
        try:
            self._run()
        finally:
            self.gc_pauses.uninstall()

    def _run(self) -> None:
        selector = self.selector
        timers = self._timers
        while not self._stopping:
            timeout: Optional[float] = None
            if self._soon or self.dirty:
                timeout = 0.0
            elif timers:
                while timers and timers[0][2] is None:
                    heapq.heappop(timers)
                if timers:
                    timeout = max(0.0, timers[0][0] - monotonic())
            ready = selector.select(timeout)
            self.now = monotonic()
            if ready:
                self._run_all(ready)
            if self._soon:
                with self._soon_lock:
                    soon = [(fn, None) for fn in self._soon]
                    self._soon.clear()
                self._run_all(soon)
            if timers:
                now = monotonic()
                while timers and timers[0][0] <= now:
                    handle = heapq.heappop(timers)
                    callback = handle[2]
                    if callback is not None:  # (one at a time: a timer may cancel the next one)
                        handle[2] = None
                        self._run_all([(callback, None)])
            if self.dirty:
                dirty = self.dirty
                self.dirty = set()
                self._run_all([(item.flush, None) for item in dirty])

    def _run_all(self, calls: Sequence[Tuple[Callable[..., Any], Optional[int]]]) -> None:
        """Run callbacks, each ``callback(arg)`` (``callback()`` for None); log the ones over ``slow_callback``.

        One clock read per callback: each one's time runs from the end of the one before, less the
        garbage collections in it.
        """
        slow = self.slow_callback
        pauses = self.gc_pauses
        started = monotonic()
        collected = pauses.total
        for callback, arg in calls:
            self.current = None
            try:
                if arg is None:
                    callback()
                else:
                    callback(arg)
            except Exception:
                logger.exception("%s: a callback failed", self.name)
            now = monotonic()
            if now - started > slow:
                took = now - started - (pauses.total - collected)
                if took > slow:
                    self._report_slow(callback, took)
                self._report_gc()
            started = now
            collected = pauses.total

    def _report_gc(self) -> None:
        took, generation = self.gc_pauses.take_longest()
        if took > self.slow_callback:
            logger.warning("%s: a garbage collection (generation %d, %d objects tracked) took %.3f s: every "
                           "connection on this reactor waited", self.name, generation, len(gc.get_objects()), took)

    def _report_slow(self, callback: Callable[..., Any], took: float) -> None:
        what = self.current or getattr(callback, "__qualname__", repr(callback))
        owner = getattr(callback, "__self__", None)
        label = getattr(owner, "id", None) or getattr(getattr(owner, "ws", None), "id", None) or ""
        logger.warning("%s: %s %s took %.3f s: every connection on this reactor waited; hand blocking work "
                       "to a thread (see EventHandler.run_in_thread)", self.name, label, what, took)

    def _drain_wake(self, mask: int) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except OSError:
            pass

    def stop(self) -> None:
        """Ask the loop to return from :meth:`run` after its current turn; safe from any thread."""
        self._stopping = True
        self.call_soon_threadsafe(lambda: None)

    def close(self) -> None:
        """Release the selector and the wake-up sockets (after :meth:`run` returned)."""
        self.selector.close()
        self._wake_r.close()
        self._wake_w.close()
