# The C side of constants.py, for cimport by the compiled backend; the values
# must match constants.py (tests/test_backend.py checks that they do).
cdef enum:
    OP_CONTINUATION = 0x0
    OP_TEXT = 0x1
    OP_BINARY = 0x2
    OP_CLOSE = 0x8
    OP_PING = 0x9
    OP_PONG = 0xA
    CLOSE_PROTOCOL_ERROR = 1002
    CLOSE_INVALID_PAYLOAD = 1007
    CLOSE_TOO_BIG = 1009
    MAX_CONTROL_PAYLOAD = 125
    RSV1 = 0x4
