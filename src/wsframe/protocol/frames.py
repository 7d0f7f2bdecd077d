"""Bytes to frames and frames to bytes: RFC 6455 section 5, for both backends.

This one source is the pure-Python backend as it stands and, compiled by
Cython under the name ``frames_c`` with the C types in ``frames_c.pxd``, the
compiled backend. Every framing rule is written once, here, the header layout
included, both ways (:func:`_decode_header`, :func:`_write_header`); the
per-byte work (masking, copying, UTF-8) comes from ``kernels_py`` or,
compiled, from ``kernels_c``.

Keep the code Cython-friendly: module-level int constants, no closures, and
buffers read by index (``view[i]`` is a C array read once compiled).
"""

from __future__ import annotations

import operator
from typing import TYPE_CHECKING, List, Optional, SupportsIndex

try:
    # Without Cython installed there is nothing for mypy to find: the shim below stands in.
    import cython  # type: ignore[import-not-found, unused-ignore]
except ImportError:  # Cython is only needed to build; compiled, this branch is dropped
    from . import _cython_shim as cython

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, WriteableBuffer

    from .kernels_py import ByteView

from .errors import ProtocolError

if not cython.compiled:  # compiled, the .pxd cimports the constants and the C kernels instead
    from .constants import (
        CLOSE_PROTOCOL_ERROR,
        CLOSE_TOO_BIG,
        MAX_CONTROL_PAYLOAD,
        OP_BINARY,
        OP_CLOSE,
        OP_CONTINUATION,
        OP_PING,
        OP_PONG,
        OP_TEXT,
        RSV1,
    )
    from .kernels_py import (
        Utf8Validator,
        append_unmasked,
        byte_view,
        join_frame,
        new_payload,
        parse_mask_key,
        payload_bytes,
        unmask_slice,
        write_frame,
        write_unmasked,
    )

_MAX_HEADER = 14  # bytes: 2, 8 of 64-bit length, 4 of mask key
_MAX_LENGTH = 2**63 - 1  # the 64-bit length's most significant bit is 0 (RFC 6455 5.2)

# FrameReader states.
_HEADER = 0  # between frames (maybe with a partial header in the tail buffer)
_PAYLOAD = 1  # header read, payload arriving

#: A payload that spans reads is written into its final buffer, allocated whole from the
#: checked header, when it is at most _PREALLOC_MAX bytes and at most _PREALLOC_RATIO times
#: the payload bytes already here plus _PREALLOC_SMALL: completing it copies nothing. Others
#: (a header with little behind it, or limits raised past 64 MiB) grow as their bytes arrive,
#: so a header alone never makes the reader reserve more than about 64 KiB.
_PREALLOC_MAX = 1 << 26
_PREALLOC_RATIO = 32
_PREALLOC_SMALL = 65536


class Header:
    """A decoded frame header (RFC 6455 section 5.2); read-only, like the compiled one."""

    __slots__ = ("_fin", "_rsv", "_opcode", "_masked", "_length", "_key", "_size")
    _fin: bool
    _rsv: int
    _opcode: int
    _masked: bool
    _length: int
    _key: int
    _size: int

    @property
    def fin(self) -> bool:
        """The FIN bit: the last frame of its message."""
        return self._fin

    @property
    def rsv(self) -> int:
        """RSV1-3 as a 3-bit field (RSV1 is 0x4)."""
        return self._rsv

    @property
    def opcode(self) -> int:
        return self._opcode

    @property
    def masked(self) -> bool:
        return self._masked

    @property
    def length(self) -> int:
        """Payload length in bytes."""
        return self._length

    @property
    def key(self) -> int:
        """The masking key as a big-endian 32-bit int (0 when unmasked)."""
        return self._key

    @property
    def size(self) -> int:
        """Bytes of the header itself: 2 to 14."""
        return self._size

    @property
    def mask_key(self) -> Optional[bytes]:
        """The 4-byte masking key, or None for an unmasked frame."""
        return self._key.to_bytes(4, "big") if self._masked else None

    def __repr__(self) -> str:
        return (
            f"Header(fin={self._fin}, rsv={self._rsv}, opcode={self._opcode}, "
            f"masked={self._masked}, length={self._length}, size={self._size})"
        )


#: Where each backend's Frame class lives: frames of either compare as values.
_FRAME_MODULES = ("wsframe.protocol.frames", "wsframe.protocol.frames_c")


class Frame:
    """One complete frame, its payload unmasked. A read-only value: equal fields make equal frames
    (and equal hashes), whichever backend made them."""

    __slots__ = ("_opcode", "_fin", "_rsv", "_payload")
    _opcode: int
    _fin: bool
    _rsv: int
    _payload: bytes

    @property
    def opcode(self) -> int:
        return self._opcode

    @property
    def fin(self) -> bool:
        """The last frame of its message."""
        return self._fin

    @property
    def rsv(self) -> int:
        """RSV1-3 as a 3-bit field (RSV1 is 0x4)."""
        return self._rsv

    @property
    def payload(self) -> bytes:
        return self._payload

    def __repr__(self) -> str:
        return f"Frame(opcode={self._opcode}, fin={self._fin}, rsv={self._rsv}, payload={self._payload[:32]!r})"

    def __eq__(self, other: object) -> bool:
        if not _is_frame(other):
            return NotImplemented
        return (self._opcode, self._fin, self._rsv, self._payload) == (
            other.opcode, other.fin, other.rsv, other.payload  # type: ignore[attr-defined]  # _is_frame
        )

    def __hash__(self) -> int:
        return hash((self._opcode, self._fin, self._rsv, self._payload))


def _is_frame(obj: object) -> bool:
    """A Frame of this backend or of the other one."""
    return isinstance(obj, Frame) or (type(obj).__name__ == "Frame" and type(obj).__module__ in _FRAME_MODULES)


def _new_frame(opcode: int, fin: bool, rsv: int, payload: bytes) -> Frame:
    frame = Frame.__new__(Frame)
    frame._opcode = opcode
    frame._fin = fin
    frame._rsv = rsv
    frame._payload = payload
    return frame


def make_frame(opcode: int, payload: ReadableBuffer, fin: bool = True, rsv: int = 0) -> Frame:
    """Build a :class:`Frame` value (for tests and for code that assembles frames itself)."""
    return _new_frame(operator.index(opcode), bool(fin), operator.index(rsv), bytes(payload))


def _decode_header(view: ByteView, pos: int, end: int, h: Header, max_size: int) -> bool:
    """Fill ``h`` from the header at ``view[pos:end]``; False when it is not all there.

    Applies the rules a header breaks on its own, before any payload is read:
    reserved opcodes, control frames fragmented or over 125 bytes, a 64-bit
    length with the top bit set, and lengths over ``max_size`` (-1: no limit).
    """
    if end - pos < 2:
        return False
    b0 = view[pos]
    b1 = view[pos + 1]
    length = b1 & 0x7F
    size = 2
    if length == 126:
        size = 4
    elif length == 127:
        size = 10
    masked = (b1 & 0x80) != 0
    if masked:
        size += 4
    if end - pos < size:
        return False
    opcode = b0 & 0x0F
    fin = (b0 & 0x80) != 0
    if opcode >= OP_CLOSE:
        if opcode > OP_PONG:
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, f"reserved opcode {opcode:#x}")
        if not fin:
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, "fragmented control frame")
        if length > MAX_CONTROL_PAYLOAD:
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, "control frame payload over 125 bytes")
    elif opcode > OP_BINARY:
        raise ProtocolError(CLOSE_PROTOCOL_ERROR, f"reserved opcode {opcode:#x}")
    if length == 126:
        length = (view[pos + 2] << 8) | view[pos + 3]
    elif length == 127:
        if view[pos + 2] & 0x80:
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, "64-bit payload length with the top bit set")
        length = 0
        for i in range(pos + 2, pos + 10):
            length = (length << 8) | view[i]
    if max_size >= 0 and length > max_size:
        raise ProtocolError(CLOSE_TOO_BIG, f"frame of {length} bytes over the {max_size}-byte limit")
    key = 0
    if masked:
        k = pos + size - 4
        key = view[k]  # widened to 32 bits unsigned first: compiled, ``view[k] << 24`` would shift a C int
        key = (key << 24) | (view[k + 1] << 16) | (view[k + 2] << 8) | view[k + 3]
    h._fin = fin
    h._rsv = (b0 >> 4) & 0x7
    h._opcode = opcode
    h._masked = masked
    h._length = length
    h._key = key
    h._size = size
    return True


def parse_header(data: ReadableBuffer, offset: int = 0, max_size: int = -1) -> Optional[Header]:
    """Decode the frame header at ``data[offset:]``; None if the buffer holds less than a header.

    Raises :class:`ProtocolError` carrying the close code for a header that
    breaks RFC 6455 on its own (see :class:`FrameReader` for the rules that
    need context), or whose length exceeds ``max_size`` (1009).
    """
    view = byte_view(data)
    if offset < 0 or offset > len(view):
        raise ValueError("offset out of range")
    h = Header.__new__(Header)
    if _decode_header(view, offset, len(view), h, max_size):
        return h
    return None


def _int_option(name: str, value: object) -> int:
    """An int option of FrameReader, checked at construction (-1 is "no limit", None is not)."""
    if not isinstance(value, SupportsIndex):
        raise TypeError(f"{name} must be an int (-1 for no limit), not {type(value).__name__}")
    return operator.index(value)


class FrameReader:
    """Turn a byte stream into frames, enforcing every per-frame rule of RFC 6455.

    :meth:`feed` takes bytes as they arrive and returns every frame completed
    by them, payloads unmasked, in one call. It checks mask direction, RSV
    bits, fragmentation order, frame and message sizes (from the header,
    before any payload is buffered) and, for text, UTF-8 as the bytes arrive.
    The first violation stops the reader: ``feed`` still returns the frames
    before it, and :attr:`error` holds the :class:`ProtocolError` with the
    close code to fail the connection with.

    ``require_mask``: True (server side) rejects unmasked frames, False
    (client side) rejects masked ones, None accepts both. ``max_fragments``
    bounds the data frames of one message, empty ones included, so that a
    message cannot cost per-frame work and memory without end (1009 on the
    first frame over it). Limits of -1 mean no limit; a limit that is not an
    int (None included) is a TypeError here, at construction, in both
    backends. ``allowed_rsv`` is the RSV bits an extension negotiated (RSV1
    for permessage-deflate: first frame of a data message only).

    One reader serves one connection and one thread at a time, like the
    connection it belongs to; it is not meant to be fed concurrently.
    """

    def __init__(
        self,
        require_mask: Optional[bool] = None,
        max_frame_size: int = -1,
        max_message_size: int = -1,
        allowed_rsv: int = 0,
        validate_utf8: bool = True,
        max_fragments: int = -1,
    ) -> None:
        self._mask_rule = -1 if require_mask is None else (1 if require_mask else 0)
        self._max_frame = _int_option("max_frame_size", max_frame_size)
        self._max_message = _int_option("max_message_size", max_message_size)
        self._max_fragments = _int_option("max_fragments", max_fragments)
        self._allowed_rsv = _int_option("allowed_rsv", allowed_rsv)
        self._check_utf8 = bool(validate_utf8)
        self._h = Header.__new__(Header)
        self._state = _HEADER
        self._tail = bytearray()
        self._payload = bytearray()  # a payload over _PREALLOC_MAX, as it grows
        self._final: Optional[bytearray] = None  # new_payload(): the payload in progress, whole
        self._filled = 0  # bytes of it written
        self._remaining = 0
        self._message_opcode = 0
        self._message_size = 0
        self._message_frames = 0
        self._message_rsv = 0
        self._text = False
        self._utf8 = Utf8Validator()
        self.error: Optional[ProtocolError] = None

    @property
    def pending(self) -> int:
        """Bytes held that do not make a complete frame yet."""
        return len(self._tail) + len(self._payload) + self._filled

    @property
    def awaited(self) -> int:
        """Bytes of the payload in progress still to come (0 between frames)."""
        return self._remaining if self._state == _PAYLOAD else 0

    def __reduce__(self) -> str:
        """Not picklable or copyable: a frame in progress is being written where no one else may see it."""
        raise TypeError("a FrameReader cannot be pickled or copied")

    @property
    def in_message(self) -> bool:
        """True between the first and the last frame of a fragmented message."""
        return self._message_opcode != 0

    def feed(self, data: ReadableBuffer) -> List[Frame]:
        """Consume ``data``; return the frames it completes, in order."""
        frames: List[Frame] = []
        if self.error is not None:
            return frames
        view = byte_view(data)
        end = len(view)
        if end == 0:
            return frames
        try:
            pos = 0
            if self._state == _PAYLOAD:
                pos = self._fill(view, 0, end, frames)
            elif len(self._tail):
                pos = self._finish_tail_header(view, end, frames)
            if pos < end and self._state == _HEADER:
                pos = self._parse_run(view, pos, end, frames)
                if pos < end:
                    self._tail += view[pos:end]
        except ProtocolError as exc:
            # Keep the error alone: the frames its traceback and context reach hold
            # ``view`` (an export: the caller's buffer could not be resized) and self.
            exc.__traceback__ = None
            exc.__context__ = None
            self.error = exc
            self._tail = bytearray()
            self._payload = bytearray()
            self._final = None
            self._filled = 0
        return frames

    def _parse_run(self, view: ByteView, pos: int, end: int, frames: List[Frame]) -> int:
        """Parse consecutive frames from ``view``; return where the incomplete tail starts."""
        h = self._h
        while _decode_header(view, pos, end, h, self._max_frame):
            self._check_context(h)
            start = pos + h._size
            if end - start >= h._length:
                pos = start + h._length
                payload = unmask_slice(view, start, pos, h._key)
                if self._text:
                    self._utf8.feed(payload)
                self._deliver(payload, frames)
            else:
                self._start_payload(h, end - start)
                return self._fill(view, start, end, frames)
        return pos

    def _finish_tail_header(self, view: ByteView, end: int, frames: List[Frame]) -> int:
        """Complete a header split across reads, taking no more than it needs from ``view``."""
        tail = self._tail
        held = len(tail)
        take = 14 - held  # the longest header is 14 bytes
        if take > end:
            take = end
        tail += view[0:take]
        h = self._h
        if not _decode_header(tail, 0, len(tail), h, self._max_frame):
            return end  # all of view went into the tail, still short of a header
        self._check_context(h)
        used = h._size - held
        self._tail = bytearray()
        self._start_payload(h, end - used)
        return self._fill(view, used, end, frames)

    def _start_payload(self, h: Header, here: int) -> None:
        """The header in ``h`` is checked; ``here`` bytes of its payload came with it, the rest follows."""
        self._state = _PAYLOAD
        self._remaining = h._length
        self._filled = 0
        if h._length <= _PREALLOC_MAX and h._length <= here * _PREALLOC_RATIO + _PREALLOC_SMALL:
            self._final = new_payload(h._length)

    def _fill(self, view: ByteView, pos: int, end: int, frames: List[Frame]) -> int:
        """Add payload bytes of the frame in progress; deliver it when complete."""
        n = end - pos
        if n > self._remaining:
            n = self._remaining
        final = self._final
        if n > 0:
            if final is not None:
                start = self._filled
                write_unmasked(final, start, view, pos, pos + n, self._h._key, start)
                self._filled = start + n
                if self._text:
                    # Text is validated as it arrives, so bad UTF-8 fails at once.
                    self._utf8.feed(final, start, start + n)
            else:
                payload = self._payload
                start = len(payload)
                append_unmasked(payload, view, pos, pos + n, self._h._key, start)
                if self._text:
                    self._utf8.feed(payload, start, start + n)
            self._remaining -= n
        if self._remaining == 0:
            self._state = _HEADER
            if final is not None:
                self._final = None
                self._filled = 0
                self._deliver(payload_bytes(final), frames)
            else:
                payload = self._payload
                self._payload = bytearray()
                self._deliver(bytes(payload), frames)
        return pos + n

    def _check_context(self, h: Header) -> None:
        """Apply the rules that depend on the role, the extensions and the message in progress."""
        if self._mask_rule >= 0 and h._masked != (self._mask_rule == 1):
            raise ProtocolError(
                CLOSE_PROTOCOL_ERROR, "unmasked frame from a client" if self._mask_rule else "masked frame from a server"
            )
        opcode = h._opcode
        rsv = h._rsv
        if rsv & ~self._allowed_rsv:
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, f"reserved bits {rsv:#05b} set without an extension")
        if opcode >= OP_CLOSE:
            if rsv & RSV1:
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, "RSV1 set on a control frame")
            self._text = False
            return
        if opcode == OP_CONTINUATION:
            if self._message_opcode == 0:
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, "continuation frame without a message to continue")
            if rsv & RSV1:
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, "RSV1 set on a continuation frame")
        else:
            if self._message_opcode != 0:
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, "new data frame while a fragmented message is open")
            self._message_opcode = opcode
            self._message_size = 0
            self._message_frames = 0
            self._message_rsv = rsv
            if opcode == OP_TEXT:
                self._utf8.reset()
        self._message_frames += 1
        if self._max_fragments >= 0 and self._message_frames > self._max_fragments:
            raise ProtocolError(
                CLOSE_TOO_BIG, f"message of more than {self._max_fragments} frames over the limit"
            )
        if self._max_message >= 0 and h._length > self._max_message - self._message_size:
            raise ProtocolError(
                CLOSE_TOO_BIG, f"message of more than {self._max_message} bytes over the limit"
            )
        self._message_size += h._length
        # Compressed text is validated after inflating, by the extension.
        self._text = self._check_utf8 and self._message_opcode == OP_TEXT and not (self._message_rsv & RSV1)

    def _deliver(self, payload: bytes, frames: List[Frame]) -> None:
        """Append the frame whose header is in ``self._h``; close its message if final."""
        h = self._h
        opcode = h._opcode
        if opcode < OP_CLOSE and h._fin:
            if self._text:
                self._utf8.finish()
            self._message_opcode = 0
        frames.append(_new_frame(opcode, h._fin, h._rsv, payload))


def _first_byte(opcode: int, length: int, fin: bool, rsv: int) -> int:
    """The header's first byte, after checking the frame is one RFC 6455 allows."""
    if opcode < 0 or opcode > 0xF or (OP_BINARY < opcode < OP_CLOSE) or opcode > OP_PONG:
        raise ValueError(f"reserved opcode {opcode:#x}")
    if rsv < 0 or rsv > 7:
        raise ValueError("rsv is a 3-bit field (0-7)")
    if opcode >= OP_CLOSE:
        if not fin:
            raise ValueError("control frames cannot be fragmented")
        if length > MAX_CONTROL_PAYLOAD:
            raise ValueError("control frame payloads are at most 125 bytes")
    return (0x80 if fin else 0) | (rsv << 4) | opcode


def _header_size(length: int, masked: bool) -> int:
    """Bytes of header: the 7-, 16- or 64-bit length form (section 5.2), 4 more for a mask key."""
    return (2 if length < 126 else 4 if length < 65536 else 10) + (4 if masked else 0)


def _write_header(out: bytearray, b0: int, length: int, masked: bool, key: int) -> int:
    """Write a frame header at ``out[0:]`` (14 bytes of room); return its size.

    The reverse of :func:`_decode_header`: first byte, mask bit and length in
    its shortest form, then the big-endian length and the key, if any.
    """
    mbit = 0x80 if masked else 0
    size = _header_size(length, False)
    out[0] = b0
    if size == 2:
        out[1] = mbit | length
    elif size == 4:
        out[1] = mbit | 126
        out[2] = (length >> 8) & 0xFF
        out[3] = length & 0xFF
    else:
        out[1] = mbit | 127
        for i in range(8):
            out[2 + i] = (length >> (56 - 8 * i)) & 0xFF
    if masked:
        out[size] = (key >> 24) & 0xFF
        out[size + 1] = (key >> 16) & 0xFF
        out[size + 2] = (key >> 8) & 0xFF
        out[size + 3] = key & 0xFF
        size += 4
    return size


def frame_size(length: int, masked: bool = False) -> int:
    """Bytes on the wire for a frame with a ``length``-byte payload."""
    return _header_size(length, masked) + length


def encode_frame(
    opcode: int, payload: ReadableBuffer, fin: bool = True, rsv: int = 0, mask_key: Optional[ReadableBuffer] = None
) -> bytes:
    """Return one frame as bytes: any payload length, masked when ``mask_key`` (4 bytes) is given.

    Clients mask every frame (RFC 6455 section 5.3) with a fresh key; servers never mask.
    """
    view = byte_view(payload)
    n = len(view)
    b0 = _first_byte(opcode, n, fin, rsv)
    key = 0 if mask_key is None else parse_mask_key(mask_key)
    if not cython.compiled:  # compiled, ``head`` is a C array on the stack (frames_c.pxd)
        head = bytearray(_MAX_HEADER)
    size = _write_header(head, b0, n, mask_key is not None, key)
    return join_frame(head, size, view, key)


def encode_header(opcode: int, length: int, fin: bool = True, rsv: int = 0) -> bytes:
    """The header of an unmasked (server-side) frame with a ``length``-byte payload.

    Written before the payload itself (scatter/gather I/O), it saves joining a
    large payload to its header.
    """
    n = operator.index(length)
    if n < 0 or n > _MAX_LENGTH:
        raise ValueError("a frame's length is 0 to 2**63 - 1")
    b0 = _first_byte(opcode, n, fin, rsv)
    if not cython.compiled:
        head = bytearray(_MAX_HEADER)
    size = _write_header(head, b0, n, False, 0)
    return join_frame(head, size, b"", 0)  # the header alone


def encode_frame_into(
    buffer: WriteableBuffer,
    offset: int,
    opcode: int,
    payload: ReadableBuffer,
    fin: bool = True,
    rsv: int = 0,
    mask_key: Optional[ReadableBuffer] = None,
) -> int:
    """Write one frame into the writable ``buffer`` at ``offset``; return its size.

    For batching many frames into one preallocated send buffer without copies;
    :func:`frame_size` says how much room a frame needs. The payload may
    already sit where the frame puts it, right after room for the header
    (framing in place); any other overlap with the frame's bytes is a ValueError.
    """
    view = byte_view(payload)
    n = len(view)
    b0 = _first_byte(opcode, n, fin, rsv)
    key = 0 if mask_key is None else parse_mask_key(mask_key)
    if not cython.compiled:
        head = bytearray(_MAX_HEADER)
    size = _write_header(head, b0, n, mask_key is not None, key)
    return write_frame(byte_view(buffer), offset, head, size, view, key)
