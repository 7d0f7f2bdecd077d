"""Sans-I/O WebSocket connections: bytes in, events out; method calls in, bytes out.

No sockets, no threads, no clocks. Drive a connection from any I/O loop::

    conn = ServerConnection()
    while True:
        data = sock.recv(65536)
        conn.receive_data(data)              # b"" means the peer closed TCP
        for event in conn.events():
            if isinstance(event, Request):
                sock.sendall(conn.accept())
            elif isinstance(event, TextMessage):
                sock.sendall(conn.send_text(event.data))
        sock.sendall(conn.data_to_send())    # pongs and close replies
        if conn.should_close_transport:
            break

Events are produced lazily: a decision taken between two events (``accept()``
after :class:`Request`) applies to the bytes that follow, and frames not yet
iterated stay queued, never lost.

Layers: ``FrameReader`` (bytes → frames, all per-frame rules, from the active
backend) → :class:`Connection` (frames → messages, control frames, closing)
→ your code. Sending goes the other way through ``encode_frame``.
"""

from __future__ import annotations

import codecs
import enum
import os
from collections import deque
from typing import TYPE_CHECKING, Any, Deque, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

from . import backend as _backend

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

    from .frames import Frame, FrameReader
from . import extensions as ext
from . import handshake as hs
from . import http11
from .errors import InvalidState, ProtocolError
from .events import (
    Accepted,
    BinaryMessage,
    CloseReceived,
    Closed,
    Event,
    Fragment,
    Ping,
    Pong,
    Rejected,
    Request,
    TextMessage,
)

__all__ = [
    "State", "Trigger", "TRANSITIONS", "Connection", "ServerConnection", "ClientConnection",
    "DEFAULT_MAX_MESSAGE_SIZE", "DEFAULT_MAX_FRAGMENTS", "is_valid_close_code", "encode_message", "SharedMessage",
]

from .constants import (  # noqa: E402
    CLOSE_ABNORMAL,
    CLOSE_TOO_BIG,
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_PONG,
    OP_TEXT,
)

if TYPE_CHECKING:
    from .kernels_py import Utf8Validator

#: Default limit on a received message: protects a server, like websockets' 1 MiB.
DEFAULT_MAX_MESSAGE_SIZE = 2**20

#: Default limit on the frames of one received message, empty ones included (Node's
#: ws has the same default for its maxFragments). Without it, a peer could hold a
#: message open with an endless stream of two-byte empty continuation frames.
DEFAULT_MAX_FRAGMENTS = 128 * 1024

_UTF8_DECODER = codecs.getincrementaldecoder("utf-8")  # stream mode: text split anywhere across frames
_KEY_POOL = 4096  # bytes of mask keys drawn from the OS at a time (1024 frames)
GATHER_MIN = 65536  # send_parts(): from this many bytes on, a payload is not copied behind its header


class State(enum.IntEnum):
    """Where a connection is in its life (RFC 6455 sections 4 and 7)."""

    CONNECTING = 0
    OPEN = 1
    CLOSING = 2  # we sent a close frame and wait for the peer's
    CLOSED = 3


class Trigger(enum.Enum):
    """What moves a connection from one :class:`State` to another."""

    ACCEPTED = "accepted"  # server: accept(); client: a valid 101 response (Accepted)
    REFUSED = "refused"  # reject(), an invalid request or response (Rejected), EOF during the handshake
    CLOSE_SENT = "close sent"  # close()
    CLOSE_RECEIVED = "close received"  # the peer's close frame (CloseReceived)
    FAILED = "failed"  # a protocol violation: we sent 1002/1007/1009 and stop reading
    EOF = "eof"  # the transport ended without a closing handshake (1006)


#: Every state change there is: (state, trigger) -> next state. Any other pair is
#: refused with InvalidState. Each change into CLOSED queues the Closed event,
#: so Closed is always the last event of a connection, whichever way it ends.
TRANSITIONS: Dict[Tuple[State, Trigger], State] = {
    (State.CONNECTING, Trigger.ACCEPTED): State.OPEN,
    (State.CONNECTING, Trigger.REFUSED): State.CLOSED,
    (State.OPEN, Trigger.CLOSE_SENT): State.CLOSING,
    (State.OPEN, Trigger.CLOSE_RECEIVED): State.CLOSED,
    (State.OPEN, Trigger.FAILED): State.CLOSED,
    (State.OPEN, Trigger.EOF): State.CLOSED,
    (State.CLOSING, Trigger.CLOSE_RECEIVED): State.CLOSED,
    (State.CLOSING, Trigger.FAILED): State.CLOSED,
    (State.CLOSING, Trigger.EOF): State.CLOSED,
}


def is_valid_close_code(code: int) -> bool:
    """True for codes an endpoint may send in a close frame (RFC 6455 7.4, IANA registry).

    1005, 1006 and 1015 are only ever reported, never sent; 1004 is reserved.
    """
    return code in (1000, 1001, 1002, 1003) or 1007 <= code <= 1014 or 3000 <= code <= 4999


def _no_limit(limit: Optional[int]) -> int:
    """A Connection limit as FrameReader takes it: -1 for none."""
    return -1 if limit is None else limit


def _close_payload(code: Optional[int], reason: str) -> bytes:
    if not isinstance(reason, str):
        raise TypeError("a close reason is a str")
    if code is not None and (not isinstance(code, int) or isinstance(code, bool)):
        raise TypeError("a close code is an int")
    if code is None:
        if reason:
            raise ValueError("a close reason needs a close code")
        return b""
    if not is_valid_close_code(code):
        raise ValueError(f"close code {code} cannot be sent")
    data = reason.encode("utf-8")
    if len(data) > 123:
        raise ValueError("a close reason is at most 123 bytes of UTF-8")
    return code.to_bytes(2, "big") + data


class Connection:
    """An open WebSocket connection, either role, after the handshake.

    Use it directly when something else did the HTTP upgrade (an existing
    server); :class:`ServerConnection` and :class:`ClientConnection` add the
    handshake in front.

    ``max_message_size`` and ``max_frame_size`` bound what the peer may send
    in bytes, ``max_fragments`` the frames of one message (1009 over any of
    them, decided from headers before any payload is buffered); ``None``
    disables a limit. ``stream=True`` delivers :class:`Fragment`
    events as frames arrive instead of whole messages. ``auto_pong`` answers
    pings with the same payload. ``backend`` is ``"cython"``, ``"python"`` or
    None for the active one. ``extensions`` are the ones the handshake agreed
    on (:mod:`.extensions`; :class:`ServerConnection` and
    :class:`ClientConnection` negotiate them from factories instead): every
    data message passes through them, and they alone may set RSV bits.

    :attr:`state` changes only as :data:`TRANSITIONS` allows, and every change
    goes through :meth:`_transition`.
    """

    _INITIAL_STATE = State.OPEN  # the handshake was done elsewhere

    # Slots, not a __dict__: over 30 attributes make an instance dict of 1.5 KiB (issue 12: memory per
    # idle connection). Subclasses declare their own.
    __slots__ = (
        "client", "max_message_size", "max_frame_size", "max_fragments", "auto_pong", "stream", "_backend",
        "_state", "subprotocol", "close_code", "close_reason", "_reader", "extensions", "_allowed_rsv",
        "_message_rsv", "_decoded", "_text_check", "_incoming", "_frames", "_next", "_ready", "_deferred",
        "_outgoing", "_eof", "_failed", "_close_sent", "_parts", "_message_text", "_decoder",
        "_sending_fragments", "_keys", "_key_pos", "__weakref__",
    )

    def __init__(
        self,
        client: bool = False,
        *,
        max_message_size: Optional[int] = DEFAULT_MAX_MESSAGE_SIZE,
        max_frame_size: Optional[int] = None,
        max_fragments: Optional[int] = DEFAULT_MAX_FRAGMENTS,
        auto_pong: bool = True,
        stream: bool = False,
        backend: Optional[str] = None,
        extensions: Sequence[ext.Extension] = (),
    ) -> None:
        for name, limit in (("max_message_size", max_message_size), ("max_frame_size", max_frame_size)):
            if limit is not None and limit < 0:
                raise ValueError(f"{name} must be >= 0, or None for no limit")
        if max_fragments is not None and max_fragments < 1:
            raise ValueError("max_fragments must be >= 1, or None for no limit")
        self.client = client
        self.max_message_size = max_message_size
        self.max_frame_size = max_frame_size
        self.max_fragments = max_fragments
        self.auto_pong = auto_pong
        self.stream = stream
        self._backend = _backend.active if backend is None else _backend.load(backend)
        self._state = self._INITIAL_STATE
        self.subprotocol: Optional[str] = None
        self.close_code: Optional[int] = None
        self.close_reason = ""
        self._reader: Optional[FrameReader] = None
        self.extensions: List[ext.Extension] = []
        self._allowed_rsv = 0
        self._use_extensions(extensions)
        self._message_rsv = 0  # RSV bits of the first frame of the message being received
        self._decoded = 0  # bytes of it the extensions produced so far
        self._text_check: Optional[Utf8Validator] = None  # UTF-8 of text the extensions produce
        # Chunks that arrived before they could be parsed (the handshake, a decision pending): a deque
        # (a peer may send many), made when the first one comes. Parsed frames not yet taken are
        # _frames[_next:], a list the reader returned: taken by index, cleared once all are taken.
        # Events are a list: a handful at most. An empty deque costs 760 bytes, an empty list 56
        # (issue 12: 10,000 idle connections).
        self._incoming: Optional[Deque[bytes]] = None
        self._frames: List[Frame] = []
        self._next = 0
        self._ready: List[Event] = []
        # A failure found by take_messages() behind the messages it returned: events() acts on it next.
        self._deferred: Optional[ProtocolError] = None
        self._outgoing = bytearray()
        self._eof = False
        self._failed = False
        self._close_sent = False
        self._parts: List[bytes] = []
        self._message_text = False
        self._decoder: Optional[codecs.IncrementalDecoder] = None
        self._sending_fragments: Optional[bool] = None  # text? while a fragmented send is open
        self._keys = b""
        self._key_pos = 0

    @property
    def state(self) -> State:
        """Where the connection is: read-only, it changes by :data:`TRANSITIONS` alone.

        (Inside the class, the hot paths read ``_state``: a property costs a call per message.)
        """
        return self._state

    def _transition(self, trigger: Trigger, code: int = CLOSE_ABNORMAL, reason: str = "") -> None:
        """The one place the state changes; entering CLOSED records how and queues :class:`Closed`."""
        new = TRANSITIONS.get((self._state, trigger))
        if new is None:
            raise InvalidState(f"a connection in state {self._state.name} cannot become {trigger.value}")
        self._state = new
        if new is State.CLOSED:
            self.close_code = code
            self.close_reason = reason
            self._incoming = None
            self._frames.clear()
            self._next = 0
            self._deferred = None
            for extension in self.extensions:
                extension.release()
            self._ready.append(Closed(code, reason))

    def _use_extensions(self, extensions: Sequence[ext.Extension]) -> None:
        """Adopt the negotiated extensions: their RSV bits become legal (before the reader exists)."""
        self.extensions = list(extensions)
        self._allowed_rsv = 0
        for extension in self.extensions:
            self._allowed_rsv |= extension.rsv

    # -- receiving -------------------------------------------------------------------

    def receive_data(self, data: Union[bytes, bytearray, memoryview]) -> None:
        """Hand over bytes read from the transport; ``b""`` means it reached EOF.

        The bytes are not kept: a caller may reuse its receive buffer at once.
        """
        if not data:
            self._eof = True
        elif self._state is State.CLOSED:
            pass
        elif self._state is not State.CONNECTING and not self._incoming:
            # Parse now, straight from the caller's buffer (frames own their payloads);
            # turning frames into events stays lazy, in events().
            reader = self._reader
            self._add_frames((reader if reader is not None else self._reader_for_open()).feed(data))
        elif self._incoming is None:
            self._incoming = deque((bytes(data),))
        else:
            self._incoming.append(bytes(data))

    def _add_frames(self, frames: List[Frame]) -> None:
        if not frames:
            return
        if self._next == len(self._frames):  # all taken (the usual case): adopt the reader's list
            self._frames = frames
            self._next = 0
        else:
            del self._frames[:self._next]
            self._next = 0
            self._frames.extend(frames)

    def _unread(self, data: bytes) -> None:
        """Put bytes back in front of the input (what came after the handshake's head)."""
        if self._incoming is None:
            self._incoming = deque()
        self._incoming.appendleft(data)

    def _take_frame(self) -> Frame:
        frames = self._frames
        frame = frames[self._next]
        self._next += 1
        if self._next == len(frames):
            frames.clear()
            self._next = 0
        return frame

    def receive_eof(self) -> None:
        """The transport reached EOF (same as ``receive_data(b"")``)."""
        self._eof = True

    def events(self) -> Iterator[Event]:
        """Yield the events the received bytes make, in order, as they are iterated."""
        while True:
            if self._ready:
                yield self._ready.pop(0)
                continue
            if self._deferred is not None:
                exc, self._deferred = self._deferred, None
                self._fail(exc.code, exc.reason)
                continue
            if self._next < len(self._frames):
                try:
                    self._on_frame(self._take_frame())
                except ProtocolError as exc:  # from an extension: bad compressed data, too big inflated
                    self._fail(exc.code, exc.reason)
                continue
            if self._state is State.CONNECTING:
                if not self._handshake_step():
                    return
                continue
            if self._state is State.CLOSED:
                self._incoming = None
                return
            if self._reader is not None and self._reader.error is not None:
                self._fail(self._reader.error.code, self._reader.error.reason)
                continue
            if self._incoming:
                self._add_frames(self._reader_for_open().feed(self._incoming.popleft()))
                continue
            if self._eof:
                self._transition(Trigger.EOF)
                continue
            return

    def next_event(self) -> Optional[Event]:
        """The next event, or None when there is none now: :meth:`events` one at a time, for drivers
        that take messages with :meth:`take_messages` and the other events between them."""
        if not self.has_events:
            return None
        return next(self.events(), None)

    def take_messages(self, limit: Optional[int] = None) -> List[Union[str, bytes]]:
        """The complete data messages at the front of what was received: str for text, bytes for binary.

        Takes them up to the first frame that is anything else (a control
        frame, the next event, a failure), which stays for :meth:`events`, so
        a ping, a close or a protocol violation behind a message takes effect
        only once the caller asks for events again: after it has answered the
        messages before it. Returns ``[]`` when :meth:`events` must be used
        (nothing parsed yet, an event waiting, the handshake, closing,
        ``stream=True``). At most ``limit`` messages when given (a driver's
        queue bound); the rest wait for the next call. For drivers that handle
        messages in batches: one call, not a generator step, per batch.
        """
        messages: List[Union[str, bytes]] = []
        if self._ready or self._state is not State.OPEN or self.stream or self._deferred is not None:
            return messages
        ready = self._ready
        plain = not self.extensions
        if limit is None:
            limit = -1
        elif limit < 1:
            return messages
        frames = self._frames
        i = self._next
        while i < len(frames):
            frame = frames[i]
            opcode = frame.opcode
            if opcode >= OP_CLOSE:  # control frames are events
                break
            i += 1
            if plain and opcode and frame.fin:  # a whole message in one frame: what _on_data makes of it
                messages.append(frame.payload.decode("utf-8") if opcode == OP_TEXT else frame.payload)
                if len(messages) == limit:
                    break
                continue
            self._next = i
            try:
                self._on_frame(frame)
            except ProtocolError as exc:  # bad compressed data, too big inflated: after what came before
                self._deferred = exc
                break
            finally:
                frames, i = self._frames, self._next  # (a failure clears them)
            if ready:  # the last frame of a message
                messages.append(ready.pop().data)  # type: ignore[union-attr]
                if len(messages) == limit:
                    break
        if i == len(frames):
            frames.clear()
            i = 0
        self._next = i
        return messages

    def data_to_send(self) -> bytes:
        """Bytes the connection wrote on its own (pong, close reply, handshake errors); drains them."""
        if not self._outgoing:
            return b""
        data = bytes(self._outgoing)
        self._outgoing.clear()
        return data

    @property
    def should_close_transport(self) -> bool:
        """True once this side should close TCP (after flushing :meth:`data_to_send`).

        The server closes first after a closing handshake (RFC 6455 7.1.1); a
        client waits for the server, unless the connection failed or hit EOF.
        """
        return self._state is State.CLOSED and (not self.client or self._eof or self._failed)

    @property
    def payload_awaited(self) -> int:
        """Bytes of a frame's payload still to come (0 between frames): a driver may read that much
        at once, knowing the read carries nothing else to parse."""
        reader = self._reader
        return reader.awaited if reader is not None else 0

    @property
    def has_pending_input(self) -> bool:
        """True while received bytes or frames wait to be turned into events by :meth:`events`.

        Drivers use it to tell whether more messages are already here (to
        batch their replies) without taking the next event.
        """
        return True if (
            self._ready or self._next < len(self._frames) or self._incoming or self._deferred) else False

    @property
    def has_events(self) -> bool:
        """False when :meth:`events` would yield nothing now: a driver's cheap check before asking it.

        True while input waits to become events, and once EOF or a protocol
        error is there to report (it may then be True with nothing to yield).
        """
        reader = self._reader
        return True if (
            self._ready or self._next < len(self._frames) or self._incoming or self._deferred or self._eof
            or self._state is State.CONNECTING or (reader is not None and reader.error is not None)
        ) else False

    def _reader_for_open(self) -> FrameReader:
        if self._reader is None:
            wire_limit = self.max_message_size
            if self.extensions and wire_limit is not None:
                # Incompressible data grows a little when deflated: a message of exactly the limit
                # must still get in. What it decodes to is held to the exact limit by _decode.
                wire_limit = min(wire_limit + wire_limit // 8 + 64, 2**62)  # (a C long in the compiled reader)
            self._reader = self._backend.FrameReader(
                require_mask=not self.client,
                max_frame_size=_no_limit(self.max_frame_size),
                max_message_size=_no_limit(wire_limit),
                allowed_rsv=self._allowed_rsv,
                max_fragments=_no_limit(self.max_fragments),
            )
        return self._reader

    def _handshake_step(self) -> bool:
        """Advance the opening handshake (subclasses); False when it waits for something."""
        return False

    def _on_frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        payload = frame.payload  # each field read once: they are properties in the pure backend
        if opcode == OP_PING:
            # RFC 6455 5.5.2: answer "unless it already received a Close frame", so
            # also while CLOSING (our close sent, the peer's not seen yet).
            if self.auto_pong and self._state is not State.CLOSED:
                self._outgoing += self._frame(OP_PONG, payload)
            self._ready.append(Ping(payload))
        elif opcode == OP_PONG:
            self._ready.append(Pong(payload))
        elif opcode == OP_CLOSE:
            self._on_close(payload)
        elif self._state is State.OPEN:  # after our close, data frames are discarded
            if self.extensions:
                payload = self._decode(opcode, frame.fin, frame.rsv, payload)
            self._on_data(opcode, frame.fin, payload)

    def _decode(self, opcode: int, fin: bool, rsv: int, data: bytes) -> bytes:
        """A data frame's payload through the extensions, within ``max_message_size``, UTF-8 checked."""
        if opcode != OP_CONTINUATION:
            self._message_rsv = rsv
            self._decoded = 0
            self._text_check = None
            if rsv and opcode == OP_TEXT:
                # The frame reader cannot see the text inside: it is checked here as it is decoded.
                self._text_check = self._backend.Utf8Validator()
        limit = -1 if self.max_message_size is None else self.max_message_size - self._decoded
        rsv = self._message_rsv
        if rsv:
            for extension in reversed(self.extensions):  # the reverse of the order they were applied in
                data = extension.decode(data, rsv, fin, limit)  # never more than ``limit``: 1009 first
        elif 0 <= limit < len(data):  # the reader's limit has slack for compression: the exact one is here
            raise ProtocolError(CLOSE_TOO_BIG, f"message of more than {self.max_message_size} bytes over the limit")
        self._decoded += len(data)
        check = self._text_check
        if check is not None:
            check.feed(data)
            if fin:
                check.finish()
        return data

    def _on_data(self, opcode: int, fin: bool, data: bytes) -> None:
        first = opcode != OP_CONTINUATION
        if first:
            self._message_text = opcode == OP_TEXT
            if fin and not self.stream:
                self._ready.append(TextMessage(data.decode("utf-8")) if self._message_text else BinaryMessage(data))
                return
        if self.stream:
            text: Union[str, bytes] = data
            if self._message_text:
                if first or self._decoder is None:
                    self._decoder = _UTF8_DECODER()
                text = self._decoder.decode(data, fin)
            self._ready.append(Fragment(text, first, fin))
            return
        if data:  # empty fragments cost nothing here: FrameReader counts them
            self._parts.append(data)
        if fin:
            data = b"".join(self._parts)
            self._parts = []
            self._ready.append(TextMessage(data.decode("utf-8")) if self._message_text else BinaryMessage(data))

    def _on_close(self, payload: bytes) -> None:
        if len(payload) == 0:
            code, reason = 1005, ""
        elif len(payload) == 1:
            return self._fail(1002, "close frame with a 1-byte payload")
        else:
            code = int.from_bytes(payload[:2], "big")
            if not is_valid_close_code(code):
                return self._fail(1002, f"invalid close code {code}")
            try:
                reason = payload[2:].decode("utf-8")
            except UnicodeDecodeError:
                return self._fail(1007, "close reason is not valid UTF-8")
        self._ready.append(CloseReceived(code, reason))
        if not self._close_sent:
            # Echo the peer's code (RFC 6455 5.5.1); an empty close gets an empty reply.
            self._outgoing += self._frame(OP_CLOSE, b"" if code == 1005 else code.to_bytes(2, "big"))
            self._close_sent = True
        self._transition(Trigger.CLOSE_RECEIVED, code, reason)

    def _fail(self, code: int, reason: str) -> None:
        """Fail the connection (RFC 6455 7.1.7): send a close with ``code`` and stop reading."""
        if not self._close_sent:
            self._outgoing += self._frame(OP_CLOSE, _close_payload(code, reason[:100]))
            self._close_sent = True
        self._failed = True
        self._transition(Trigger.FAILED, code, reason)

    # -- sending ---------------------------------------------------------------------

    def send_text(self, data: str, compress: Optional[bool] = None) -> bytes:
        """Bytes of a text message.

        ``compress`` overrides the extension's choice for this message (False:
        never; True: even below the threshold); it does nothing without one.
        """
        if not isinstance(data, str):
            raise TypeError(f"send_text takes a str, not {type(data).__name__}")
        if self._state is not State.OPEN or self._sending_fragments is not None:
            self._check_can_send()
        if self.extensions:
            return self._encoded(OP_TEXT, data.encode("utf-8"), True, True, compress)
        return self._frame(OP_TEXT, data.encode("utf-8"))

    def send_binary(self, data: Union[bytes, bytearray, memoryview], compress: Optional[bool] = None) -> bytes:
        """Bytes of a binary message (``compress`` as for :meth:`send_text`)."""
        if self._state is not State.OPEN or self._sending_fragments is not None:
            self._check_can_send()
        if self.extensions:
            return self._encoded(OP_BINARY, bytes(data), True, True, compress)
        return self._frame(OP_BINARY, data)

    def send(self, data: Union[str, bytes, bytearray, memoryview], compress: Optional[bool] = None) -> bytes:
        """Bytes of a text message for str, a binary message for bytes-like data."""
        if isinstance(data, str):
            return self.send_text(data, compress)
        return self.send_binary(data, compress)

    def send_parts(
        self, data: Union[str, bytes, bytearray, memoryview], compress: Optional[bool] = None
    ) -> Tuple[bytes, ...]:
        """A message's frame as buffers to write in order (``sendmsg``, ``writelines``).

        A large message (:data:`GATHER_MIN` bytes, or characters of a str) that
        goes out unchanged (server side, no extension agreed) comes back as its
        header and then the payload itself, ``bytes`` as given or the UTF-8 of
        a str, not copied behind the header; anything
        else as the one frame :meth:`send` makes. A bytearray or memoryview is
        always copied: the caller may change it before it is written.
        """
        if (len(data) >= GATHER_MIN and not self.client and not self.extensions
                and self._state is State.OPEN and self._sending_fragments is None):
            if type(data) is bytes:
                return self._backend.encode_header(OP_BINARY, len(data)), data
            if type(data) is str:
                payload = data.encode("utf-8")
                return self._backend.encode_header(OP_TEXT, len(payload)), payload
        return (self.send(data, compress),)

    def _encoded(self, opcode: int, data: bytes, first: bool, fin: bool, compress: Optional[bool]) -> bytes:
        """A data frame through the extensions, in the order they were agreed."""
        rsv = 0
        for extension in self.extensions:
            bits, data = extension.encode(data, first, fin, compress)
            rsv |= bits
        return self._frame(opcode, data, fin, rsv)

    def send_encoded(self, frame: Union[bytes, "SharedMessage"]) -> bytes:
        """Bytes of a message encoded once for many server-side connections (broadcasting).

        ``frame`` is a frame made by :func:`encode_message`, sent as it is, or
        a :class:`SharedMessage`, which compresses once for every connection
        that can share the result and per connection for the others.
        """
        if self.client:
            raise InvalidState("a client masks every frame with its own key: use send()")
        self._check_can_send()
        if isinstance(frame, SharedMessage):
            return frame.frame_for(self)
        return frame

    def _shared_key(self) -> Optional[Tuple[Any, ...]]:
        """Equal for connections that would encode a message into the same bytes; None if only this one would."""
        if not self.extensions:
            return ()
        keys = tuple(extension.shared_key for extension in self.extensions)
        return None if None in keys else keys

    def send_fragment(
        self, data: Union[str, bytes, bytearray, memoryview], final: bool = False, compress: Optional[bool] = None
    ) -> bytes:
        """Bytes of the next fragment of a message sent in pieces; ``final`` ends it.

        The first fragment's type (str or bytes) sets the message type; later
        ones must match. Control frames may be sent between fragments. The
        first fragment decides whether the message is compressed (``compress``
        as for :meth:`send_text`, the threshold applied to that fragment).
        """
        self._check_can_send(fragment=True)
        text = isinstance(data, str)
        if self._sending_fragments is None:
            opcode = OP_TEXT if text else OP_BINARY
        elif self._sending_fragments != text:
            raise TypeError("all fragments of a message must be str, or all bytes")
        else:
            opcode = OP_CONTINUATION
        payload = data.encode("utf-8") if isinstance(data, str) else data
        if self.extensions:
            frame = self._encoded(opcode, bytes(payload), self._sending_fragments is None, final, compress)
        else:
            frame = self._frame(opcode, payload, fin=final)
        # Recorded only once the frame exists: a payload that cannot be encoded changes nothing.
        self._sending_fragments = None if final else text
        return frame

    def send_ping(self, payload: Union[bytes, str] = b"") -> bytes:
        """Bytes of a ping (payload at most 125 bytes)."""
        self._check_can_send(control=True)
        return self._frame(OP_PING, payload.encode("utf-8") if isinstance(payload, str) else payload)

    def send_pong(self, payload: Union[bytes, str] = b"") -> bytes:
        """Bytes of an unsolicited pong (a heartbeat; pings are answered automatically)."""
        self._check_can_send(control=True)
        return self._frame(OP_PONG, payload.encode("utf-8") if isinstance(payload, str) else payload)

    def close(self, code: Optional[int] = 1000, reason: str = "") -> bytes:
        """Bytes of a close frame starting the closing handshake.

        ``code`` must be one an endpoint may send (1000-1003, 1007-1014,
        3000-4999), or None for a close with no code; ``reason`` is at most 123
        bytes of UTF-8. Incoming data frames are discarded from now on.
        """
        payload = _close_payload(code, reason)
        if self._state is State.CONNECTING:
            raise InvalidState("cannot close before the handshake completes")
        if self._close_sent or self._state is State.CLOSED:
            raise InvalidState("the connection is already closing or closed")
        frame = self._frame(OP_CLOSE, payload)
        self._transition(Trigger.CLOSE_SENT)
        self._close_sent = True
        return frame

    def _check_can_send(self, control: bool = False, fragment: bool = False) -> None:
        if self._state is not State.OPEN:
            raise InvalidState(f"cannot send in state {self._state.name}")
        if not control and not fragment and self._sending_fragments is not None:
            raise InvalidState("a fragmented message is being sent: finish it first")

    def _frame(self, opcode: int, payload: ReadableBuffer, fin: bool = True, rsv: int = 0) -> bytes:
        if not self.client:
            return self._backend.encode_frame(opcode, payload, fin, rsv)
        return self._backend.encode_frame(opcode, payload, fin, rsv, self._mask_key())

    def _mask_key(self) -> bytes:
        """A fresh, unpredictable mask key (RFC 6455 10.3), drawn from the OS in bulk."""
        pos = self._key_pos
        if pos + 4 > len(self._keys):
            self._keys = os.urandom(_KEY_POOL)
            pos = 0
        self._key_pos = pos + 4
        return self._keys[pos : pos + 4]


def encode_message(data: Union[str, bytes, bytearray, memoryview], backend: Optional[str] = None) -> bytes:
    """One unmasked (server-side) frame for a whole message, to send to many connections."""
    encode = (_backend.active if backend is None else _backend.load(backend)).encode_frame
    if isinstance(data, str):
        return encode(OP_TEXT, data.encode("utf-8"))
    return encode(OP_BINARY, data)



class SharedMessage:
    """One message for many server-side connections (broadcast), encoded once per group that can share it.

    Connections without extensions share one plain frame, connections whose
    compressor keeps no context and has the same settings share one
    compressed frame, and each of the others (context takeover) compresses
    for itself. Used by one thread at a time, like a connection.
    """

    __slots__ = ("data", "_frames")

    def __init__(self, data: Union[str, bytes, bytearray, memoryview]) -> None:
        self.data = data if isinstance(data, str) else bytes(data)
        self._frames: Dict[Tuple[Any, ...], bytes] = {}

    def frame_for(self, conn: Connection) -> bytes:
        """The bytes of the message for ``conn`` (already checked that it may send)."""
        key = conn._shared_key()
        if key is None:
            return conn.send(self.data)
        frame = self._frames.get(key)
        if frame is None:
            frame = self._frames[key] = conn.send(self.data)
        return frame


class ServerConnection(Connection):
    """The server side, from the HTTP upgrade request on.

    The handshake is checked (RFC 6455 4.2.1) as the request arrives; invalid
    requests get their HTTP error response in :meth:`data_to_send` and a
    :class:`Rejected` event. A valid one gives a :class:`Request` event: answer
    with :meth:`accept` or :meth:`reject`. ``origins`` is an allow-list of
    Origin values (None in it admits requests without one; ``origins=None``
    admits all). ``subprotocols`` are the server's, in preference order.
    ``extensions`` are the factories of the extensions the server supports
    (for example ``[deflate.ServerDeflateFactory()]``): :meth:`accept`
    answers the client's offers with them. A refused handshake ends, like any connection, with :class:`Closed`
    (1006): after :class:`Rejected`, or alone after :meth:`reject`.
    """

    _INITIAL_STATE = State.CONNECTING
    __slots__ = ("origins", "subprotocols", "extension_factories", "request", "_head", "_answered")

    def __init__(
        self,
        *,
        origins: Optional[Iterable[Optional[str]]] = None,
        subprotocols: Sequence[str] = (),
        max_request_line: int = 8190,
        max_request_headers: int = 128,
        max_request_size: int = 65536,
        extensions: Sequence[ext.ServerExtensionFactory] = (),
        **options: Any,
    ) -> None:
        super().__init__(client=False, **options)
        self.origins = None if origins is None else list(origins)
        self.subprotocols = list(subprotocols)
        self.extension_factories = list(extensions)
        self.request: Optional[hs.Request] = None
        self._head = hs.HeadReader(max_request_line, max_request_headers, max_request_size)
        self._answered = False

    def _handshake_step(self) -> bool:
        if self.request is not None:
            return False  # waiting for accept() or reject()
        while self._incoming and not self._head.complete:
            try:
                self._head.feed(self._incoming.popleft())
            except hs.HandshakeError as exc:
                return self._refuse(exc)
        if not self._head.complete:
            if self._eof:
                reason = "connection closed during the handshake"
                self._ready.append(Rejected(0, reason))
                self._transition(Trigger.REFUSED, CLOSE_ABNORMAL, reason)
                return True
            return False
        try:
            request = hs.parse_request(self._head)
        except hs.HandshakeError as exc:
            return self._refuse(exc)
        rest = self._head.rest
        if rest:
            self._unread(rest)
        return self._take_request(request)

    def receive_request(self, request: http11.Request) -> None:
        """Start from a request that another HTTP server already read and parsed.

        For taking over a connection from an existing server: the request gets
        the same checks and gives the same events as one arriving as bytes.
        """
        if self.request is not None or self._head.complete or self._incoming or self._state is not State.CONNECTING:
            raise InvalidState("the connection already has its request")
        if not isinstance(request, hs.Request):  # a plain http11.Request: read it as a handshake
            request = hs.Request(request.method, request.target, request.version, request.headers)
        self._take_request(request)

    def _take_request(self, request: hs.Request) -> bool:
        try:
            hs.check_request(request)
            hs.check_origin(request, self.origins)
        except hs.HandshakeError as exc:
            return self._refuse(exc)
        self.request = request
        self._ready.append(Request(request))
        return True

    def _refuse(self, exc: hs.HandshakeError) -> bool:
        self._outgoing += hs.error_response(exc).serialize()
        self._failed = True
        self._ready.append(Rejected(exc.status, exc.reason))
        self._transition(Trigger.REFUSED, CLOSE_ABNORMAL, exc.reason)
        return True

    def accept(
        self,
        subprotocol: Optional[str] = None,
        extra_headers: Iterable[Tuple[str, str]] = (),
    ) -> bytes:
        """Bytes of the 101 response; the connection is open from here.

        ``subprotocol`` defaults to the first of the server's ``subprotocols``
        that the client offered; one the client did not offer is a ValueError.
        """
        request = self._pending_request()
        if subprotocol is None:
            subprotocol = hs.select_subprotocol(request.subprotocols, self.subprotocols)
        extensions = self._negotiate_extensions(request)
        data = hs.accept(request, subprotocol, extensions, extra_headers).serialize()
        self._transition(Trigger.ACCEPTED)
        self._answered = True
        self.subprotocol = subprotocol
        return data

    def reject(self, status: int = 403, body: Union[str, bytes] = b"", headers: Iterable[Tuple[str, str]] = ()) -> bytes:
        """Bytes of an HTTP response refusing the upgrade; the connection is over (a :class:`Closed` event)."""
        self._pending_request()
        response = hs.reject(status, body, headers)
        data = response.serialize()
        self._answered = True
        self._failed = True
        self._transition(Trigger.REFUSED, CLOSE_ABNORMAL, f"rejected with {response.status} {response.reason}")
        return data

    def _pending_request(self) -> hs.Request:
        if self.request is None or self._answered:
            raise InvalidState("accept() and reject() answer one Request event, once")
        return self.request

    def _negotiate_extensions(self, request: hs.Request) -> Optional[str]:
        """The one place the server agrees to extensions: the Sec-WebSocket-Extensions answer."""
        answer, agreed = ext.negotiate_server(self.extension_factories, request.extensions)
        self._use_extensions(agreed)
        return answer


class ClientConnection(Connection):
    """The client side: :meth:`handshake_request` first, then the server's answer.

    ``host`` is the Host header value (with the port when not the default),
    ``path`` the request target including any query. ``extensions`` are the
    factories of the extensions to offer, in preference order. A refused
    handshake (an answer that breaks an extension's rules included) gives
    :class:`Rejected`, then :class:`Closed` (1006).
    """

    _INITIAL_STATE = State.CONNECTING
    __slots__ = ("subprotocols", "extension_factories", "response", "_key", "_offer", "_request", "_head")

    def __init__(
        self,
        host: str,
        path: str = "/",
        *,
        origin: Optional[str] = None,
        subprotocols: Sequence[str] = (),
        extra_headers: Iterable[Tuple[str, str]] = (),
        extensions: Sequence[ext.ClientExtensionFactory] = (),
        **options: Any,
    ) -> None:
        super().__init__(client=True, **options)
        self.subprotocols = list(subprotocols)
        self.extension_factories = list(extensions)
        self.response: Optional[hs.Response] = None
        self._key = hs.new_key()
        self._offer = ext.offer_header(self.extension_factories)
        self._request = hs.build_request(
            host, path, key=self._key, origin=origin, subprotocols=self.subprotocols, extensions=self._offer,
            extra_headers=extra_headers,
        )
        self._head = hs.HeadReader()

    def handshake_request(self) -> bytes:
        """Bytes of the upgrade request to send first."""
        return self._request

    def _handshake_step(self) -> bool:
        while self._incoming and not self._head.complete:
            try:
                self._head.feed(self._incoming.popleft())
            except hs.HandshakeError as exc:
                return self._refused(0, exc.reason)
        if not self._head.complete:
            if self._eof:
                return self._refused(0, "connection closed during the handshake")
            return False
        try:
            response = hs.parse_response(self._head)
            self.subprotocol = hs.check_response(response, self._key, self.subprotocols, extensions=self._offer)
            answers = hs.parse_extensions(", ".join(response.headers.get_all("Sec-WebSocket-Extensions")))
            self._use_extensions(ext.negotiate_client(self.extension_factories, answers))
        except hs.HandshakeError as exc:
            return self._refused(exc.status, exc.reason)
        rest = self._head.rest
        if rest:
            self._unread(rest)
        self.response = response
        self._transition(Trigger.ACCEPTED)
        self._ready.append(Accepted(self.subprotocol, response))
        return True

    def _refused(self, status: int, reason: str) -> bool:
        self._failed = True
        self._ready.append(Rejected(status, reason))
        self._transition(Trigger.REFUSED, CLOSE_ABNORMAL, reason)
        return True
