# C-level entry points of the compiled kernels, cimported by frames_c.pxd so
# that the one framing source calls them without going through Python.
from libc.stdint cimport uint8_t, uint32_t

cdef bytes unmask_slice(const unsigned char[::1] src, Py_ssize_t start, Py_ssize_t stop, uint32_t key)
cdef void append_unmasked(bytearray dst, const unsigned char[::1] src, Py_ssize_t start,
                          Py_ssize_t stop, uint32_t key, Py_ssize_t phase) except *
cdef uint32_t parse_mask_key(object key) except? 0
cdef bytes new_payload(Py_ssize_t n)
cdef void write_unmasked(bytes dst, Py_ssize_t offset, const unsigned char[::1] src, Py_ssize_t start,
                         Py_ssize_t stop, uint32_t key, Py_ssize_t phase) except *


# The final buffer of new_payload() is the payload itself, compiled: nothing to copy.
cdef inline bytes payload_bytes(bytes payload):
    return payload


# Inline here, so that frames_c gets its own copy (no call into this module on the hot path).
cdef inline object byte_view(object data):
    """``data`` as flat bytes to index: any C-contiguous buffer (TypeError otherwise)."""
    if type(data) is bytes or type(data) is bytearray:
        return data
    return memoryview(data).cast("B")
cdef bytes join_frame(const unsigned char *head, Py_ssize_t size, object payload, uint32_t key)
cdef Py_ssize_t write_frame(object out, Py_ssize_t offset, const unsigned char *head, Py_ssize_t size,
                            object payload, uint32_t key) except -1

cdef class Utf8Validator:
    cdef uint8_t _state
    cdef uint8_t _pending
    cdef Py_ssize_t _offset
    cpdef void feed(self, object data, Py_ssize_t start=*, Py_ssize_t stop=*) except *
    cpdef void finish(self) except *
    cpdef void reset(self)
