"""Reference frames built by hand from RFC 6455 section 5.2, for the tests: no checks, any rule breakable."""

from __future__ import annotations

import struct
from typing import Optional


def naive_mask(data: bytes, key: bytes, phase: int = 0) -> bytes:
    """The masking rule as written in RFC 6455 5.3, one byte at a time."""
    return bytes(b ^ key[(phase + i) % 4] for i, b in enumerate(data))


def raw_frame(
    opcode: int,
    payload: bytes = b"",
    fin: bool = True,
    rsv: int = 0,
    key: Optional[bytes] = None,
    length: Optional[int] = None,
    width: Optional[int] = None,
) -> bytes:
    """A frame as bytes. ``length`` may lie about the payload; ``width`` (0, 2 or 8
    bytes of extended length) may be longer than needed, never too short to hold it."""
    n = len(payload) if length is None else length
    if width is None or (width == 0 and n > 125) or (width == 2 and n > 65535):
        width = 0 if n < 126 else (2 if n < 65536 else 8)
    mbit = 0x80 if key is not None else 0
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    if width == 0:
        head += bytes([mbit | n])
    elif width == 2:
        head += bytes([mbit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([mbit | 127]) + struct.pack("!Q", n)
    if key is not None:
        return head + key + naive_mask(payload, key)
    return head + payload
