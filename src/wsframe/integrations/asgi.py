"""ASGI WebSockets on uvicorn, framed by wsframe: a drop-in for uvicorn's ``ws`` protocol slot.

::

    uvicorn.run(app, ws="wsframe.integrations.asgi:WsframeProtocol")
    # or: uvicorn module:app --ws wsframe.integrations.asgi:WsframeProtocol

:class:`WsframeProtocol` has the contract of uvicorn's own implementations
(``websockets_impl``, ``websockets_sansio_impl``, ``wsproto_impl``): uvicorn's
HTTP protocol (h11 or httptools) reads the upgrade request, builds this class
with ``config``, ``server_state`` and ``app_state``, calls
``connection_made(transport)`` and ``data_received(request_head)``, then
``transport.set_protocol()`` hands it the socket. From there it is an
:class:`asyncio.BufferedProtocol`: the loop reads into one receive buffer
shared by every connection of the thread, and wsframe's frame reader parses
straight out of it (frames own their payloads; nothing keeps the buffer).

It serves the whole ASGI WebSocket spec (2.4): the ``websocket`` scope,
``websocket.connect`` / ``accept`` (subprotocol, headers) / ``receive`` /
``send`` / ``close`` / ``disconnect``, the ``websocket.http.response``
denial-response extension, and the server's duties around them:

- ``ws_max_size``: a bigger message fails the connection with 1009, decided
  from the frame header before the payload is buffered;
- ``ws_max_queue``: messages waiting for the app's ``receive()``; at that
  many, the socket stops being read until the app has taken three quarters;
- the transport's write-buffer limits: ``send()`` returns once the buffer is
  back under its low-water mark (``pause_writing``/``resume_writing``);
- ``ws_ping_interval`` / ``ws_ping_timeout``: a peer silent for an interval
  gets a ping, and 1011 if nothing at all arrives within the timeout (not
  while reading is paused for the app: a slow app is not the peer's fault);
- the app raising: 500 before it accepted, 1011 after; returning without an
  answer: 403; returning while open: a clean close with 1000;
- uvicorn's shutdown: 1012 to open connections, 503 to pending upgrades.

``ws_per_message_deflate`` (uvicorn's default: on) turns permessage-deflate
on with wsframe's ``"deflate"`` setting (see :mod:`wsframe.protocol.deflate`);
off, offers are declined and clients speak uncompressed.

Subclass to choose the framing backend (``backend = "python"``) or the time
a peer has to answer a close (``close_timeout``). uvicorn itself is not
imported: any server giving the same three arguments and transport can use it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
from collections import deque
from functools import lru_cache
from typing import Any, Awaitable, Callable, Deque, Dict, Iterable, List, Optional, Protocol, Set, Tuple
from urllib.parse import unquote

from ..options import Options
from ..protocol.connection import GATHER_MIN, ServerConnection, State
from ..protocol.events import BinaryMessage, CloseReceived, Closed, Rejected, Request, TextMessage
from ..sync.opening import new_server_connection

__all__ = ["WsframeProtocol", "ClientDisconnected"]

logger = logging.getLogger("uvicorn.error")

Message = Dict[str, Any]
ASGIApp = Callable[[Dict[str, Any], Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
                   Awaitable[Any]]

# The loop reads into a buffer shared by the thread's connections; the frame reader parses each
# read before the next. 256 KiB at a time, or up to 1 MiB of a large payload in progress (and
# nothing past its end), so a large message takes a few reads instead of many.
_READ_BUFFER = 256 * 1024
_LARGE_READ = 1 << 20
_local = threading.local()

# What the ASGI side of a connection is doing.
_HANDSHAKE = 0  # waiting for the request, then for the app's accept / close / response
_RESPONDING = 1  # the app is sending a denial response (websocket.http.response.*)
_OPEN = 2  # accepted: messages both ways
_CLOSING = 3  # the app sent websocket.close (or we closed for it): waiting for the peer's reply
_DONE = 4  # answered with HTTP, or over


class ClientDisconnected(OSError):
    """``send()`` on a connection that is over (ASGI 2.4: a server-specific ``OSError``)."""


class ConfigLike(Protocol):
    """What is read from uvicorn's ``Config``."""

    loaded: bool
    loaded_app: Any
    root_path: str
    ws_max_size: int
    ws_max_queue: int
    ws_ping_interval: Optional[float]
    ws_ping_timeout: Optional[float]
    ws_per_message_deflate: bool

    @property
    def asgi_version(self) -> str: ...

    def load(self) -> None: ...


class ServerStateLike(Protocol):
    """What is used of uvicorn's ``ServerState``: shared by every connection of the server."""

    connections: Set[Any]
    tasks: Set["asyncio.Task[None]"]
    default_headers: List[Tuple[bytes, bytes]]


@lru_cache(maxsize=32)
def _options(max_size: int, backend: Optional[str], compress: bool) -> Options:
    return Options(max_message_size=max_size, backend=backend, compression="deflate" if compress else None)


def _shared_buffer() -> memoryview:
    """This thread's read buffer (_LARGE_READ bytes; reads use the first _READ_BUFFER unless a payload is awaited)."""
    view: Optional[memoryview] = getattr(_local, "view", None)
    if view is None:
        view = _local.view = memoryview(bytearray(_LARGE_READ))
    return view


def _address(transport: asyncio.BaseTransport, peer: bool) -> Optional[Tuple[str, Optional[int]]]:
    sock = transport.get_extra_info("socket")
    info: Any
    if sock is not None:
        try:
            info = sock.getpeername() if peer else sock.getsockname()
        except OSError:
            return None
    else:
        info = transport.get_extra_info("peername" if peer else "sockname")
    if isinstance(info, (tuple, list)) and len(info) >= 2:
        return str(info[0]), int(info[1])
    if isinstance(info, str) and info and not peer:
        return info, None  # a Unix domain socket: [path, None]
    return None


def _str_headers(raw: Iterable[Any]) -> List[Tuple[str, str]]:
    """ASGI headers (byte pairs) as the str pairs the handshake takes (latin-1, as HTTP/1.1 is)."""
    return [(bytes(name).decode("latin-1"), bytes(value).decode("latin-1")) for name, value in raw]


class WsframeProtocol(asyncio.BufferedProtocol):
    """One WebSocket connection of uvicorn, from the upgrade request on (see the module docstring)."""

    #: Framing backend of the connections: None for the active one, "cython" or "python".
    backend: Optional[str] = None
    #: Seconds the peer has to answer our close frame (and to take our last bytes) before TCP is cut.
    close_timeout: float = 10.0

    def __init__(
        self,
        config: ConfigLike,
        server_state: ServerStateLike,
        app_state: Optional[Dict[str, Any]] = None,
        _loop: Optional[asyncio.AbstractEventLoop] = None,
    ) -> None:
        if not config.loaded:
            config.load()
        self.config = config
        self.app: ASGIApp = config.loaded_app
        self.loop = _loop if _loop is not None else asyncio.get_running_loop()
        self.root_path = config.root_path
        self.asgi_version = config.asgi_version
        self.app_state = app_state
        self.connections = server_state.connections
        self.tasks = server_state.tasks
        self.default_headers = server_state.default_headers
        self.max_queue = max(1, int(config.ws_max_queue))
        self.low_water = self.max_queue // 4
        self.ping_interval = config.ws_ping_interval or None  # 0 disables, as None does
        self.ping_timeout = config.ws_ping_timeout or None
        self.per_message_deflate = bool(config.ws_per_message_deflate)
        self.conn: ServerConnection = new_server_connection(
            _options(config.ws_max_size, self.backend, self.per_message_deflate))

        self.transport: asyncio.Transport = None  # type: ignore[assignment]  # set by connection_made
        self.server: Optional[Tuple[str, Optional[int]]] = None
        self.client: Optional[Tuple[str, Optional[int]]] = None
        self.scheme = "ws"
        self.scope: Dict[str, Any] = {}

        self._phase = _HANDSHAKE
        self._buffer: memoryview = memoryview(b"")
        self._small = self._given = self._buffer
        # From this size on a message is written as header + payload, unjoined: on uvloop's plain
        # TCP transports only, whose writelines() is one vectored write that pauses the protocol
        # like write(). asyncio's joins them on 3.11 and does not pause the protocol on
        # 3.12.0-3.12.8 and 3.13.0-3.13.1 (CPython gh-127655); under TLS the header would
        # become a TLS record of its own.
        self._gather_min = sys.maxsize
        self._queue: Deque[Message] = deque()
        self._waiters: List["asyncio.Future[None]"] = []
        self._disconnect: Optional[Message] = None
        self._queue_full = False  # reading stopped because the app is max_queue messages behind
        self._read_paused = False  # the transport's reading is paused (by us)
        self._write_paused = False  # the transport's write buffer is above its high-water mark
        self._drainers: List["asyncio.Future[None]"] = []
        self._lost = False
        self._closing = False  # transport.close() was called
        self._close_handle: Optional[asyncio.TimerHandle] = None
        self._ping_handle: Optional[asyncio.TimerHandle] = None
        self._heard = False  # bytes arrived since the keepalive last looked
        self._response: Optional[Tuple[int, List[Tuple[str, str]], List[bytes]]] = None

    # -- asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.connections.add(self)
        self.server = _address(transport, peer=False)
        self.client = _address(transport, peer=True)
        self.scheme = "wss" if transport.get_extra_info("sslcontext") else "ws"
        if self.scheme == "ws" and type(transport).__module__.startswith("uvloop"):
            self._gather_min = GATHER_MIN
        self._buffer = _shared_buffer()
        self._small = self._given = self._buffer[:_READ_BUFFER]

    def data_received(self, data: bytes) -> None:
        """How uvicorn's HTTP protocol hands over the upgrade request (the loop itself uses buffer_updated)."""
        self._heard = True
        self.conn.receive_data(data)
        self._process()

    def get_buffer(self, sizehint: int) -> memoryview:
        awaited = self.conn.payload_awaited
        if awaited > _READ_BUFFER:
            self._given = self._buffer[:awaited] if awaited < _LARGE_READ else self._buffer
        else:
            self._given = self._small
        return self._given

    def buffer_updated(self, nbytes: int) -> None:
        self._heard = True
        self.conn.receive_data(self._given[:nbytes])
        self._process()

    def eof_received(self) -> Optional[bool]:
        self.conn.receive_eof()
        self._process()
        return None  # the transport closes itself

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        self._lost = True
        self.connections.discard(self)
        self._stop_keepalive()
        if self._close_handle is not None:
            self._close_handle.cancel()
            self._close_handle = None
        if self.conn.state is not State.CLOSED:
            self.conn.receive_eof()
        self._process()  # everything still buffered, then Closed (1006 without a closing handshake)
        self._end(1006, "")
        if self._phase == _RESPONDING:
            self._phase = _DONE
        self._wake()
        self._write_paused = False
        self._wake_drainers()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake_drainers()

    def shutdown(self) -> None:
        """uvicorn's server is stopping: 1012 to an open connection, 503 to an unanswered upgrade."""
        self._stop_keepalive()
        if self._phase == _OPEN and self.conn.state is State.OPEN:
            self._write(self.conn.close(1012, "server restarting"))
            self._phase = _CLOSING
            self._end(1012, "server restarting")
            self._start_close_timer()
            self._resume_for_close()
        elif self._phase in (_HANDSHAKE, _RESPONDING) and self.conn.request is not None:
            self._respond(self.conn.reject(503, "Service Unavailable: the server is shutting down\n"))
        elif self._phase != _CLOSING:
            self._close_transport()

    # -- bytes in: the sans-I/O core's events ----------------------------------------

    def _process(self) -> None:
        conn = self.conn
        queue = self._queue
        while True:
            if self._phase == _OPEN:  # the messages ahead of the next event, in one call, up to max_queue
                room = None if self._lost else self.max_queue - len(queue)  # (lost: all of them, then Closed)
                for data in conn.take_messages(room):
                    if isinstance(data, str):
                        queue.append({"type": "websocket.receive", "text": data})
                    else:
                        queue.append({"type": "websocket.receive", "bytes": data})
                if room is not None and len(queue) >= self.max_queue:
                    self._pause_for_queue()
                    break
            event = conn.next_event()
            if event is None:
                break
            kind = type(event)
            if kind is TextMessage:
                if self._phase == _OPEN:
                    queue.append({"type": "websocket.receive", "text": event.data})  # type: ignore[union-attr]
                    if len(queue) >= self.max_queue and not self._lost:
                        self._pause_for_queue()
                        break
            elif kind is BinaryMessage:
                if self._phase == _OPEN:
                    queue.append({"type": "websocket.receive", "bytes": event.data})  # type: ignore[union-attr]
                    if len(queue) >= self.max_queue and not self._lost:
                        self._pause_for_queue()
                        break
            elif kind is CloseReceived:
                self._end(event.code, event.reason)  # type: ignore[union-attr]
            elif kind is Closed:
                self._end(event.code, event.reason)  # type: ignore[union-attr]
                self._stop_keepalive()
            elif kind is Request:
                self._on_request(event.request)  # type: ignore[union-attr]
            elif kind is Rejected:
                # Not a valid upgrade: the core answered (400, 405, 426 ...); the app never runs.
                logger.info('%s - "WebSocket %s" %d', self._who(), "-", event.status)  # type: ignore[union-attr]
                self._phase = _DONE
            # Ping (the pong is queued) and Pong (its bytes already count as life) need nothing.
        if self._waiters:
            self._wake()
        data = conn.data_to_send()
        if data:
            self._write(data)
        if conn.should_close_transport and not self._closing:
            self._close_transport()

    def _on_request(self, request: Any) -> None:
        root = self.root_path
        path = request.path
        version = request.version
        scope: Dict[str, Any] = {
            "type": "websocket",
            "asgi": {"version": self.asgi_version, "spec_version": "2.4"},
            "http_version": version[5:] if version.startswith("HTTP/") else "1.1",
            "scheme": self.scheme,
            "server": self.server,
            "client": self.client,
            "root_path": root,
            "path": root + unquote(path),
            "raw_path": root.encode("latin-1") + path.encode("latin-1"),
            "query_string": request.query.encode("latin-1"),
            "headers": [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in request.headers],
            "subprotocols": request.subprotocols,
            "extensions": {"websocket.http.response": {}},
        }
        if self.app_state is not None:
            scope["state"] = self.app_state.copy()
        self.scope = scope
        self._queue.append({"type": "websocket.connect"})
        task = self.loop.create_task(self._run_asgi())
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)

    def _end(self, code: int, reason: str) -> None:
        """Queue the app's one websocket.disconnect (the first reason the connection ended wins)."""
        if self._disconnect is None:
            self._disconnect = {"type": "websocket.disconnect", "code": code, "reason": reason}
            self._queue.append(self._disconnect)
            self._wake()

    # -- back-pressure ---------------------------------------------------------------

    def _pause_for_queue(self) -> None:
        self._queue_full = True
        if not self._read_paused:
            self._read_paused = True
            self.transport.pause_reading()

    def _drained(self) -> None:
        """The app caught up: turn what is already buffered into messages, then read again."""
        self._queue_full = False
        if self.conn.has_pending_input:
            self._process()  # may fill the queue again
        if not self._queue_full and self._read_paused and not self._lost and not self._closing:
            self._read_paused = False
            self.transport.resume_reading()

    def _resume_for_close(self) -> None:
        """We sent a close: data frames are discarded from now on, and the peer's reply must be read."""
        if self._queue_full or self._read_paused:
            self._drained()

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _wake_drainers(self) -> None:
        drainers, self._drainers = self._drainers, []
        for drainer in drainers:
            if not drainer.done():
                drainer.set_result(None)

    async def _drain(self) -> None:
        while self._write_paused and not self._lost:
            drainer = self.loop.create_future()
            self._drainers.append(drainer)
            await drainer
        if self._lost:
            raise ClientDisconnected("the connection was lost while sending")

    # -- bytes out -------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        if not self._lost and not self._closing:
            self.transport.write(data)

    def _write_parts(self, parts: Tuple[bytes, ...]) -> None:
        if len(parts) == 1:  # an extension changed the message: one frame
            self.transport.write(parts[0])
        else:
            self.transport.writelines(parts)

    def _close_transport(self) -> None:
        """End TCP once our bytes are out; cut it if the peer does not let that happen in time.

        A lingering close where the transport can half-close: our FIN goes out
        after the last byte (the server closes first, RFC 6455 7.1.1), and what
        the peer still sends is read and dropped until its EOF. Closing at once
        would answer those bytes with a reset, which can destroy our close frame
        (1009 to a client still sending its big message) before it is read.
        """
        if self._closing or self._lost:
            return
        self._closing = True
        self._stop_keepalive()
        transport = self.transport
        if transport.can_write_eof():
            transport.write_eof()
            if self._read_paused:
                self._read_paused = False
                self._queue_full = False
                transport.resume_reading()
        else:
            transport.close()
        self._start_close_timer()

    def _start_close_timer(self) -> None:
        if self._close_handle is None and not self._lost:
            self._close_handle = self.loop.call_later(self.close_timeout, self._abort)

    def _abort(self) -> None:
        self._close_handle = None
        if not self._lost:
            self._closing = True
            self.transport.abort()

    def _respond(self, data: bytes) -> None:
        """Answer the upgrade with an HTTP response and end the connection."""
        self._phase = _DONE
        self._write(data)
        self._end(1006, "")
        self._close_transport()

    # -- keepalive -------------------------------------------------------------------

    def _start_keepalive(self) -> None:
        if self.ping_interval is not None:
            self._heard = False
            self._ping_handle = self.loop.call_later(self.ping_interval, self._keepalive_tick)

    def _stop_keepalive(self) -> None:
        if self._ping_handle is not None:
            self._ping_handle.cancel()
            self._ping_handle = None

    def _keepalive_tick(self) -> None:
        self._ping_handle = None
        if self.conn.state is not State.OPEN or self._closing or self._lost or self.ping_interval is None:
            return
        if self._heard or self._read_paused:  # the peer spoke, or we are not listening: no ping needed
            self._heard = False
            self._ping_handle = self.loop.call_later(self.ping_interval, self._keepalive_tick)
            return
        self._write(self.conn.send_ping(os.urandom(4)))
        if self.ping_timeout is None:
            self._ping_handle = self.loop.call_later(self.ping_interval, self._keepalive_tick)
        else:
            self._ping_handle = self.loop.call_later(self.ping_timeout, self._keepalive_deadline)

    def _keepalive_deadline(self) -> None:
        self._ping_handle = None
        if self.conn.state is not State.OPEN or self._closing or self._lost:
            return
        if self._heard or self._read_paused:
            self._heard = False
            if self.ping_interval is not None:
                self._ping_handle = self.loop.call_later(self.ping_interval, self._keepalive_tick)
            return
        logger.info('%s - "WebSocket %s" keepalive ping timeout', self._who(), self._path())
        self._write(self.conn.close(1011, "keepalive ping timeout"))
        if self._phase == _OPEN:
            self._phase = _CLOSING
        self._end(1011, "keepalive ping timeout")
        self._close_transport()  # a silent peer will not answer our close either

    # -- the ASGI app ----------------------------------------------------------------

    async def _run_asgi(self) -> None:
        try:
            result = await self.app(self.scope, self.receive, self.send)
        except ClientDisconnected:
            self._app_returned()
        except BaseException as exc:
            if not isinstance(exc, asyncio.CancelledError):
                logger.exception("Exception in ASGI application\n")
            self._app_failed()
            if isinstance(exc, (asyncio.CancelledError, KeyboardInterrupt, SystemExit)):
                raise
        else:
            if result is not None:
                logger.error("ASGI callable should return None, but returned '%s'.", result)
            self._app_returned()

    def _app_failed(self) -> None:
        phase = self._phase
        if phase in (_HANDSHAKE, _RESPONDING):
            if self.conn.request is not None and not self._lost:
                self._respond(self.conn.reject(500, "Internal Server Error\n"))
        elif phase == _OPEN:
            self._app_close(1011, "Internal Server Error")

    def _app_returned(self) -> None:
        phase = self._phase
        if phase == _HANDSHAKE:
            if self.conn.request is not None and not self._lost:
                logger.error('%s - "WebSocket %s" 403 (the app returned without accepting)',
                             self._who(), self._path())
                self._respond(self.conn.reject(403))
        elif phase == _RESPONDING:
            self._finish_response()  # what the app sent of its body
        elif phase == _OPEN:
            self._app_close(1000, "")

    def _app_close(self, code: int, reason: str) -> None:
        self._phase = _CLOSING
        if self.conn.state is State.OPEN and not self._lost and not self._closing:
            self._write(self.conn.close(code, reason))
            self._stop_keepalive()
            self._end(code, reason)
            self._start_close_timer()
            self._resume_for_close()

    async def receive(self) -> Message:
        """ASGI ``receive``: websocket.connect, websocket.receive ..., websocket.disconnect (then again)."""
        queue = self._queue
        while not queue:
            if self._disconnect is not None:
                return self._disconnect  # already delivered: every later call gets it too
            waiter = self.loop.create_future()
            self._waiters.append(waiter)
            await waiter
        message = queue.popleft()
        if self._queue_full and len(queue) <= self.low_water:
            self._drained()
        return message

    async def send(self, message: Message) -> None:
        """ASGI ``send``."""
        kind = message["type"]
        if self._phase == _OPEN and kind == "websocket.send":  # the hot path
            conn = self.conn
            if conn.state is not State.OPEN or self._lost or self._closing:
                raise ClientDisconnected("the WebSocket is closed")
            data = message.get("bytes")
            if data is not None:
                if len(data) >= self._gather_min and type(data) is bytes:
                    self._write_parts(conn.send_parts(data))
                else:
                    self.transport.write(conn.send_binary(data))
            else:
                text = message.get("text")
                if text is None:
                    raise RuntimeError("websocket.send needs 'bytes' or 'text'")
                if len(text) >= self._gather_min and type(text) is str:
                    self._write_parts(conn.send_parts(text))
                else:
                    self.transport.write(conn.send_text(text))
            if self._write_paused:
                await self._drain()
            return
        phase = self._phase
        if phase == _HANDSHAKE:
            if self._lost or self._closing:
                raise ClientDisconnected("the client left before the handshake was answered")
            if kind == "websocket.accept":
                self._accept(message)
            elif kind == "websocket.close":
                logger.info('%s - "WebSocket %s" 403', self._who(), self._path())
                self._respond(self.conn.reject(403))
            elif kind == "websocket.http.response.start":
                status = message["status"]
                if not isinstance(status, int) or not 200 <= status <= 599:
                    raise RuntimeError(f"Invalid HTTP status code {status!r} in response.")
                self._response = (status, _str_headers(message.get("headers", ())), [])
                self._phase = _RESPONDING
            else:
                raise RuntimeError(
                    "Expected ASGI message 'websocket.accept', 'websocket.close' or "
                    f"'websocket.http.response.start' but got '{kind}'."
                )
        elif phase == _OPEN:
            if kind == "websocket.close":
                code = message.get("code", 1000)
                reason = message.get("reason") or ""
                if self.conn.state is State.OPEN and not self._lost and not self._closing:
                    frame = self.conn.close(code, reason)  # ValueError for a code or reason that cannot be sent
                    self._phase = _CLOSING
                    self._write(frame)
                    self._stop_keepalive()
                    self._end(code if code is not None else 1005, reason)
                    self._start_close_timer()
                    self._resume_for_close()
                else:
                    self._phase = _CLOSING  # already over (the peer closed, or left): nothing to send
            else:
                raise RuntimeError(f"Expected ASGI message 'websocket.send' or 'websocket.close', but got '{kind}'.")
        elif phase == _RESPONDING:
            if kind != "websocket.http.response.body":
                raise RuntimeError(f"Expected ASGI message 'websocket.http.response.body' but got '{kind}'.")
            assert self._response is not None
            self._response[2].append(bytes(message.get("body", b"")))
            if not message.get("more_body", False):
                self._finish_response()
        elif self._lost or (self._closing and phase != _CLOSING):
            raise ClientDisconnected("the connection is over")
        elif phase == _CLOSING and kind == "websocket.close":
            return  # closing twice is harmless
        else:
            raise RuntimeError(f"Unexpected ASGI message '{kind}', after sending 'websocket.close' "
                               "or the response.")

    def _accept(self, message: Message) -> None:
        extra = _str_headers(message.get("headers") or ())
        names = {name.lower() for name, _ in extra}
        headers = [(n, v) for n, v in _str_headers(self.default_headers) if n.lower() not in names] + extra
        response = self.conn.accept(message.get("subprotocol"), headers)  # ValueError: not offered, reserved header
        logger.info('%s - "WebSocket %s" [accepted]', self._who(), self._path())
        self._phase = _OPEN
        self._write(response)
        self._start_keepalive()
        if self.conn.has_pending_input:  # frames that came before our answer
            self._process()

    def _finish_response(self) -> None:
        assert self._response is not None
        status, headers, body = self._response
        names = {name.lower() for name, _ in headers}
        defaults = [(n, v) for n, v in _str_headers(self.default_headers) if n.lower() not in names]
        logger.info('%s - "WebSocket %s" %d', self._who(), self._path(), status)
        self._respond(self.conn.reject(status, b"".join(body), defaults + headers))

    # -- logging ---------------------------------------------------------------------

    def _who(self) -> str:
        client = self.client
        return f"{client[0]}:{client[1]}" if client is not None and client[1] is not None else ""

    def _path(self) -> str:
        path = self.scope.get("path", "")
        query = self.scope.get("query_string", b"")
        return f"{path}?{query.decode('latin-1')}" if query else str(path)
