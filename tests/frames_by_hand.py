"""References for the tests, built by hand from the RFCs: frames (RFC 6455 5.2, no checks,
any rule breakable), masking (5.3), and UTF-8 validity (CPython's own decoder)."""

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
    form: Optional[int] = None,
    length: Optional[int] = None,
) -> bytes:
    """A frame as bytes. ``form`` (7, 16 or 64) forces the length field's size, widened
    if it cannot hold the length; ``length`` makes the header lie about the payload."""
    n = len(payload) if length is None else length
    form = form or (7 if n < 126 else 16 if n < 65536 else 64)
    if form == 7 and n > 125:
        form = 16
    if form == 16 and n > 65535:
        form = 64
    mbit = 0x80 if key is not None else 0
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    if form == 7:
        head += bytes([mbit | n])
    elif form == 16:
        head += bytes([mbit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([mbit | 127]) + struct.pack("!Q", n)
    if key is not None:
        return head + key + naive_mask(payload, key)
    return head + payload


def decodes_as_utf8(data: bytes) -> bool:
    """The reference verdict on UTF-8 validity."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
