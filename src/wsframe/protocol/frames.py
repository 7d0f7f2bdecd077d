"""Bytes to frames and frames to bytes: RFC 6455 section 5, for both backends.

This one source is the pure-Python backend as it stands and, compiled by
Cython under the name ``_frames_c`` with the C types in ``_frames_c.pxd``, the
compiled backend. Every framing rule is written once, here; the per-byte work
(masking, UTF-8) comes from ``_kernels_py`` or, compiled, from ``_kernels``.

Keep the code Cython-friendly: module-level int constants, no closures, and
buffers read by index (``view[i]`` is a C array read once compiled).
"""

from __future__ import annotations

from typing import Any, List, Optional

try:
    import cython
except ImportError:  # Cython is only needed to build; compiled, this branch is dropped
    from . import _cython_shim as cython

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
    from .kernels_py import Utf8Validator, append_unmasked, build_frame, unmask_slice, write_frame

# FrameReader states.
_HEADER = 0  # between frames (maybe with a partial header in the tail buffer)
_PAYLOAD = 1  # header read, payload arriving


class Header:
    """A decoded frame header (RFC 6455 section 5.2)."""

    def __repr__(self) -> str:
        return (
            f"Header(fin={self.fin}, rsv={self.rsv}, opcode={self.opcode}, "
            f"masked={self.masked}, length={self.length}, size={self.size})"
        )

    @property
    def mask_key(self) -> Optional[bytes]:
        """The 4-byte masking key, or None for an unmasked frame."""
        return self.key.to_bytes(4, "big") if self.masked else None


class Frame:
    """One complete frame, its payload unmasked."""

    def __repr__(self) -> str:
        return f"Frame(opcode={self.opcode}, fin={self.fin}, rsv={self.rsv}, payload={self.payload[:32]!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Frame):
            return NotImplemented
        return (self.opcode, self.fin, self.rsv, self.payload) == (other.opcode, other.fin, other.rsv, other.payload)

    def __hash__(self) -> int:
        return hash((self.opcode, self.fin, self.rsv, self.payload))


def _byte_view(data: Any) -> Any:
    """``data`` as flat bytes to index: any C-contiguous buffer, the same errors in both backends."""
    if type(data) is bytes or type(data) is bytearray:
        return data
    return memoryview(data).cast("B")


def _new_frame(opcode: int, fin: bool, rsv: int, payload: bytes) -> Frame:
    frame = Frame.__new__(Frame)
    frame.opcode = opcode
    frame.fin = fin
    frame.rsv = rsv
    frame.payload = payload
    return frame


def make_frame(opcode: int, payload: bytes, fin: bool = True, rsv: int = 0) -> Frame:
    """Build a :class:`Frame` value (for tests and for code that assembles frames itself)."""
    return _new_frame(opcode, fin, rsv, bytes(payload))


def _decode_header(view: Any, pos: int, end: int, h: Header, max_size: int) -> bool:
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
        key = (view[k] << 24) | (view[k + 1] << 16) | (view[k + 2] << 8) | view[k + 3]
    h.fin = fin
    h.rsv = (b0 >> 4) & 0x7
    h.opcode = opcode
    h.masked = masked
    h.length = length
    h.key = key
    h.size = size
    return True


def parse_header(data: Any, offset: int = 0, max_size: int = -1) -> Optional[Header]:
    """Decode the frame header at ``data[offset:]``; None if the buffer holds less than a header.

    Raises :class:`ProtocolError` carrying the close code for a header that
    breaks RFC 6455 on its own (see :class:`FrameReader` for the rules that
    need context), or whose length exceeds ``max_size`` (1009).
    """
    view = _byte_view(data)
    if offset < 0 or offset > len(view):
        raise ValueError("offset out of range")
    h = Header.__new__(Header)
    if _decode_header(view, offset, len(view), h, max_size):
        return h
    return None


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
    (client side) rejects masked ones, None accepts both. Sizes of -1 mean no
    limit. ``allowed_rsv`` is the RSV bits an extension negotiated (RSV1 for
    permessage-deflate: first frame of a data message only).

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
    ) -> None:
        self._mask_rule = -1 if require_mask is None else (1 if require_mask else 0)
        self._max_frame = max_frame_size
        self._max_message = max_message_size
        self._allowed_rsv = allowed_rsv
        self._check_utf8 = validate_utf8
        self._h = Header.__new__(Header)
        self._state = _HEADER
        self._tail = bytearray()
        self._payload = bytearray()
        self._remaining = 0
        self._message_opcode = 0
        self._message_size = 0
        self._message_rsv = 0
        self._text = False
        self._utf8 = Utf8Validator()
        self.error: Optional[ProtocolError] = None

    @property
    def pending(self) -> int:
        """Bytes held that do not make a complete frame yet."""
        return len(self._tail) + len(self._payload)

    @property
    def in_message(self) -> bool:
        """True between the first and the last frame of a fragmented message."""
        return self._message_opcode != 0

    def feed(self, data: Any) -> List[Frame]:
        """Consume ``data``; return the frames it completes, in order."""
        frames: List[Frame] = []
        if self.error is not None or not len(data):
            return frames
        view = _byte_view(data)
        end = len(view)
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
        return frames

    def _parse_run(self, view: Any, pos: int, end: int, frames: List[Frame]) -> int:
        """Parse consecutive frames from ``view``; return where the incomplete tail starts."""
        h = self._h
        while _decode_header(view, pos, end, h, self._max_frame):
            self._check_context(h)
            start = pos + h.size
            if end - start >= h.length:
                pos = start + h.length
                payload = unmask_slice(view, start, pos, h.key)
                if self._text:
                    self._utf8.feed(payload)
                self._deliver(payload, frames)
            else:
                self._state = _PAYLOAD
                self._remaining = h.length
                return self._fill(view, start, end, frames)
        return pos

    def _finish_tail_header(self, view: Any, end: int, frames: List[Frame]) -> int:
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
        used = h.size - held
        self._tail = bytearray()
        self._state = _PAYLOAD
        self._remaining = h.length
        return self._fill(view, used, end, frames)

    def _fill(self, view: Any, pos: int, end: int, frames: List[Frame]) -> int:
        """Add payload bytes of the frame in progress; deliver it when complete."""
        n = end - pos
        if n > self._remaining:
            n = self._remaining
        payload = self._payload
        if n > 0:
            start = len(payload)
            append_unmasked(payload, view, pos, pos + n, self._h.key, start)
            self._remaining -= n
            if self._text:
                # Text is validated as it arrives, so bad UTF-8 fails at once.
                self._utf8.feed(payload, start, start + n)
        if self._remaining == 0:
            self._state = _HEADER
            self._payload = bytearray()
            self._deliver(bytes(payload), frames)
        return pos + n

    def _check_context(self, h: Header) -> None:
        """Apply the rules that depend on the role, the extensions and the message in progress."""
        if self._mask_rule >= 0 and h.masked != (self._mask_rule == 1):
            raise ProtocolError(
                CLOSE_PROTOCOL_ERROR, "unmasked frame from a client" if self._mask_rule else "masked frame from a server"
            )
        opcode = h.opcode
        rsv = h.rsv
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
            self._message_rsv = rsv
            if opcode == OP_TEXT:
                self._utf8.reset()
        if self._max_message >= 0 and h.length > self._max_message - self._message_size:
            raise ProtocolError(
                CLOSE_TOO_BIG, f"message of more than {self._max_message} bytes over the limit"
            )
        self._message_size += h.length
        # Compressed text is validated after inflating, by the extension.
        self._text = self._check_utf8 and self._message_opcode == OP_TEXT and not (self._message_rsv & RSV1)

    def _deliver(self, payload: bytes, frames: List[Frame]) -> None:
        """Append the frame whose header is in ``self._h``; close its message if final."""
        h = self._h
        opcode = h.opcode
        if opcode < OP_CLOSE and h.fin:
            if self._text:
                self._utf8.finish()
            self._message_opcode = 0
        frames.append(_new_frame(opcode, h.fin, h.rsv, payload))


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


def _key_int(mask_key: Any) -> int:
    k = mask_key if type(mask_key) is bytes else bytes(_byte_view(mask_key))  # a buffer: bytes(4) would be a zero key, bytes([..]) a list
    if len(k) != 4:
        raise ValueError("a mask key is exactly 4 bytes")
    return (k[0] << 24) | (k[1] << 16) | (k[2] << 8) | k[3]


def frame_size(length: int, masked: bool = False) -> int:
    """Bytes on the wire for a frame with a ``length``-byte payload."""
    size = 2 if length < 126 else (4 if length < 65536 else 10)
    return size + (4 if masked else 0) + length


def encode_frame(opcode: int, payload: Any, fin: bool = True, rsv: int = 0, mask_key: Any = None) -> bytes:
    """Return one frame as bytes: any payload length, masked when ``mask_key`` (4 bytes) is given.

    Clients mask every frame (RFC 6455 section 5.3) with a fresh key; servers never mask.
    """
    view = _byte_view(payload)
    b0 = _first_byte(opcode, len(view), fin, rsv)
    if mask_key is None:
        return build_frame(b0, view, False, 0)
    return build_frame(b0, view, True, _key_int(mask_key))


def encode_frame_into(
    buffer: Any, offset: int, opcode: int, payload: Any, fin: bool = True, rsv: int = 0, mask_key: Any = None
) -> int:
    """Write one frame into the writable ``buffer`` at ``offset``; return its size.

    For batching many frames into one preallocated send buffer without copies;
    :func:`frame_size` says how much room a frame needs.
    """
    view = _byte_view(payload)
    b0 = _first_byte(opcode, len(view), fin, rsv)
    out = _byte_view(buffer)
    if mask_key is None:
        return write_frame(out, offset, b0, view, False, 0)
    return write_frame(out, offset, b0, view, True, _key_int(mask_key))
