"""Pure-Python per-byte kernels: the twin of the compiled _kernels module.

Same names, same results, same errors; only the idioms differ (big-integer XOR
for masking, the codec machinery for UTF-8), chosen as the fastest pure ones.
"""

from __future__ import annotations

import codecs
import struct
from typing import Any

from .constants import CLOSE_INVALID_PAYLOAD
from .errors import ProtocolError

MASK_IMPL = "python"

_U64 = struct.Struct("!BBQ")
_U16 = struct.Struct("!BBH")


#: From this many bytes on, ``bytes.translate`` over the four byte lanes beats one
#: big-integer XOR, whose int <-> bytes conversions grow faster than linearly.
_TRANSLATE_MIN = 2048
_TABLES: Any = None  # _TABLES[k][b] == b ^ k: 64 KiB, built on first use (2 ms)


def _xor_lanes(out: bytearray, k: bytes) -> None:
    """XOR the bytearray ``out`` in place, lane by lane: byte i with ``k[i % 4]``."""
    global _TABLES
    tables = _TABLES
    if tables is None:  # built whole, then published in one assignment: never seen half made
        tables = _TABLES = [bytes(b ^ x for b in range(256)) for x in range(256)]
    out[0::4] = out[0::4].translate(tables[k[0]])
    out[1::4] = out[1::4].translate(tables[k[1]])
    out[2::4] = out[2::4].translate(tables[k[2]])
    out[3::4] = out[3::4].translate(tables[k[3]])


def _xor(data: Any, key4: bytes, phase: int) -> bytes:
    """XOR bytes-like ``data`` with the key rotated to ``phase``."""
    if type(data) is not bytes and type(data) is not bytearray:
        data = _byte_view(data)
    n = len(data)
    if not n:
        return b""
    if phase & 3:
        phase &= 3
        key4 = key4[phase:] + key4[:phase]
    if n >= _TRANSLATE_MIN:
        out = bytearray(data)
        _xor_lanes(out, key4)
        return bytes(out)
    # One big-integer XOR: linear for short data, and done in C by CPython's long arithmetic.
    pad = key4 * (n >> 2) + key4[: n & 3]
    return (int.from_bytes(data, "little") ^ int.from_bytes(pad, "little")).to_bytes(n, "little")


def _byte_view(data: Any) -> Any:
    """``data`` as flat bytes: any C-contiguous buffer (TypeError otherwise, as compiled)."""
    if type(data) is bytes or type(data) is bytearray:
        return data
    return memoryview(data).cast("B")


def _key_from(key: Any) -> bytes:
    k = bytes(_byte_view(key))
    if len(k) != 4:
        raise ValueError("a mask key is exactly 4 bytes")
    return k


def mask(data: Any, key: Any, phase: int = 0) -> bytes:
    """Return ``data`` XORed with the 4-byte ``key``, starting at key byte ``phase % 4``.

    Masking and unmasking are the same operation; ``phase`` lets a payload that
    arrives in pieces be unmasked piece by piece.
    """
    if phase < 0:
        raise ValueError("phase must be >= 0")
    if type(key) is not bytes or len(key) != 4:  # a 4-byte bytes key needs no conversion
        key = _key_from(key)  # checked before the data, as in the compiled twin
    return _xor(data, key, phase)


def mask_inplace(buffer: Any, key: Any, phase: int = 0) -> None:
    """XOR the writable ``buffer`` with ``key`` in place (see :func:`mask`)."""
    if phase < 0:
        raise ValueError("phase must be >= 0")
    k = _key_from(key)
    view = _byte_view(buffer)
    if memoryview(view).readonly:
        raise TypeError("mask_inplace needs a writable buffer")
    if type(view) is bytearray and len(view) >= _TRANSLATE_MIN:
        phase &= 3
        _xor_lanes(view, k[phase:] + k[:phase])
    else:
        view[:] = _xor(view, k, phase)


def unmask_slice(src: Any, start: int, stop: int, key: int) -> bytes:
    """Return ``src[start:stop]`` unmasked with the wire-order ``key`` (0: no mask)."""
    if key == 0:
        return bytes(src[start:stop])
    return _xor(src[start:stop], key.to_bytes(4, "big"), 0)


def append_unmasked(dst: bytearray, src: Any, start: int, stop: int, key: int, phase: int) -> None:
    """Append ``src[start:stop]``, unmasked from key byte ``phase``, to ``dst``."""
    if stop > start:
        dst += _xor(src[start:stop], key.to_bytes(4, "big"), phase)


def _header(b0: int, n: int, masked: bool, key: int) -> bytes:
    mbit = 0x80 if masked else 0
    if n < 126:
        head = bytes((b0, mbit | n))
    elif n < 65536:
        head = _U16.pack(b0, mbit | 126, n)
    else:
        head = _U64.pack(b0, mbit | 127, n)
    return head + key.to_bytes(4, "big") if masked else head


def build_frame(b0: int, payload: Any, masked: bool, key: int) -> bytes:
    """Return a whole frame: header, then the payload (masked with ``key`` if ``masked``)."""
    head = _header(b0, len(payload), masked, key)
    if masked:
        return head + _xor(payload, key.to_bytes(4, "big"), 0)
    return head + payload


def write_frame(out: Any, offset: int, b0: int, payload: Any, masked: bool, key: int) -> int:
    """Write a whole frame into ``out`` at ``offset``; return its size."""
    if memoryview(out).readonly:
        raise TypeError("encode_frame_into needs a writable buffer")
    n = len(payload)
    head = _header(b0, n, masked, key)
    total = len(head) + n
    if offset < 0 or len(out) - offset < total:
        raise ValueError(f"the buffer has no room for a {total}-byte frame at offset {offset}")
    h = offset + len(head)
    out[offset:h] = head
    out[h : h + n] = _xor(payload, key.to_bytes(4, "big"), 0) if masked else payload
    return total


class Utf8Validator:
    """Incremental UTF-8 validator: feed a text in chunks split anywhere.

    :meth:`feed` raises :class:`ProtocolError` (1007) at the first byte that
    cannot be part of valid UTF-8; :meth:`finish` raises when the text ends
    inside a sequence. The error names the offset where the bad sequence began.
    """

    __slots__ = ("_decoder", "_offset", "_failed")

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self.reset()

    def reset(self) -> None:
        """Start a new text."""
        self._decoder.reset()
        self._offset = 0
        self._failed = False

    def feed(self, data: Any, start: int = 0, stop: int = -1) -> None:
        """Validate ``data[start:stop]`` as the next piece of the text."""
        if self._failed:
            raise ProtocolError(CLOSE_INVALID_PAYLOAD, f"invalid UTF-8 at byte {self._offset}")
        data = _byte_view(data)
        size = len(data)
        if stop < 0 or stop > size:
            stop = size
        if start < 0:
            start = 0
        if stop <= start:
            return
        with memoryview(data) as view:
            chunk = view[start:stop]
            pending = len(self._decoder.getstate()[0])
            try:
                self._decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                self._fail(self._offset - pending + exc.start)
            self._offset += stop - start
        # The codec waits for more bytes after ED A0..BF, which can only begin a
        # surrogate: fail now, as the compiled validator does.
        held = self._decoder.getstate()[0]
        if len(held) >= 2 and held[0] == 0xED and held[1] >= 0xA0:
            self._fail(self._offset - len(held))

    def _fail(self, offset: int) -> None:
        self._failed = True
        self._offset = offset
        raise ProtocolError(CLOSE_INVALID_PAYLOAD, f"invalid UTF-8 at byte {offset}")

    def finish(self) -> None:
        """Check that the text did not end in the middle of a sequence."""
        if self._failed:
            raise ProtocolError(CLOSE_INVALID_PAYLOAD, f"invalid UTF-8 at byte {self._offset}")
        held = len(self._decoder.getstate()[0])
        if held:
            raise ProtocolError(CLOSE_INVALID_PAYLOAD, f"incomplete UTF-8 sequence at byte {self._offset - held}")

    @property
    def complete(self) -> bool:
        """True when the text so far ends on a character boundary."""
        return not self._failed and not self._decoder.getstate()[0]


def validate_utf8(data: Any) -> bool:
    """Return True if ``data`` is valid UTF-8 as a whole."""
    data = _byte_view(data)
    try:
        codecs.utf_8_decode(data, "strict", True)
    except UnicodeDecodeError:
        return False
    return True
