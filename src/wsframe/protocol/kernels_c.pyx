# cython: language_level=3
"""Compiled per-byte kernels: XOR masking and UTF-8 validation over csrc/.

The pure twin is kernels_py.py: same names, same results, same errors, and the
C twins of its buffer readers (byte_view, parse_mask_key). No frame layout
here: frames.py writes the header, these copy it and the payload.
Large payloads are processed without the GIL so server threads run in parallel.
"""
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE, PyByteArray_Resize
from libc.stdint cimport uint8_t, uint32_t
from libc.string cimport memcpy

from .constants cimport CLOSE_INVALID_PAYLOAD
from .errors import ProtocolError

cdef extern from "wsf_mask.h":
    void wsf_mask_init()
    const char *wsf_mask_impl()
    void wsf_mask(unsigned char *dst, const unsigned char *src, size_t n,
                  const unsigned char *key, size_t phase) nogil

cdef extern from *:
    """
    #ifdef Py_GIL_DISABLED
    #define WSF_FREE_THREADED 1
    #else
    #define WSF_FREE_THREADED 0
    #endif
    """
    const bint FREE_THREADED "WSF_FREE_THREADED"

cdef extern from "wsf_utf8.h":
    size_t wsf_utf8_validate(uint8_t *state, uint8_t *pending, const unsigned char *s, size_t n) nogil
    enum: WSF_UTF8_ACCEPT
    enum: WSF_UTF8_REJECT

wsf_mask_init()

#: SIMD path the mask kernel uses on this CPU ("avx2", "sse2", "neon", "scalar").
MASK_IMPL = wsf_mask_impl().decode()

# Below this many bytes the GIL is kept: releasing it costs more than the work.
cdef enum:
    NOGIL_THRESHOLD = 65536

cdef const unsigned char EMPTY[1]


cdef inline void _key_bytes(uint32_t key, unsigned char *k) noexcept:
    k[0] = (key >> 24) & 0xFF
    k[1] = (key >> 16) & 0xFF
    k[2] = (key >> 8) & 0xFF
    k[3] = key & 0xFF


cdef inline void _xor(unsigned char *dst, const unsigned char *src, size_t n,
                      const unsigned char *k, size_t phase) noexcept:
    cdef size_t i
    if n < 16:  # tiny payloads: a call into csrc/ costs more than the loop
        for i in range(n):
            dst[i] = src[i] ^ k[(phase + i) & 3]
    elif n >= NOGIL_THRESHOLD:
        with nogil:
            wsf_mask(dst, src, n, k, phase)
    else:
        wsf_mask(dst, src, n, k, phase)


cdef int _get_bytes(object obj, Py_buffer *view, bint writable, str what="mask_inplace") except -1:
    """Borrow ``obj``'s bytes (any C-contiguous buffer), with the errors _kernels_py gives."""
    try:
        PyObject_GetBuffer(obj, view, PyBUF_SIMPLE)
    except BufferError:
        raise TypeError("memoryview: casts are restricted to C-contiguous views") from None
    if writable and view.readonly:
        PyBuffer_Release(view)
        raise TypeError(f"{what} needs a writable buffer")
    return 0


cdef uint32_t parse_mask_key(object key) except? 0:
    """A 4-byte mask key (any buffer) as a big-endian uint32; ValueError if not 4 bytes."""
    cdef Py_buffer k
    cdef const unsigned char *p
    if type(key) is bytes and PyBytes_GET_SIZE(key) == 4:  # the common case, without a buffer
        p = <const unsigned char *>PyBytes_AS_STRING(key)
        return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3]
    _get_bytes(key, &k, False)
    try:
        if k.len != 4:
            raise ValueError("a mask key is exactly 4 bytes")
        p = <const unsigned char *>k.buf
        return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3]
    finally:
        PyBuffer_Release(&k)


def mask(data, key, Py_ssize_t phase=0) -> bytes:
    """Return ``data`` XORed with the 4-byte ``key``, starting at key byte ``phase % 4``.

    Masking and unmasking are the same operation; ``phase`` lets a payload that
    arrives in pieces be unmasked piece by piece.
    """
    cdef Py_buffer src
    cdef unsigned char k[4]
    cdef bytes out
    cdef Py_ssize_t n
    if phase < 0:
        raise ValueError("phase must be >= 0")
    _key_bytes(parse_mask_key(key), k)
    if type(data) is bytes:  # no buffer to borrow: the common case stays cheap for small payloads
        n = PyBytes_GET_SIZE(data)
        out = PyBytes_FromStringAndSize(NULL, n)
        if n:
            _xor(<unsigned char *>PyBytes_AS_STRING(out), <const unsigned char *>PyBytes_AS_STRING(data), n, k, phase & 3)
        return out
    _get_bytes(data, &src, False)
    try:
        out = PyBytes_FromStringAndSize(NULL, src.len)
        if src.len:
            _xor(<unsigned char *>PyBytes_AS_STRING(out), <const unsigned char *>src.buf, src.len, k, phase & 3)
    finally:
        PyBuffer_Release(&src)
    return out


def mask_inplace(buffer, key, Py_ssize_t phase=0) -> None:
    """XOR the writable ``buffer`` with ``key`` in place (see :func:`mask`)."""
    cdef Py_buffer buf
    cdef unsigned char k[4]
    if phase < 0:
        raise ValueError("phase must be >= 0")
    cdef Py_ssize_t n
    _key_bytes(parse_mask_key(key), k)
    # Without a buffer export only where the GIL is held throughout (under NOGIL_THRESHOLD,
    # never on a free-threaded build): no other thread can then resize the bytearray mid-write.
    if not FREE_THREADED and type(buffer) is bytearray and PyByteArray_GET_SIZE(buffer) < NOGIL_THRESHOLD:
        n = PyByteArray_GET_SIZE(buffer)
        if n:
            _xor(<unsigned char *>PyByteArray_AS_STRING(buffer), <const unsigned char *>PyByteArray_AS_STRING(buffer), n, k, phase & 3)
        return
    _get_bytes(buffer, &buf, True)
    try:
        if buf.len:
            _xor(<unsigned char *>buf.buf, <const unsigned char *>buf.buf, buf.len, k, phase & 3)
    finally:
        PyBuffer_Release(&buf)


cdef bytes unmask_slice(const unsigned char[::1] src, Py_ssize_t start, Py_ssize_t stop, uint32_t key):
    cdef Py_ssize_t n = stop - start
    cdef unsigned char k[4]
    cdef bytes out
    if key == 0:
        return PyBytes_FromStringAndSize(<const char *>&src[start] if n else <const char *>EMPTY, n)
    out = PyBytes_FromStringAndSize(NULL, n)
    if n:
        _key_bytes(key, k)
        _xor(<unsigned char *>PyBytes_AS_STRING(out), &src[start], n, k, 0)
    return out


cdef void append_unmasked(bytearray dst, const unsigned char[::1] src, Py_ssize_t start,
                          Py_ssize_t stop, uint32_t key, Py_ssize_t phase) except *:
    cdef Py_ssize_t n = stop - start
    cdef Py_ssize_t old = PyByteArray_GET_SIZE(dst)
    cdef unsigned char k[4]
    if n <= 0:
        return
    cdef Py_buffer out
    PyByteArray_Resize(dst, old + n)
    _key_bytes(key, k)
    # Exported while written (the GIL may be released): a concurrent resize fails, it cannot move it.
    _get_bytes(dst, &out, True)
    try:
        _xor(<unsigned char *>out.buf + old, &src[start], n, k, phase & 3)
    finally:
        PyBuffer_Release(&out)


cdef bytes new_payload(Py_ssize_t n):
    """A payload's final buffer, written by :func:`write_unmasked` before anyone else sees it:
    the bytes object that is delivered, so completing the frame copies nothing."""
    return PyBytes_FromStringAndSize(NULL, n)


cdef void write_unmasked(bytes dst, Py_ssize_t offset, const unsigned char[::1] src, Py_ssize_t start,
                         Py_ssize_t stop, uint32_t key, Py_ssize_t phase) except *:
    cdef Py_ssize_t n = stop - start
    cdef unsigned char k[4]
    if n <= 0:
        return
    if offset < 0 or offset + n > PyBytes_GET_SIZE(dst):
        raise ValueError("write past the end of the payload")
    cdef unsigned char *out = <unsigned char *>PyBytes_AS_STRING(dst) + offset
    if key == 0:
        memcpy(out, &src[start], n)
    else:
        _key_bytes(key, k)
        _xor(out, &src[start], n, k, phase & 3)


cdef inline void _copy_head(unsigned char *out, const unsigned char *head, Py_ssize_t size) noexcept:
    """memcpy for 2 to 14 bytes as two fixed-size, possibly overlapping moves: no library call."""
    if size >= 8:
        memcpy(out, head, 8)
        memcpy(out + size - 8, head + size - 8, 8)
    elif size >= 4:
        memcpy(out, head, 4)
        memcpy(out + size - 4, head + size - 4, 4)
    else:
        memcpy(out, head, 2)


cdef inline Py_ssize_t _put(unsigned char *out, const unsigned char *head, Py_ssize_t size,
                            const unsigned char *payload, Py_ssize_t n, uint32_t key) noexcept:
    """The header bytes, then the payload (XORed with ``key`` unless 0); in place needs no copy."""
    cdef unsigned char k[4]
    _copy_head(out, head, size)
    out += size
    if key:
        _key_bytes(key, k)
        if n:
            _xor(out, payload, n, k, 0)
    elif n and out != payload:
        memcpy(out, payload, n)
    return size + n


cdef bytes join_frame(const unsigned char *head, Py_ssize_t size, object payload, uint32_t key):
    cdef Py_buffer src
    cdef bytes out
    cdef Py_ssize_t n
    if type(payload) is bytes:
        n = PyBytes_GET_SIZE(payload)
        out = PyBytes_FromStringAndSize(NULL, size + n)
        _put(<unsigned char *>PyBytes_AS_STRING(out), head, size, <const unsigned char *>PyBytes_AS_STRING(payload), n, key)
        return out
    _get_bytes(payload, &src, False)
    try:
        out = PyBytes_FromStringAndSize(NULL, size + src.len)
        _put(<unsigned char *>PyBytes_AS_STRING(out), head, size, <const unsigned char *>src.buf, src.len, key)
    finally:
        PyBuffer_Release(&src)
    return out


OVERLAP_ERROR = "the payload overlaps where the frame goes in the buffer (other than exactly in place)"


cdef inline bint _overlaps(const unsigned char *frame, Py_ssize_t total, const unsigned char *payload,
                           Py_ssize_t n, Py_ssize_t header) noexcept:
    """True if the payload shares bytes with the frame's place, other than sitting exactly where it goes."""
    if n == 0 or payload == frame + header:
        return False
    return payload < frame + total and frame < payload + n


cdef Py_ssize_t write_frame(object out, Py_ssize_t offset, const unsigned char *head, Py_ssize_t size,
                            object payload, uint32_t key) except -1:
    cdef Py_buffer dst, src
    cdef Py_ssize_t total
    cdef unsigned char *start
    _get_bytes(out, &dst, True, "encode_frame_into")
    try:
        _get_bytes(payload, &src, False)
        try:
            total = size + src.len
            if offset < 0 or dst.len - offset < total:
                raise ValueError(f"the buffer has no room for a {total}-byte frame at offset {offset}")
            start = <unsigned char *>dst.buf + offset
            if _overlaps(start, total, <const unsigned char *>src.buf, src.len, size):
                raise ValueError(OVERLAP_ERROR)
            return _put(start, head, size, <const unsigned char *>src.buf, src.len, key)
        finally:
            PyBuffer_Release(&src)
    finally:
        PyBuffer_Release(&dst)


cdef class Utf8Validator:
    """Incremental UTF-8 validator: feed a text in chunks split anywhere.

    :meth:`feed` raises :class:`ProtocolError` (1007) at the first byte that
    cannot be part of valid UTF-8; :meth:`finish` raises when the text ends
    inside a sequence. The error names the offset where the bad sequence began.
    """

    def __init__(self):
        self.reset()

    cpdef void reset(self):
        """Start a new text."""
        self._state = WSF_UTF8_ACCEPT
        self._pending = 0
        self._offset = 0

    cpdef void feed(self, object data, Py_ssize_t start=0, Py_ssize_t stop=-1) except *:
        """Validate ``data[start:stop]`` as the next piece of the text."""
        cdef Py_buffer buf
        cdef Py_ssize_t n
        cdef size_t good
        cdef const unsigned char *p
        _get_bytes(data, &buf, False)
        try:
            if stop < 0 or stop > buf.len:
                stop = buf.len
            if start < 0:
                start = 0
            n = stop - start
            if self._state == WSF_UTF8_REJECT:
                raise ProtocolError(CLOSE_INVALID_PAYLOAD, f"invalid UTF-8 at byte {self._offset}")
            if n <= 0:
                return
            p = <const unsigned char *>buf.buf + start
            if n >= NOGIL_THRESHOLD:
                with nogil:
                    good = wsf_utf8_validate(&self._state, &self._pending, p, n)
            else:
                good = wsf_utf8_validate(&self._state, &self._pending, p, n)
        finally:
            PyBuffer_Release(&buf)
        if self._state == WSF_UTF8_REJECT:
            self._offset += <Py_ssize_t>good - self._pending
            raise ProtocolError(CLOSE_INVALID_PAYLOAD, f"invalid UTF-8 at byte {self._offset}")
        self._offset += n

    cpdef void finish(self) except *:
        """Check that the text did not end in the middle of a sequence."""
        if self._state == WSF_UTF8_REJECT:
            raise ProtocolError(CLOSE_INVALID_PAYLOAD, f"invalid UTF-8 at byte {self._offset}")
        if self._state != WSF_UTF8_ACCEPT:
            raise ProtocolError(CLOSE_INVALID_PAYLOAD, f"incomplete UTF-8 sequence at byte {self._offset - self._pending}")

    @property
    def complete(self) -> bool:
        """True when the text so far ends on a character boundary."""
        return self._state == WSF_UTF8_ACCEPT


def validate_utf8(data) -> bool:
    """Return True if ``data`` is valid UTF-8 as a whole."""
    cdef Py_buffer buf
    cdef uint8_t state = WSF_UTF8_ACCEPT
    cdef uint8_t pending = 0
    _get_bytes(data, &buf, False)
    try:
        if buf.len >= NOGIL_THRESHOLD:
            with nogil:
                wsf_utf8_validate(&state, &pending, <const unsigned char *>buf.buf, buf.len)
        elif buf.len:
            wsf_utf8_validate(&state, &pending, <const unsigned char *>buf.buf, buf.len)
    finally:
        PyBuffer_Release(&buf)
    return state == WSF_UTF8_ACCEPT
