# C types for frames.py compiled as wsframe.protocol.frames_c (see setup.py).
# The source stays plain Python; this file only adds types.
cimport cython
from libc.stdint cimport uint32_t

from .constants cimport (CLOSE_PROTOCOL_ERROR, CLOSE_TOO_BIG, MAX_CONTROL_PAYLOAD, OP_BINARY, OP_CLOSE,
                        OP_CONTINUATION, OP_PING, OP_PONG, OP_TEXT, RSV1)
from .kernels_c cimport (Utf8Validator, append_unmasked, byte_view, join_frame, new_payload, parse_mask_key,
                         payload_bytes, unmask_slice, write_frame, write_unmasked)
cdef int _HEADER, _PAYLOAD
cdef long long _PREALLOC_MAX, _PREALLOC_RATIO, _PREALLOC_SMALL
cdef object _MAX_LENGTH


# Fields are private; frames.py gives them read-only properties (compiled to C getters).
cdef class Header:
    cdef bint _fin
    cdef int _rsv
    cdef int _opcode
    cdef bint _masked
    cdef unsigned long long _length
    cdef uint32_t _key
    cdef int _size


cdef class Frame:
    cdef int _opcode
    cdef bint _fin
    cdef int _rsv
    cdef bytes _payload


cdef bint _is_frame(object obj)


@cython.locals(frame=Frame)
cdef Frame _new_frame(int opcode, bint fin, int rsv, bytes payload)


@cython.locals(b0=int, b1=int, length="unsigned long long", size=int, masked=bint, opcode=int,
               fin=bint, key=uint32_t, k=Py_ssize_t, i=Py_ssize_t)
cdef bint _decode_header(const unsigned char[::1] view, Py_ssize_t pos, Py_ssize_t end, Header h,
                         long long max_size) except -1


@cython.locals(view="const unsigned char[::1]", h=Header)
cpdef Header parse_header(data, Py_ssize_t offset=*, long long max_size=*)


cdef class FrameReader:
    cdef int _mask_rule
    cdef long long _max_frame
    cdef long long _max_message
    cdef long long _max_fragments
    cdef int _allowed_rsv
    cdef bint _check_utf8
    cdef Header _h
    cdef int _state
    cdef bytearray _tail
    cdef bytearray _payload
    cdef bytes _final
    cdef Py_ssize_t _filled
    cdef unsigned long long _remaining
    cdef int _message_opcode
    cdef unsigned long long _message_size
    cdef long long _message_frames
    cdef int _message_rsv
    cdef bint _text
    cdef Utf8Validator _utf8
    cdef public object error

    @cython.locals(view="const unsigned char[::1]", end=Py_ssize_t, pos=Py_ssize_t, frames=list)
    cpdef list feed(self, data)

    @cython.locals(h=Header, start=Py_ssize_t, payload=bytes)
    cdef Py_ssize_t _parse_run(self, const unsigned char[::1] view, Py_ssize_t pos, Py_ssize_t end,
                               list frames) except -1

    @cython.locals(tail=bytearray, held=Py_ssize_t, take=Py_ssize_t, h=Header, used=Py_ssize_t)
    cdef Py_ssize_t _finish_tail_header(self, const unsigned char[::1] view, Py_ssize_t end,
                                        list frames) except -1

    cdef void _start_payload(self, Header h, Py_ssize_t here) except *

    @cython.locals(n=Py_ssize_t, payload=bytearray, final=bytes, start=Py_ssize_t)
    cdef Py_ssize_t _fill(self, const unsigned char[::1] view, Py_ssize_t pos, Py_ssize_t end,
                          list frames) except -1

    @cython.locals(opcode=int, rsv=int)
    cdef void _check_context(self, Header h) except *

    @cython.locals(h=Header, opcode=int)
    cdef void _deliver(self, bytes payload, list frames) except *


cdef int _first_byte(int opcode, Py_ssize_t length, bint fin, int rsv) except -1

cdef inline Py_ssize_t _header_size(unsigned long long length, bint masked) noexcept

@cython.locals(mbit=int, size=Py_ssize_t, i=int)
cdef inline Py_ssize_t _write_header(unsigned char *out, int b0, unsigned long long length, bint masked,
                                     uint32_t key) noexcept

# ``head`` is a C array on the stack: the header is written there, then copied with the payload.
@cython.locals(n=Py_ssize_t, b0=int, key=uint32_t, head="unsigned char[14]", size=Py_ssize_t)
cpdef bytes encode_frame(int opcode, payload, bint fin=*, int rsv=*, mask_key=*)

@cython.locals(n=Py_ssize_t, b0=int, key=uint32_t, head="unsigned char[14]", size=Py_ssize_t)
cpdef Py_ssize_t encode_frame_into(buffer, Py_ssize_t offset, int opcode, payload, bint fin=*, int rsv=*,
                                   mask_key=*) except -1

@cython.locals(b0=int, head="unsigned char[14]", size=Py_ssize_t)
cpdef bytes encode_header(int opcode, object length, bint fin=*, int rsv=*)
