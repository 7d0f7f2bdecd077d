"""Keepalive and close timers of a threaded-server connection, run by the maintenance thread.

A mixin of :class:`~wsframe._websocket.WebSocket` (which declares the shared
``__slots__``): each callback takes ``_lock`` itself, and ends the connection
through the WebSocket's ``_fail_locked`` / ``_abort_locked``. Timers never
close the socket; ending it with ``shutdown()`` wakes a blocked reader.
"""

from __future__ import annotations

import logging
from time import monotonic
from typing import List

from .transport import _DONTWAIT
from ..protocol.connection import State

__all__: List[str] = []

logger = logging.getLogger("wsframe.server")


class _Timers:
    """Pings a silent peer (``ping_interval``/``ping_timeout``) and bounds the closing handshake."""

    __slots__ = ()

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

    # -- closing handshake -------------------------------------------------------------

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
