"""The timers of one connection: opening handshake, keepalive, closing handshake.

They run in the maintenance thread, never close the socket themselves, and
act on the connection only through the small :class:`TimerOwner` interface:
ask whether it is open, send a ping, read what arrived on the handler's
behalf, and end it.
"""

from __future__ import annotations

import logging
import threading
from time import monotonic
from typing import Optional, Protocol

from ..options import Options
from ..protocol.constants import CLOSE_ABNORMAL, CLOSE_INTERNAL_ERROR
from .maintenance import Maintenance, Timer

__all__ = ["Timers", "TimerOwner"]

logger = logging.getLogger("wsframe.server")


class TimerOwner(Protocol):
    """What the timers need from their connection (``*_locked``: called with its lock held)."""

    id: str

    def timer_open_locked(self) -> bool:
        """True while the connection is open (messages can be sent)."""

    def timer_ended_locked(self) -> bool:
        """True once nothing more will happen on the connection (its transport is gone, or Closed was seen)."""

    def timer_ping_locked(self) -> None:
        """Send a keepalive ping."""

    def timer_read(self) -> None:
        """Read what the socket holds on the handler's behalf, if no other thread is reading."""

    def timer_end_locked(self, code: int, reason: str, fail: bool) -> None:
        """End the connection: with a close frame first when ``fail``, else by cutting TCP."""


class Timers:
    """Handshake, keepalive and close deadlines of one connection, on the maintenance thread's clock."""

    __slots__ = ("_owner", "_maint", "_lock", "_options", "last_rx", "rx_bytes", "_ka_mark",
                 "_open_timer", "_ka_timer", "_close_timer")

    def __init__(self, owner: TimerOwner, maintenance: Maintenance, lock: threading.Lock, options: Options) -> None:
        self._owner = owner
        self._maint = maintenance
        self._lock = lock  # the connection's lock
        self._options = options
        #: When bytes last arrived (``time.monotonic()``), and how many in all: any byte is a sign of life.
        self.last_rx = monotonic()
        self.rx_bytes = 0
        self._ka_mark = -1
        self._open_timer: Optional[Timer] = None
        self._ka_timer: Optional[Timer] = None
        self._close_timer: Optional[Timer] = None

    def received_locked(self, n: int) -> None:
        """``n`` bytes arrived."""
        self.rx_bytes += n
        self.last_rx = monotonic()

    # -- opening handshake -------------------------------------------------------------

    def start_open_locked(self) -> None:
        """Bound TLS and the HTTP upgrade by ``open_timeout``."""
        timeout = self._options.open_timeout
        if timeout is not None:
            self._open_timer = self._maint.call_later(timeout, self._open_expired)

    def _open_expired(self) -> None:
        with self._lock:
            self._open_timer = None
            if not self._owner.timer_open_locked() and not self._owner.timer_ended_locked():
                logger.info("%s opening handshake timed out", self._owner.id)
                self._owner.timer_end_locked(CLOSE_ABNORMAL, "opening handshake timed out", False)

    # -- keepalive ---------------------------------------------------------------------

    def opened_locked(self) -> None:
        """The connection is open: stop the handshake timer, start keepalive."""
        Maintenance.cancel(self._open_timer)
        self._open_timer = None
        self.last_rx = monotonic()
        interval = self._options.ping_interval
        if interval is not None:
            self._ka_timer = self._maint.call_at(self.last_rx + interval, self._keepalive)

    def _keepalive(self) -> None:
        """Ping a connection silent for ``ping_interval``; busy connections are never pinged."""
        interval, timeout = self._options.ping_interval, self._options.ping_timeout
        assert interval is not None  # no keepalive timer without it
        with self._lock:
            if not self._owner.timer_open_locked():
                return
            now = monotonic()
            due = self.last_rx + interval
            if now < due:
                self._ka_timer = self._maint.call_at(due, self._keepalive)
                return
            self._owner.timer_ping_locked()
            self._ka_mark = self.rx_bytes
            if timeout is None:
                self._ka_timer = self._maint.call_at(now + interval, self._keepalive)
            else:
                self._ka_timer = self._maint.call_at(now + timeout, self._keepalive_check)

    def _keepalive_check(self) -> None:
        """``ping_timeout`` after a keepalive ping: alive if anything at all arrived since.

        A busy handler is not reading: what arrived is read on its behalf
        (the messages wait for it), so only silence counts as death.
        """
        with self._lock:
            if self._alive_locked():
                return
        self._owner.timer_read()
        with self._lock:
            if self._alive_locked():
                return
            logger.info("%s keepalive ping timeout: closing with 1011", self._owner.id)
            self._owner.timer_end_locked(CLOSE_INTERNAL_ERROR, "keepalive ping timeout", True)

    def _alive_locked(self) -> bool:
        if not self._owner.timer_open_locked():
            return True  # nothing to watch any more
        if self.rx_bytes != self._ka_mark:
            interval = self._options.ping_interval or 0.0
            self._ka_timer = self._maint.call_at(self.last_rx + interval, self._keepalive)
            return True
        return False

    # -- closing handshake -------------------------------------------------------------

    def start_close_locked(self) -> None:
        """Our close frame is out: give the peer ``close_timeout`` to answer."""
        timeout = self._options.close_timeout
        Maintenance.cancel(self._ka_timer)
        self._ka_timer = None
        if self._close_timer is None and timeout is not None:
            self._close_timer = self._maint.call_later(timeout, self._close_expired)

    def _close_expired(self) -> None:
        """Read the peer's answer on a busy handler's behalf before calling it a timeout."""
        self._owner.timer_read()
        with self._lock:
            self._close_timer = None
            if not self._owner.timer_ended_locked():
                logger.info("%s closing handshake timed out", self._owner.id)
                self._owner.timer_end_locked(CLOSE_ABNORMAL, "closing handshake timed out", False)

    def cancel_locked(self) -> None:
        """The connection is over: no timer fires any more."""
        for timer in (self._open_timer, self._ka_timer, self._close_timer):
            Maintenance.cancel(timer)
        self._open_timer = self._ka_timer = self._close_timer = None
