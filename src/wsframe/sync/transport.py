"""The byte-moving layer of a threaded-server connection: socket reads, non-blocking writes, TLS.

A mixin of :class:`~wsframe._websocket.WebSocket`, which declares the shared
``__slots__`` and owns the locks: ``*_locked`` methods run under ``_lock``,
the others take it for their non-blocking steps; ``_read`` runs under
``_read_lock``. A write error calls back ``_lost_locked``, a TLS error
``_abort_locked`` (the WebSocket's ending).
"""

from __future__ import annotations

import itertools
import logging
import math
import select
import socket
import ssl
from time import monotonic
from typing import Any, Callable, List, Optional

__all__: List[str] = []

logger = logging.getLogger("wsframe.server")

_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)  # 0 where absent (Windows): writes then block
_SENDMSG = bool(_DONTWAIT) and hasattr(socket.socket, "sendmsg")
_IOV_BATCH = 64  # buffers per sendmsg() when flushing a backlog
_READ_MIN = 2048  # receive buffer to start with: idle connections stay small
_READ_MAX = 256 * 1024  # ... doubled while reads fill it, up to this
_HAS_POLL = hasattr(select, "poll")
_HOLD_MAX = 65536  # batching: frames held at most, and the largest frame held


class _Transport:
    """Reads into one reusable buffer; writes without blocking, the rest waiting in ``_out``."""

    __slots__ = ()

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

    # -- TLS -------------------------------------------------------------------------

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
