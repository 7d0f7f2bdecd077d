"""Pure-Python per-byte kernels: the twin of the compiled ``kernels_c``.

Same names, same results, same errors; only the idioms differ (big-integer XOR
for masking, the codec machinery for UTF-8), chosen as the fastest pure ones.
Also the one pure reading of buffer arguments (:func:`byte_view`,
:func:`parse_mask_key`), which ``frames`` uses too. The kernels know no frame
layout: ``frames`` writes the header, they copy it and the payload.
"""

from __future__ import annotations

import codecs
from typing import TYPE_CHECKING, Callable, List, Optional, Union

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

from .constants import CLOSE_INVALID_PAYLOAD
from .errors import ProtocolError

MASK_IMPL = "python"

#: What :func:`byte_view` gives: something indexable and sliceable as bytes.
ByteView = Union[bytes, bytearray, memoryview]


#: From this many bytes on, ``bytes.translate`` over the four byte lanes beats one
#: big-integer XOR, whose int <-> bytes conversions grow faster than linearly.
_TRANSLATE_MIN = 2048
_TABLES: Optional[List[bytes]] = None  # _TABLES[k][b] == b ^ k: 64 KiB, built on first use (2 ms)


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


def _xor(data: ReadableBuffer, key4: bytes, phase: int) -> bytes:
    """XOR bytes-like ``data`` with the key rotated to ``phase``."""
    if type(data) is not bytes and type(data) is not bytearray:
        data = byte_view(data)
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


def byte_view(data: ReadableBuffer) -> ByteView:
    """``data`` as flat bytes to index: any C-contiguous buffer (TypeError otherwise, as compiled)."""
    if type(data) is bytes or type(data) is bytearray:
        return data
    return memoryview(data).cast("B")


def parse_mask_key(key: ReadableBuffer) -> int:
    """A 4-byte mask key (any buffer) as the big-endian int frames carry; ValueError if not 4 bytes."""
    k = key if type(key) is bytes else bytes(byte_view(key))  # bytes(a buffer), never bytes(4) or bytes([...])
    if len(k) != 4:
        raise ValueError("a mask key is exactly 4 bytes")
    return int.from_bytes(k, "big")


def mask(data: ReadableBuffer, key: ReadableBuffer, phase: int = 0) -> bytes:
    """Return ``data`` XORed with the 4-byte ``key``, starting at key byte ``phase % 4``.

    Masking and unmasking are the same operation; ``phase`` lets a payload that
    arrives in pieces be unmasked piece by piece.
    """
    if phase < 0:
        raise ValueError("phase must be >= 0")
    if type(key) is not bytes or len(key) != 4:  # a 4-byte bytes key needs no conversion
        key = parse_mask_key(key).to_bytes(4, "big")  # checked before the data, as in the compiled twin
    return _xor(data, key, phase)


def mask_inplace(buffer: ReadableBuffer, key: ReadableBuffer, phase: int = 0) -> None:
    """XOR the writable ``buffer`` with ``key`` in place (see :func:`mask`)."""
    if phase < 0:
        raise ValueError("phase must be >= 0")
    k = parse_mask_key(key).to_bytes(4, "big")
    view = byte_view(buffer)
    if isinstance(view, bytes) or memoryview(view).readonly:
        raise TypeError("mask_inplace needs a writable buffer")
    if type(view) is bytearray and len(view) >= _TRANSLATE_MIN:
        phase &= 3
        _xor_lanes(view, k[phase:] + k[:phase])
    else:
        view[:] = _xor(view, k, phase)


def unmask_slice(src: ByteView, start: int, stop: int, key: int) -> bytes:
    """Return ``src[start:stop]`` unmasked with the wire-order ``key`` (0: no mask)."""
    if key == 0:
        return bytes(src[start:stop])
    return _xor(src[start:stop], key.to_bytes(4, "big"), 0)


def append_unmasked(dst: bytearray, src: ByteView, start: int, stop: int, key: int, phase: int) -> None:
    """Append ``src[start:stop]``, unmasked from key byte ``phase``, to ``dst``."""
    if stop > start:
        dst += _xor(src[start:stop], key.to_bytes(4, "big"), phase)


def new_payload(n: int) -> bytearray:
    """A payload's final buffer of ``n`` bytes, written by :func:`write_unmasked` (compiled: the
    bytes object that is delivered; here a bytearray that :func:`payload_bytes` copies once)."""
    return bytearray(n)


def write_unmasked(dst: bytearray, offset: int, src: ByteView, start: int, stop: int, key: int, phase: int) -> None:
    """Write ``src[start:stop]``, unmasked from key byte ``phase``, into ``dst`` at ``offset``."""
    n = stop - start
    if n <= 0:
        return
    if offset < 0 or offset + n > len(dst):
        raise ValueError("write past the end of the payload")
    dst[offset : offset + n] = src[start:stop] if key == 0 else _xor(src[start:stop], key.to_bytes(4, "big"), phase)


def payload_bytes(payload: bytearray) -> bytes:
    """The finished payload of :func:`new_payload` as bytes."""
    return bytes(payload)


def join_frame(head: bytearray, size: int, payload: ByteView, key: int) -> bytes:
    """A whole frame as bytes: ``head[:size]`` (the header frames wrote), then the payload, masked
    with the wire-order ``key`` unless it is 0."""
    if key:
        payload = _xor(payload, key.to_bytes(4, "big"), 0)
    return b"".join((head[:size], payload))  # one copy of the payload


OVERLAP_ERROR = "the payload overlaps where the frame goes in the buffer (other than exactly in place)"


def write_frame(out: ByteView, offset: int, head: bytearray, size: int, payload: ByteView, key: int) -> int:
    """Write :func:`join_frame`'s frame into the writable ``out`` at ``offset``; return its size."""
    if isinstance(out, bytes) or memoryview(out).readonly:
        raise TypeError("encode_frame_into needs a writable buffer")
    n = len(payload)
    total = size + n
    if offset < 0 or len(out) - offset < total:
        raise ValueError(f"the buffer has no room for a {total}-byte frame at offset {offset}")
    if _overlaps(out, offset, total, payload, size):
        raise ValueError(OVERLAP_ERROR)
    h = offset + size
    out[offset:h] = head[:size]
    out[h : h + n] = _xor(payload, key.to_bytes(4, "big"), 0) if key else payload
    return total


def _overlaps(out: ByteView, offset: int, total: int, payload: ByteView, header: int) -> bool:
    """True if ``payload`` shares bytes with ``out[offset:offset + total]`` other than exactly in place
    (at ``out[offset + header:]``): the compiled twin's pointer comparison, made on addresses."""
    n = len(payload)
    if n == 0 or type(payload) is bytes:  # immutable bytes are never a writable buffer's memory
        return False
    if type(out) is bytearray and type(payload) is bytearray:  # each owns its memory
        if payload is not out:
            return False
        start = 0
    else:
        distance = _distance(out, payload)
        if distance is None:  # no addresses here: the same exporter counts as an overlap
            return memoryview(out).obj is memoryview(payload).obj
        start = distance
    if start == offset + header:
        return False
    return start < offset + total and offset < start + n


def _distance(out: ByteView, payload: ByteView) -> Optional[int]:
    """Address of ``payload``'s first byte minus ``out``'s, or None where the interpreter does not say."""
    a = _address(payload)
    b = _address(out)
    return None if a is None or b is None else a - b


def _address(obj: ReadableBuffer) -> Optional[int]:
    """Where a buffer's bytes start in memory: CPython's buffer protocol through ctypes, PyPy's raw address."""
    global _ADDRESS
    if _ADDRESS is None:
        _ADDRESS = _address_function()
    return _ADDRESS(obj)


_ADDRESS: Optional[Callable[[ReadableBuffer], Optional[int]]] = None  # chosen on first use: ctypes is imported only when an overlap is possible


def _address_function() -> Callable[[ReadableBuffer], Optional[int]]:
    raw = getattr(memoryview, "_pypy_raw_address", None)
    if raw is not None:
        def pypy_address(obj: ReadableBuffer) -> Optional[int]:
            try:
                return int(raw(memoryview(obj)))
            except ValueError:  # a buffer without a fixed address
                return None

        return pypy_address
    try:
        import ctypes

        api = ctypes.pythonapi
    except (ImportError, AttributeError):
        return lambda obj: None

    class Py_buffer(ctypes.Structure):  # the C layout, stable since Python 3.0 (limited API since 3.11)
        _fields_ = [
            ("buf", ctypes.c_void_p), ("obj", ctypes.c_void_p), ("len", ctypes.c_ssize_t),
            ("itemsize", ctypes.c_ssize_t), ("readonly", ctypes.c_int), ("ndim", ctypes.c_int),
            ("format", ctypes.c_char_p), ("shape", ctypes.c_void_p), ("strides", ctypes.c_void_p),
            ("suboffsets", ctypes.c_void_p), ("internal", ctypes.c_void_p),
        ]

    # Private prototypes: setting argtypes on api.PyObject_GetBuffer would change it for everyone.
    get = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.py_object, ctypes.POINTER(Py_buffer), ctypes.c_int)(
        ("PyObject_GetBuffer", api))
    release = ctypes.PYFUNCTYPE(None, ctypes.POINTER(Py_buffer))(("PyBuffer_Release", api))

    def cpython_address(obj: ReadableBuffer) -> Optional[int]:
        view = Py_buffer()
        get(obj, ctypes.byref(view), 0)  # PyBUF_SIMPLE, as the compiled twin asks
        try:
            return int(view.buf or 0)
        finally:
            release(ctypes.byref(view))

    return cpython_address


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

    def feed(self, data: ReadableBuffer, start: int = 0, stop: int = -1) -> None:
        """Validate ``data[start:stop]`` as the next piece of the text."""
        if self._failed:
            raise ProtocolError(CLOSE_INVALID_PAYLOAD, f"invalid UTF-8 at byte {self._offset}")
        data = byte_view(data)
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


def validate_utf8(data: ReadableBuffer) -> bool:
    """Return True if ``data`` is valid UTF-8 as a whole."""
    data = byte_view(data)
    try:
        codecs.utf_8_decode(data, "strict", True)
    except UnicodeDecodeError:
        return False
    return True
