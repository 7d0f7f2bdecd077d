"""Opcodes, close codes and frame limits of RFC 6455: the one place they are written.

Plain module-level ints so that the compiled backend can use them as C
constants: ``constants.pxd`` declares the same names for Cython (a test checks
the two agree).
"""

# Opcodes (section 5.2).
OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

# Close codes (section 7.4.1).
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_UNSUPPORTED_DATA = 1003
CLOSE_NO_STATUS = 1005  # reported, never sent: the close frame carried no code
CLOSE_ABNORMAL = 1006  # reported, never sent: the transport ended without a close frame
CLOSE_INVALID_PAYLOAD = 1007
CLOSE_POLICY_VIOLATION = 1008
CLOSE_TOO_BIG = 1009
CLOSE_MANDATORY_EXTENSION = 1010
CLOSE_INTERNAL_ERROR = 1011
CLOSE_TLS_FAILURE = 1015  # reported, never sent

# Frame limits (section 5.5) and header bits.
MAX_CONTROL_PAYLOAD = 125
RSV1 = 0x4  # the RSV bits as the 3-bit field (RSV1 RSV2 RSV3); RSV1 is permessage-deflate's
