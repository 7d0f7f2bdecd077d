"""One connection on the reactor: non-blocking socket, the sans-I/O core, an event-style handler.

Everything here runs in the loop's thread. A read is parsed at once by the
compiled batch parser, every event of it goes to the handler's callbacks
inline, and what the callbacks send is gathered and written once at the end
of the loop turn. Memory is bounded the same way as in the threaded server:
above ``write_limit`` queued bytes the connection stops reading, and a peer
that stays behind for ``send_timeout`` is dropped with 1008.
"""

from __future__ import annotations

import itertools
import logging
import os
import selectors
import socket
import ssl
import threading
from time import monotonic
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple, Union

from ..hooks import decide_upgrade, plain_http_response
from ..options import Options, Refuse
from ..protocol import handshake as hs
from ..protocol.connection import GATHER_MIN, ServerConnection, SharedMessage, State
from ..protocol.extensions import Extension
from ..protocol.constants import (
    CLOSE_ABNORMAL,
    CLOSE_GOING_AWAY,
    CLOSE_INTERNAL_ERROR,
    CLOSE_NORMAL,
    CLOSE_POLICY_VIOLATION,
)
from ..protocol.errors import ConnectionClosed, InvalidState
from ..protocol.events import BinaryMessage, Closed, Ping, Pong, Request, TextMessage
from ..sync.opening import new_server_connection
from .loop import Handle, Loop

if TYPE_CHECKING:
    from .server import ReactorServer

__all__ = ["ReactorConnection"]

logger = logging.getLogger("wsframe.reactor")

_ids = itertools.count(1)
_READ = 65536  # bytes of TLS records decrypted at a time
#: Bytes read at a time into the server's shared buffer (one per server, not per connection),
#: each read parsed before the next: _SMALL_READ, or up to READ_SIZE of a large payload in
#: progress and nothing after it (so one read never holds more than _SMALL_READ of small frames).
_SMALL_READ = 65536
_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)
READ_SIZE = 1 << 20
_IOV = 64  # buffers per sendmsg()
_READABLE, _WRITABLE = selectors.EVENT_READ, selectors.EVENT_WRITE
Sendable = Union[str, bytes, bytearray, memoryview]


class ReactorConnection:
    """A WebSocket connection served by the reactor; the handler's ``ws``.

    Offers what handlers use on the threaded server's ``WebSocket``:
    ``send`` (never blocks; safe from any thread), ``close``, ``ping``,
    ``path``, ``query``, ``request_headers``, ``subprotocol``,
    ``remote_address``, ``open``, ``close_code`` / ``close_reason``.
    """

    __slots__ = (
        "id", "remote_address", "request", "server", "loop", "sock", "options", "handler", "_conn", "_head",
        "_out", "_queued", "_events", "_tls", "_tls_in", "_tls_out", "_open_timer", "_ka_timer", "_close_timer",
        "_drop_timer", "_last_rx", "_rx", "_ka_mark", "_local", "_closed", "_pings", "_close_after_flush", "_on_message",
        "_backlog", "_stalled",
        "__weakref__",
    )

    def __init__(self, server: "ReactorServer", sock: socket.socket, address: Any) -> None:
        self.id = f"ws-r{next(_ids)}"
        self.remote_address = address
        self.request: Optional[hs.Request] = None
        self.server = server
        self.loop: Loop = server.loop
        self.sock = sock
        self.options: Options = server.options
        self.handler: Any = None
        self._conn: Optional[ServerConnection] = None
        self._head: Optional[hs.HeadReader] = hs.HeadReader(
            self.options.max_request_line, self.options.max_request_headers, self.options.max_request_size)
        self._out: List[Any] = []  # a list, not a deque: an idle connection holds an empty one
        self._queued = 0
        self._events = selectors.EVENT_READ
        self._tls: Optional[ssl.SSLObject] = None
        self._tls_in: Optional[ssl.MemoryBIO] = None
        self._tls_out: Optional[ssl.MemoryBIO] = None
        self._open_timer: Optional[Handle] = None
        self._ka_timer: Optional[Handle] = None
        self._close_timer: Optional[Handle] = None
        self._drop_timer: Optional[Handle] = None
        self._last_rx = monotonic()
        self._rx = 0
        self._ka_mark = -1
        self._local: Optional[Tuple[int, str]] = None  # (code, reason) when we ended it
        self._closed = False
        self._pings: Optional[Dict[bytes, threading.Event]] = None
        self._close_after_flush = False
        self._on_message: Any = None  # the handler's on_message, looked up once it opens
        self._backlog: Optional[List[Any]] = None  # messages taken but not delivered: we went over write_limit
        self._stalled = False  # _process stopped over write_limit: flush resumes it

    # -- what handlers see ---------------------------------------------------------------

    @property
    def path(self) -> Optional[str]:
        return self.request.path if self.request is not None else None

    @property
    def query(self) -> str:
        return self.request.query if self.request is not None else ""

    @property
    def request_headers(self) -> Optional[hs.Headers]:
        return self.request.headers if self.request is not None else None

    @property
    def subprotocol(self) -> Optional[str]:
        return self._conn.subprotocol if self._conn is not None else None

    @property
    def extensions(self) -> List[Extension]:
        """The extensions agreed in the handshake (a :class:`~wsframe.protocol.deflate.PerMessageDeflate`)."""
        return list(self._conn.extensions) if self._conn is not None else []

    @property
    def open(self) -> bool:
        return self._conn is not None and self._conn.state is State.OPEN and not self._closed

    @property
    def close_code(self) -> Optional[int]:
        if self._local is not None and self._closed:
            code: int = self._local[0]
            return code
        return self._conn.close_code if self._conn is not None and self._closed else None

    @property
    def close_reason(self) -> str:
        if self._local is not None and self._closed:
            reason: str = self._local[1]
            return reason
        return self._conn.close_reason if self._conn is not None and self._closed else ""

    @property
    def buffered_amount(self) -> int:
        return self._queued

    def __repr__(self) -> str:
        return f"<ReactorConnection {self.id} {self.remote_address}>"

    def send(self, message: Sendable, compress: Optional[bool] = None) -> None:
        """Queue one message (text for str, binary for bytes); it goes out at the end of the loop turn.

        ``compress`` overrides the compression threshold for this message (see
        :meth:`wsframe.WebSocket.send`).

        Never blocks. From another thread it is handed to the loop. Raises
        :class:`~wsframe.ConnectionClosed` once the connection is closing.
        """
        if self.loop.ident != threading.get_ident():
            self.loop.call_soon_threadsafe(lambda: self._send_quietly(message, compress))
            return
        conn = self._conn
        if conn is None or self._closed:
            raise ConnectionClosed(*(self._local or (CLOSE_ABNORMAL, "")))
        try:
            if len(message) < GATHER_MIN or self._tls is not None:  # (TLS copies into records anyway)
                frame = conn.send_text(message, compress) if isinstance(message, str) else conn.send_binary(message, compress)
            else:  # a large payload is written after its header, not copied behind it
                *head, frame = conn.send_parts(message, compress)
                if head:
                    self._queue(head[0])
        except InvalidState:
            if conn.state is State.OPEN:
                raise
            raise ConnectionClosed(conn.close_code or CLOSE_ABNORMAL, conn.close_reason) from None
        self._queue(frame)

    def _send_quietly(self, message: Sendable, compress: Optional[bool]) -> None:
        try:
            self.send(message, compress)
        except ConnectionClosed:
            pass

    def send_encoded(self, frame: Union[bytes, SharedMessage]) -> bool:
        """Broadcast: queue a frame encoded once; drop the peer instead if it is ``write_limit`` behind."""
        conn = self._conn
        if conn is None or self._closed or conn.state is not State.OPEN:
            return False
        if self._queued > self.options.write_limit:
            self._drop("slow consumer: send buffer full")
            return False
        self._queue(conn.send_encoded(frame))
        return True

    def ping(self, data: Union[str, bytes, None] = None) -> threading.Event:
        """Send a ping; the event is set by its pong (or when the connection ends first)."""
        payload = os.urandom(4) if data is None else (data.encode() if isinstance(data, str) else bytes(data))
        event = threading.Event()

        def go() -> None:
            conn = self._conn
            if conn is None or self._closed or conn.state is not State.OPEN:
                event.set()
                return
            if self._pings is None:
                self._pings = {}
            self._pings[payload] = event
            self._queue(conn.send_ping(payload))

        if self.loop.in_loop():
            go()
        else:
            self.loop.call_soon_threadsafe(go)
        return event

    def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        """Start the closing handshake (the peer has ``close_timeout`` to answer); never blocks."""
        if not self.loop.in_loop():
            self.loop.call_soon_threadsafe(lambda: self.close(code, reason))
            return
        conn = self._conn
        if conn is None:
            self._abort(CLOSE_ABNORMAL, "closed before the handshake")
        elif conn.state is State.OPEN and not self._closed:
            self._queue(conn.close(code, reason))
            timeout = self.options.close_timeout
            if timeout is not None and self._close_timer is None:
                self._close_timer = self.loop.call_later(timeout, self._close_expired)

    # -- the loop's side ------------------------------------------------------------------

    def start(self) -> None:
        """Register with the loop; TLS first when the server has a certificate."""
        self.sock.setblocking(False)
        if self.options.ssl is not None:
            self._tls_in, self._tls_out = ssl.MemoryBIO(), ssl.MemoryBIO()
            self._tls = self.options.ssl.wrap_bio(self._tls_in, self._tls_out, server_side=True)
        self.loop.selector.register(self.sock, self._events, self._on_event)
        timeout = self.options.open_timeout
        if timeout is not None:
            self._open_timer = self.loop.call_later(timeout, self._open_expired)

    def _on_event(self, mask: int) -> None:
        """The socket is ready: write what waits, then read, parse and run the callbacks (their answers go
        out at the end of the loop turn, gathered per connection)."""
        if mask & _WRITABLE:
            self.flush()
        if not mask & _READABLE or self._closed:
            return
        server = self.server
        conn = self._conn
        size = _SMALL_READ
        if conn is not None:
            awaited = conn.payload_awaited
            if awaited > size and self._tls is None:
                size = awaited if awaited < READ_SIZE else READ_SIZE
        try:
            n = self.sock.recv_into(server.read_buffer, size)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            n = 0
        view = server.read_view[:n]  # parsed before the next read reuses the buffer (the core keeps no view)
        if self._tls is not None:
            self._tls_receive(view)
        elif conn is not None and n:  # the common case, inline: an open connection's bytes
            self._rx += n
            self._last_rx = self.loop.now
            conn.receive_data(view)
            self._process()
        else:
            self._received(view)

    def _tls_receive(self, view: memoryview) -> None:
        tls, tls_in = self._tls, self._tls_in
        assert tls is not None and tls_in is not None
        if view:
            tls_in.write(view)
        else:
            tls_in.write_eof()
        try:
            while True:  # read() runs the TLS handshake first

                data = tls.read(_READ)
                if not data:
                    self._received(b"")
                    break
                self._received(data)
        except ssl.SSLWantReadError:
            pass
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            self._received(b"")
        except ssl.SSLError as exc:
            logger.info("%s TLS error: %s", self.id, exc)
            self._abort(CLOSE_ABNORMAL, "TLS error")
        self._tls_flush()

    def _tls_flush(self) -> None:
        if self._tls_out is not None:
            data = self._tls_out.read()
            if data:
                self._write_raw(data)

    def _received(self, data: Any) -> None:
        if self._closed:
            return
        if data:
            self._rx += len(data)
            self._last_rx = self.loop.now
        if self._conn is None:
            self._handshake(data)
            return
        self._conn.receive_data(data)
        self._process()

    def _handshake(self, data: Any) -> None:
        head = self._head
        assert head is not None
        if not data:
            self._abort(CLOSE_ABNORMAL, "closed during the opening handshake")
            return
        try:
            if not head.feed(bytes(data)):
                return
            request = hs.parse_request(head)
        except hs.HandshakeError as exc:
            logger.info("%s bad request: %s", self.id, exc)
            self._respond(hs.error_response(exc).serialize())
            return
        self.request = request
        self._head = None
        if not request.wants_websocket:
            self._respond(plain_http_response(self.id, request, self.options))
            return
        conn = new_server_connection(self.options)
        conn.receive_request(request)
        if head.rest:
            conn.receive_data(head.rest)
        for event in conn.events():
            if type(event) is not Request:
                logger.info("%s upgrade refused: %s", self.id, event)
                self._respond(conn.data_to_send())
                return
            break
        decision = decide_upgrade(self.id, request, self.options)
        if isinstance(decision, Refuse):
            self._respond(conn.reject(decision.status, decision.body, decision.headers))
            return
        subprotocol, headers = decision
        try:
            response = conn.accept(subprotocol, headers)
        except ValueError as exc:
            logger.error("%s cannot accept the upgrade: %s", self.id, exc)
            self._respond(conn.reject(500, "500 Internal Server Error\n"))
            return
        self._conn = conn
        Loop.cancel(self._open_timer)
        self._open_timer = None
        self._queue(response)
        self._start_keepalive()
        self.server._opened(self)
        self._on_message = getattr(self.handler, "on_message", None)
        self._call("on_connect")
        self._process()

    def _respond(self, data: bytes) -> None:
        """An HTTP answer instead of an upgrade; then the connection ends."""
        self._queue(data)
        self._close_after_flush = True
        self._local = self._local or (CLOSE_ABNORMAL, "no upgrade")

    def _process(self) -> None:
        """Deliver what the core has: messages in batches, the other events one at a time between them."""
        conn = self._conn
        assert conn is not None
        limit = self.options.write_limit
        if self._backlog is not None:
            backlog, self._backlog = self._backlog, None
            if conn.state is State.OPEN and not self._deliver(conn, backlog, limit):
                self._stalled = True
                return
        while True:
            messages = conn.take_messages()
            if messages and not self._deliver(conn, messages, limit):
                self._stalled = True  # the rest waits (in the core and the backlog) until the peer reads: see flush
                return
            event = conn.next_event()
            if event is None:
                break
            kind = type(event)
            if kind is TextMessage or kind is BinaryMessage:
                if not self._deliver(conn, [event.data], limit):  # type: ignore[union-attr]
                    self._stalled = True
                    return
            elif kind is Ping:
                out = conn.data_to_send()  # the pong goes out before anything a later callback sends
                if out:
                    self._queue(out)
                self._call("on_ping", event.payload)  # type: ignore[union-attr]
            elif kind is Pong:
                self._on_pong(event.payload)  # type: ignore[union-attr]
            elif kind is Closed:
                out = conn.data_to_send()
                if out:
                    self._queue(out)
                self._close_after_flush = True  # the server closes TCP first (RFC 6455 7.1.1)
                self.loop.dirty.add(self)
                self._finish()
                return
        out = conn.data_to_send()
        if out:
            self._queue(out)

    def _deliver(self, conn: ServerConnection, messages: List[Any], limit: int) -> bool:
        """``on_message`` for each message while the connection is open; False (the rest kept) over ``limit``."""
        on_message = self._on_message
        loop = self.loop
        for i, message in enumerate(messages):
            if i and conn.state is not State.OPEN:  # the handler closed: later messages are discarded
                # (the first is checked by the caller: take_messages() and events() give none unless OPEN)
                return True
            if on_message is not None:
                loop.current = "on_message"
                try:
                    on_message(message)
                except ConnectionClosed:
                    pass
                except Exception:
                    self._failed_callback("on_message")
            if self._queued > limit:
                if i + 1 < len(messages):
                    self._backlog = messages[i + 1:]
                return False
        return True

    def _on_pong(self, payload: bytes) -> None:
        pings = self._pings
        if pings and payload in pings:
            for key in list(pings):
                pings.pop(key).set()
                if key == payload:
                    break
        self._call("on_pong", payload)

    def _call(self, name: str, *args: Any) -> None:
        """Run a handler callback; an exception closes this connection with 1011, nobody else's.

        A slow one is logged by the loop, with ``name`` and this connection's id.
        """
        method = getattr(self.handler, name, None)
        if method is None:
            return
        self.loop.current = name
        try:
            method(*args)
        except ConnectionClosed:
            pass
        except Exception:
            self._failed_callback(name)

    def _failed_callback(self, name: str) -> None:
        logger.exception("%s %s failed; closing with 1011", self.id, name)
        if name != "on_close" and self.open:
            self._local = self._local or (CLOSE_INTERNAL_ERROR, "internal error")
            self.close(CLOSE_INTERNAL_ERROR, "internal error")

    # -- writing --------------------------------------------------------------------------

    def _queue(self, data: bytes) -> None:
        if self._tls is not None:
            self._tls.write(data)
            assert self._tls_out is not None
            data = self._tls_out.read()
            if not data:
                return
        self._write_raw(data)

    def _write_raw(self, data: Any) -> None:
        self._out.append(data)
        self._queued += len(data)
        self.loop.dirty.add(self)

    def flush(self) -> None:
        """Write what is queued, in as few system calls as the socket allows."""
        out = self._out
        sock = self.sock
        while out:
            try:
                if len(out) == 1:
                    n = sock.send(out[0])
                else:
                    n = sock.sendmsg(out[:_IOV])
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self._abort(CLOSE_ABNORMAL, "connection lost")
                return
            self._queued -= n
            done = 0
            while n:
                head = out[done]
                size = len(head)
                if n >= size:
                    done += 1
                    n -= size
                else:
                    out[done] = memoryview(head)[n:]
                    n = 0
            del out[:done]
        limit = self.options.write_limit
        if out or self._events != _READABLE or self._queued > limit or self._drop_timer is not None:
            self._update_interest()  # (otherwise it would change nothing)
        if not out and self._close_after_flush and self.sock.fileno() >= 0:
            self._shutdown()
            return
        if self._stalled and self._queued <= limit and self._conn is not None and not self._closed:
            self._stalled = False
            self._process()  # what waited while we were over the limit

    def _update_interest(self) -> None:
        """Read unless over write_limit; watch writability while bytes wait."""
        if self.sock.fileno() < 0:
            return
        over = self._queued > self.options.write_limit
        events = (0 if over else selectors.EVENT_READ) | (selectors.EVENT_WRITE if self._out else 0)
        if over and self._drop_timer is None and self.options.send_timeout is not None:
            self._drop_timer = self.loop.call_later(self.options.send_timeout, self._drop_if_behind)
        elif not over and self._drop_timer is not None:
            Loop.cancel(self._drop_timer)
            self._drop_timer = None
        if events != self._events:
            self._events = events
            try:
                if events:
                    self.loop.selector.modify(self.sock, events, self._on_event)
                else:  # pragma: no cover - over the limit with nothing queued cannot happen
                    self.loop.selector.modify(self.sock, selectors.EVENT_WRITE, self._on_event)
            except (KeyError, ValueError, OSError):
                pass

    def _drop_if_behind(self) -> None:
        self._drop_timer = None
        if self._queued > self.options.write_limit:
            logger.warning("%s dropped: %d bytes wait for a peer that does not read (write_limit %d)",
                           self.id, self._queued, self.options.write_limit)
            self._drop("slow consumer: the peer does not read")

    def _drop(self, reason: str) -> None:
        if self._local is None:
            self._local = (CLOSE_POLICY_VIOLATION, reason)
        conn = self._conn
        if conn is None or conn.state is not State.OPEN or self._tls is not None:
            self._abort(CLOSE_POLICY_VIOLATION, reason)
            return
        head = self._out[0] if self._out else None
        self._out.clear()
        self._queued = 0
        if head is not None:
            self._out.append(head)
            self._queued = len(head)
        self.close(CLOSE_POLICY_VIOLATION, reason)

    def _shutdown(self) -> None:
        """Our FIN after the last bytes (the server closes TCP first), then let go of the socket."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        self._finish()
        self._release()

    # -- timers -----------------------------------------------------------------------------

    def _open_expired(self) -> None:
        self._open_timer = None
        if self._conn is None and not self._closed:
            logger.info("%s opening handshake timed out", self.id)
            self._abort(CLOSE_ABNORMAL, "opening handshake timed out")

    def _start_keepalive(self) -> None:
        interval = self.options.ping_interval
        if interval is not None:
            self._ka_timer = self.loop.call_at(self._last_rx + interval, self._keepalive)

    def _keepalive(self) -> None:
        interval, timeout = self.options.ping_interval, self.options.ping_timeout
        assert interval is not None
        conn = self._conn
        if conn is None or self._closed or conn.state is not State.OPEN:
            return
        now = monotonic()
        if now < self._last_rx + interval:
            self._ka_timer = self.loop.call_at(self._last_rx + interval, self._keepalive)
            return
        self._queue(conn.send_ping(b""))
        self._ka_mark = self._rx
        if timeout is None:
            self._ka_timer = self.loop.call_at(now + interval, self._keepalive)
        else:
            self._ka_timer = self.loop.call_at(now + timeout, self._keepalive_check)

    def _keepalive_check(self) -> None:
        conn = self._conn
        if conn is None or self._closed or conn.state is not State.OPEN:
            return
        if self._rx != self._ka_mark:
            self._start_keepalive()
            return
        logger.info("%s keepalive ping timeout: closing with 1011", self.id)
        self._local = (CLOSE_INTERNAL_ERROR, "keepalive ping timeout")
        self._queue(conn.close(CLOSE_INTERNAL_ERROR, "keepalive ping timeout"))
        self._close_after_flush = True

    def _close_expired(self) -> None:
        self._close_timer = None
        if not self._closed:
            logger.info("%s closing handshake timed out", self.id)
            self._abort(CLOSE_ABNORMAL, "closing handshake timed out")

    def going_away(self) -> None:
        """Server shutdown: close with 1001."""
        if self._conn is None:
            self._abort(CLOSE_GOING_AWAY, "server shutting down")
        else:
            self.close(CLOSE_GOING_AWAY, "server shutting down")

    # -- ending ---------------------------------------------------------------------------------

    def _abort(self, code: int, reason: str) -> None:
        if self._local is None:
            self._local = (code, reason)
        self._out.clear()
        self._queued = 0
        self._finish()
        self._release()

    def _finish(self) -> None:
        """The WebSocket is over: on_close once, ping waiters released."""
        if self._closed:
            return
        self._closed = True
        for handle in (self._open_timer, self._ka_timer, self._close_timer, self._drop_timer):
            Loop.cancel(handle)
        pings, self._pings = self._pings, None
        for event in (pings or {}).values():
            event.set()
        if self._conn is not None:
            self.server._closed(self)
            self._call("on_close", self.close_code, self.close_reason)

    def _release(self) -> None:
        self.loop.dirty.discard(self)
        try:
            self.loop.selector.unregister(self.sock)
        except (KeyError, ValueError):
            pass
        self.server._released(self)
        try:  # unread input would make close() send a reset that can eat our last frames (as sync does)
            for _ in range(16):
                if self.sock.recv_into(self.server.read_buffer, _SMALL_READ, _DONTWAIT) <= 0:
                    break
        except OSError:  # BlockingIOError: nothing more is here
            pass
        self.sock.close()
