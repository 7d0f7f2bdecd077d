"""RFC 6455 framing on both backends: encoding, header parsing and the FrameReader rules."""

from __future__ import annotations

import os

import pytest

from wsframe.protocol.errors import ProtocolError
from frames_by_hand import naive_mask, raw_frame

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
RESERVED_OPCODES = [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF]
KEY = b"\x37\xfa\x21\x3d"  # the RFC's example masking key
RSV1 = 4


def frames_of(frames):
    return [(f.opcode, f.fin, f.rsv, f.payload) for f in frames]


def feed_all(reader, chunks):
    out = []
    for chunk in chunks:
        out += reader.feed(chunk)
    return out


def fails_with(reader, code: int, reason: str | None = None) -> ProtocolError:
    err = reader.error
    assert isinstance(err, ProtocolError), f"expected a ProtocolError {code}, got {err!r}"
    assert err.code == code, err
    if reason is not None:
        assert err.reason == reason
    return err


# ------------------------------------------------------------- RFC 6455 section 5.7

HELLO_UNMASKED = bytes([0x81, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F])
HELLO_MASKED = bytes([0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58])
HEL = bytes([0x01, 0x03, 0x48, 0x65, 0x6C])
LO = bytes([0x80, 0x02, 0x6C, 0x6F])
PING_HELLO = bytes([0x89, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F])
PONG_HELLO_MASKED = bytes([0x8A, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58])
BIN_256 = bytes(range(256))
BIN_256_FRAME = bytes([0x82, 0x7E, 0x01, 0x00]) + BIN_256
BIN_64K = bytes(i * 7 & 0xFF for i in range(65536))
BIN_64K_FRAME = bytes([0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0]) + BIN_64K


def test_rfc_examples_encode(backend) -> None:
    assert backend.encode_frame(OP_TEXT, b"Hello") == HELLO_UNMASKED
    assert backend.encode_frame(OP_TEXT, b"Hello", mask_key=KEY) == HELLO_MASKED
    assert backend.encode_frame(OP_TEXT, b"Hel", fin=False) == HEL
    assert backend.encode_frame(OP_CONT, b"lo") == LO
    assert backend.encode_frame(OP_PING, b"Hello") == PING_HELLO
    assert backend.encode_frame(OP_PONG, b"Hello", mask_key=KEY) == PONG_HELLO_MASKED
    assert backend.encode_frame(OP_BINARY, BIN_256) == BIN_256_FRAME
    assert backend.encode_frame(OP_BINARY, BIN_64K) == BIN_64K_FRAME


def test_rfc_examples_encode_into(backend) -> None:
    cases = [
        (HELLO_UNMASKED, (OP_TEXT, b"Hello"), {}),
        (HELLO_MASKED, (OP_TEXT, b"Hello"), {"mask_key": KEY}),
        (HEL, (OP_TEXT, b"Hel"), {"fin": False}),
        (LO, (OP_CONT, b"lo"), {}),
        (PING_HELLO, (OP_PING, b"Hello"), {}),
        (PONG_HELLO_MASKED, (OP_PONG, b"Hello"), {"mask_key": KEY}),
        (BIN_256_FRAME, (OP_BINARY, BIN_256), {}),
        (BIN_64K_FRAME, (OP_BINARY, BIN_64K), {}),
    ]
    for expected, args, kwargs in cases:
        buf = bytearray(b"\xee" * (len(expected) + 10))
        n = backend.encode_frame_into(buf, 3, *args, **kwargs)
        assert n == len(expected)
        assert buf[3 : 3 + n] == expected
        assert buf[:3] == b"\xee" * 3 and buf[3 + n :] == b"\xee" * 7


def test_rfc_examples_parse(backend) -> None:
    r = backend.FrameReader()
    stream = HELLO_UNMASKED + HELLO_MASKED + HEL + PING_HELLO + LO + PONG_HELLO_MASKED + BIN_256_FRAME + BIN_64K_FRAME
    assert frames_of(r.feed(stream)) == [
        (OP_TEXT, True, 0, b"Hello"),
        (OP_TEXT, True, 0, b"Hello"),
        (OP_TEXT, False, 0, b"Hel"),
        (OP_PING, True, 0, b"Hello"),
        (OP_CONT, True, 0, b"lo"),
        (OP_PONG, True, 0, b"Hello"),
        (OP_BINARY, True, 0, BIN_256),
        (OP_BINARY, True, 0, BIN_64K),
    ]
    assert r.error is None and r.pending == 0 and not r.in_message


def test_rfc_examples_headers(backend) -> None:
    h = backend.parse_header(HELLO_MASKED)
    assert (h.fin, h.rsv, h.opcode, h.masked, h.length, h.size) == (True, 0, OP_TEXT, True, 5, 6)
    assert h.key == 0x37FA213D and h.mask_key == KEY
    h = backend.parse_header(HELLO_UNMASKED)
    assert (h.fin, h.opcode, h.masked, h.length, h.size, h.key, h.mask_key) == (True, OP_TEXT, False, 5, 2, 0, None)
    h = backend.parse_header(HEL)
    assert (h.fin, h.opcode, h.length) == (False, OP_TEXT, 3)
    h = backend.parse_header(LO)
    assert (h.fin, h.opcode, h.length) == (True, OP_CONT, 2)
    h = backend.parse_header(PONG_HELLO_MASKED)
    assert (h.opcode, h.masked, h.length, h.size) == (OP_PONG, True, 5, 6)
    h = backend.parse_header(BIN_256_FRAME)
    assert (h.opcode, h.length, h.size) == (OP_BINARY, 256, 4)
    h = backend.parse_header(BIN_64K_FRAME)
    assert (h.opcode, h.length, h.size) == (OP_BINARY, 65536, 10)
    assert "Header(" in repr(h) and "length=65536" in repr(h)


# ------------------------------------------------------------- encoding at every length boundary

BOUNDARIES = [0, 1, 125, 126, 127, 65535, 65536]


@pytest.mark.parametrize("n", BOUNDARIES)
@pytest.mark.parametrize("masked", [False, True])
def test_encode_boundaries(backend, n: int, masked: bool) -> None:
    payload = os.urandom(n)
    key = os.urandom(4) if masked else None
    frame = backend.encode_frame(OP_BINARY, payload, mask_key=key)
    assert type(frame) is bytes
    assert frame == raw_frame(OP_BINARY, payload, key=key)
    assert len(frame) == backend.frame_size(n, masked)
    size = (2 if n < 126 else 4 if n < 65536 else 10) + (4 if masked else 0)
    h = backend.parse_header(frame)
    assert (h.length, h.size, h.masked, h.mask_key) == (n, size, masked, key)
    # encode_frame_into: exactly the same bytes, at an offset, nothing written around them
    buf = bytearray(b"\x55" * (len(frame) + 9))
    assert backend.encode_frame_into(buf, 4, OP_BINARY, payload, mask_key=key) == len(frame)
    assert bytes(buf[4 : 4 + len(frame)]) == frame
    assert buf[:4] == b"\x55" * 4 and buf[4 + len(frame) :] == b"\x55" * 5
    # exactly enough room is enough; one byte less is not
    exact = bytearray(len(frame))
    assert backend.encode_frame_into(exact, 0, OP_BINARY, payload, mask_key=key) == len(frame)
    assert exact == frame
    short = bytearray(len(frame) - 1)
    with pytest.raises(ValueError):
        backend.encode_frame_into(short, 0, OP_BINARY, payload, mask_key=key)
    assert short == bytearray(len(frame) - 1)
    # and the reader gets it back
    r = backend.FrameReader()
    assert frames_of(r.feed(frame)) == [(OP_BINARY, True, 0, payload)]


def test_frame_size(backend) -> None:
    assert backend.frame_size(0) == 2
    assert backend.frame_size(125) == 127
    assert backend.frame_size(126) == 130
    assert backend.frame_size(65535) == 65539
    assert backend.frame_size(65536) == 65546
    assert backend.frame_size(2**32 + 1) == 2**32 + 11
    assert backend.frame_size(2**32 + 1, True) == 2**32 + 15
    assert backend.frame_size(0, True) == 6
    assert backend.frame_size(126, masked=True) == 134


@pytest.mark.parametrize("n", [0, 125, 126, 127, 65535, 65536, 2**32 + 1, 2**63 - 1])
@pytest.mark.parametrize("masked", [False, True])
def test_header_only_parse_at_boundaries(backend, n: int, masked: bool) -> None:
    """Headers for any length parse without the payload being there (or allocated)."""
    key = KEY if masked else None
    head = raw_frame(OP_BINARY, key=key, length=n)  # header (and key) only: no payload
    size = (2 if n < 126 else 4 if n < 65536 else 10) + (4 if masked else 0)
    assert len(head) == size
    h = backend.parse_header(head)
    assert (h.length, h.size, h.masked) == (n, size, masked)
    assert backend.frame_size(n, masked) == size + n
    for k in range(size):
        assert backend.parse_header(head[:k]) is None
    # at an offset, and with trailing bytes
    h = backend.parse_header(b"xyz" + head + b"\x00" * 5, 3)
    assert (h.length, h.size) == (n, size)


def test_non_minimal_length_encodings_accepted(backend) -> None:
    """Receivers accept 16/64-bit lengths for short payloads (only senders must be minimal)."""
    r = backend.FrameReader()
    frames = r.feed(raw_frame(OP_BINARY, b"abc", form=16) + raw_frame(OP_BINARY, b"de", form=64))
    assert frames_of(frames) == [(OP_BINARY, True, 0, b"abc"), (OP_BINARY, True, 0, b"de")]


def test_encode_rejects_what_rfc_forbids(backend) -> None:
    for op in RESERVED_OPCODES + [16, -1]:
        with pytest.raises(ValueError):
            backend.encode_frame(op, b"")
    for op in (OP_CLOSE, OP_PING, OP_PONG):
        with pytest.raises(ValueError):
            backend.encode_frame(op, b"", fin=False)
        with pytest.raises(ValueError):
            backend.encode_frame(op, b"x" * 126)
        assert backend.encode_frame(op, b"x" * 125)[1] == 125
    for rsv in (-1, 8):
        with pytest.raises(ValueError):
            backend.encode_frame(OP_TEXT, b"", rsv=rsv)
    with pytest.raises(ValueError):
        backend.encode_frame(OP_TEXT, b"", mask_key=b"abc")
    with pytest.raises(ValueError):
        backend.encode_frame_into(bytearray(10), 0, OP_PING, b"", fin=False)
    with pytest.raises(ValueError):
        backend.encode_frame_into(bytearray(10), -1, OP_TEXT, b"")
    with pytest.raises(ValueError):
        backend.encode_frame_into(bytearray(10), 9, OP_TEXT, b"")


def test_encode_rsv_and_fin_bits(backend) -> None:
    for rsv in range(8):
        for fin in (False, True):
            frame = backend.encode_frame(OP_BINARY, b"", fin=fin, rsv=rsv)
            assert frame[0] == (0x80 if fin else 0) | (rsv << 4) | OP_BINARY


def test_encode_accepts_buffers(backend) -> None:
    data = b"0123456789"
    for payload in (data, bytearray(data), memoryview(data), memoryview(b"xx" + data)[2:]):
        assert backend.encode_frame(OP_BINARY, payload) == b"\x82\x0a" + data
        assert backend.encode_frame(OP_BINARY, payload, mask_key=bytearray(KEY)) == raw_frame(OP_BINARY, data, key=KEY)
    buf = bytearray(20)
    assert backend.encode_frame_into(memoryview(buf)[5:], 1, OP_BINARY, data) == 12
    assert buf[6:18] == b"\x82\x0a" + data


@pytest.mark.parametrize("bad", [None, "text", 5, [1, 2]])
def test_encode_rejects_non_buffers(backend, bad) -> None:
    """None is not an empty payload, a str is not bytes, an int is not a key."""
    with pytest.raises(TypeError):
        backend.encode_frame(OP_BINARY, bad)
    with pytest.raises(TypeError):
        backend.encode_frame_into(bytearray(20), 0, OP_BINARY, bad)
    with pytest.raises(TypeError):
        backend.encode_frame_into(bad, 0, OP_BINARY, b"")
    if bad is not None:  # mask_key=None means "unmasked"
        with pytest.raises(TypeError):
            backend.encode_frame(OP_BINARY, b"abc", mask_key=bad)


@pytest.mark.parametrize("n", [0, 1, 125, 126, 300, 65536])
@pytest.mark.parametrize("masked", [False, True])
def test_encode_into_in_place(backend, n: int, masked: bool) -> None:
    """Zero-copy framing: the payload already sits in the send buffer, right after room for the header."""
    payload = os.urandom(n)
    key = KEY if masked else None
    expected = raw_frame(OP_BINARY, payload, key=key)
    header = len(expected) - n
    buf = bytearray(14) + bytearray(payload) + bytearray(b"\xee" * 3)
    start = 14 - header
    size = backend.encode_frame_into(buf, start, OP_BINARY, memoryview(buf)[14 : 14 + n], mask_key=key)
    assert size == len(expected)
    assert bytes(buf[start : start + size]) == expected
    assert buf[:start] == bytearray(start) and buf[14 + n :] == b"\xee" * 3


def _overlapping_payloads(header: int):
    """(name, destination, offset, payload) where the payload shares memory with the frame's place, not in place."""
    import ctypes

    def make(kind: str):
        buf = bytearray(range(64))
        view = memoryview(buf)
        if kind == "starts-in-header":
            return buf, 8, view[9:19]
        if kind == "one-byte-early":
            return buf, 8, view[8 + header - 1 : 8 + header + 9]
        if kind == "one-byte-late":
            return buf, 8, view[8 + header + 1 : 8 + header + 11]
        if kind == "covers-the-frame":
            return buf, 8, view[4:40]
        if kind == "ends-in-header":
            return buf, 8, view[0:9]
        if kind == "read-only-view":
            return buf, 8, view.toreadonly()[11:21]
        if kind == "other-memoryview-object":
            return memoryview(buf)[4:], 4, memoryview(buf)[11:21]
        if kind == "ctypes-array":
            arr = (ctypes.c_char * 64)()
            return arr, 8, memoryview(arr).cast("B")[9:19]
        raise AssertionError(kind)

    return make


OVERLAPS = ["starts-in-header", "one-byte-early", "one-byte-late", "covers-the-frame", "ends-in-header",
            "read-only-view", "other-memoryview-object", "ctypes-array"]


@pytest.mark.parametrize("kind", OVERLAPS)
@pytest.mark.parametrize("masked", [False, True])
def test_encode_into_refuses_an_overlapping_payload(backend, kind: str, masked: bool) -> None:
    """Copying a payload over itself is undefined in C: refused, in both backends, before a byte is written."""
    key = KEY if masked else None
    header = 2 + (4 if masked else 0)
    out, offset, payload = _overlapping_payloads(header)(kind)
    before = bytes(memoryview(out).cast("B"))
    with pytest.raises(ValueError, match="overlaps"):
        backend.encode_frame_into(out, offset, OP_BINARY, payload, mask_key=key)
    assert bytes(memoryview(out).cast("B")) == before


@pytest.mark.parametrize("masked", [False, True])
def test_encode_into_from_elsewhere_in_the_same_buffer(backend, masked: bool) -> None:
    """A payload may share the destination's memory, as long as the frame does not cover it."""
    key = KEY if masked else None
    header = 6 if masked else 2
    for start, offset in ((40, 0), (40, 40 - header - 10), (0, 10), (30, 0), (50, 50 - header)):
        buf = bytearray(range(64))
        payload = bytes(buf[start : start + 10])
        expected = raw_frame(OP_BINARY, payload, key=key)
        n = backend.encode_frame_into(buf, offset, OP_BINARY, memoryview(buf)[start : start + 10], mask_key=key)
        assert bytes(buf[offset : offset + n]) == expected


@pytest.mark.parametrize("buf", [b"\x00" * 20, memoryview(bytearray(20)).toreadonly()])
def test_encode_into_read_only_buffer(backend, buf) -> None:
    with pytest.raises(TypeError):
        backend.encode_frame_into(buf, 0, OP_BINARY, b"abc")


def test_encode_rejects_non_contiguous(backend) -> None:
    with pytest.raises((TypeError, ValueError, BufferError)):
        backend.encode_frame(OP_BINARY, memoryview(b"abcdefgh")[::2])
    guard = bytearray(40)
    with pytest.raises((TypeError, ValueError, BufferError)):
        backend.encode_frame_into(memoryview(guard)[::-1], 0, OP_BINARY, b"abc")
    assert guard == bytearray(40)


def test_make_frame_and_frame_value(backend) -> None:
    f = backend.make_frame(OP_TEXT, bytearray(b"hi"), fin=False, rsv=RSV1)
    assert (f.opcode, f.fin, f.rsv, f.payload) == (OP_TEXT, False, RSV1, b"hi")
    assert type(f.payload) is bytes
    assert f == backend.make_frame(OP_TEXT, b"hi", False, RSV1)
    assert f != backend.make_frame(OP_TEXT, b"hi", True, RSV1)
    assert f != backend.make_frame(OP_BINARY, b"hi", False, RSV1)
    assert hash(f) == hash(backend.make_frame(OP_TEXT, b"hi", False, RSV1))
    assert "Frame(" in repr(f)
    r = backend.FrameReader()
    assert r.feed(backend.encode_frame(OP_TEXT, b"hi", fin=False)) == [backend.make_frame(OP_TEXT, b"hi", fin=False)]


FRAME_FIELDS = {"opcode": 2, "fin": False, "rsv": 1, "payload": b"new"}
HEADER_FIELDS = {"fin": False, "rsv": 1, "opcode": 2, "masked": False, "length": 1, "key": 1, "size": 3}


@pytest.mark.parametrize("name", sorted(FRAME_FIELDS))
def test_frames_are_read_only(backend, name: str) -> None:
    """Frames are values, in both backends: a frame kept by one part of a program cannot change under another."""
    f = backend.make_frame(OP_TEXT, b"hi")
    with pytest.raises(AttributeError):
        setattr(f, name, FRAME_FIELDS[name])
    with pytest.raises(AttributeError):
        delattr(f, name)
    assert (f.opcode, f.fin, f.rsv, f.payload) == (OP_TEXT, True, 0, b"hi")
    with pytest.raises(AttributeError):
        f.extra = 1  # no instance dict either


@pytest.mark.parametrize("name", sorted(HEADER_FIELDS))
def test_headers_are_read_only(backend, name: str) -> None:
    h = backend.parse_header(HELLO_MASKED)
    with pytest.raises(AttributeError):
        setattr(h, name, HEADER_FIELDS[name])
    assert (h.fin, h.rsv, h.opcode, h.masked, h.length, h.key, h.size) == (True, 0, OP_TEXT, True, 5, 0x37FA213D, 6)
    with pytest.raises(AttributeError):
        h.extra = 1


def test_make_frame_normalises_its_fields(backend) -> None:
    f = backend.make_frame(OP_BINARY, memoryview(b"ab"), fin=1, rsv=0)
    assert f.fin is True and type(f.payload) is bytes and repr(f) == repr(backend.make_frame(OP_BINARY, b"ab"))


@pytest.mark.parametrize("option", ["max_frame_size", "max_message_size", "max_fragments", "allowed_rsv"])
@pytest.mark.parametrize("value", [None, "10", 1.5])
def test_reader_limits_are_ints_checked_at_construction(backend, option: str, value) -> None:
    """-1 is "no limit"; None and other non-ints are a TypeError at once, not at the first feed."""
    with pytest.raises(TypeError, match=option):
        backend.FrameReader(**{option: value})


def test_protocol_errors_hash_like_they_compare() -> None:
    a, b = ProtocolError(1002, "bad"), ProtocolError(1002, "bad")
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert ProtocolError(1002, "bad") != ProtocolError(1007, "bad")
    assert ProtocolError(1002, "bad") != ProtocolError(1002, "worse")


# ------------------------------------------------------------- parse_header rules


@pytest.mark.parametrize("opcode", RESERVED_OPCODES)
def test_parse_header_reserved_opcodes(backend, opcode: int) -> None:
    with pytest.raises(ProtocolError) as info:
        backend.parse_header(raw_frame(opcode, b"abc"))
    assert info.value.code == 1002
    assert info.value.reason == f"reserved opcode {opcode:#x}"
    r = backend.FrameReader()
    assert r.feed(HELLO_UNMASKED + raw_frame(opcode, b"abc")) == [backend.make_frame(OP_TEXT, b"Hello")]
    fails_with(r, 1002, f"reserved opcode {opcode:#x}")


@pytest.mark.parametrize("opcode", [OP_CLOSE, OP_PING, OP_PONG])
def test_parse_header_control_frame_rules(backend, opcode: int) -> None:
    with pytest.raises(ProtocolError) as info:
        backend.parse_header(raw_frame(opcode, b"x", fin=False))
    assert (info.value.code, info.value.reason) == (1002, "fragmented control frame")
    for n in (126, 127, 1000, 70000):
        with pytest.raises(ProtocolError) as info:
            backend.parse_header(raw_frame(opcode, length=n))  # header only
        assert (info.value.code, info.value.reason) == (1002, "control frame payload over 125 bytes")
    assert backend.parse_header(raw_frame(opcode, length=125)).length == 125
    # a 16-bit length field on a control frame is either over 125 or not minimal: refused
    with pytest.raises(ProtocolError) as info:
        backend.parse_header(raw_frame(opcode, length=125, form=16))
    assert info.value.code == 1002


def test_parse_header_64bit_top_bit(backend) -> None:
    for n in (2**63, 2**64 - 1, 2**63 + 5):
        head = b"\x82\x7f" + n.to_bytes(8, "big")
        with pytest.raises(ProtocolError) as info:
            backend.parse_header(head)
        assert (info.value.code, info.value.reason) == (1002, "64-bit payload length with the top bit set")
        # masked too, and without the key having arrived the header is not complete yet
        assert backend.parse_header(b"\x82\xff" + n.to_bytes(8, "big")) is None
        with pytest.raises(ProtocolError):
            backend.parse_header(b"\x82\xff" + n.to_bytes(8, "big") + KEY)
    assert backend.parse_header(b"\x82\x7f" + (2**63 - 1).to_bytes(8, "big")).length == 2**63 - 1


@pytest.mark.parametrize("n,limit", [(126, 125), (65536, 65535), (2**32 + 1, 2**32), (1, 0), (2**62, 10)])
def test_parse_header_max_size(backend, n: int, limit: int) -> None:
    head = raw_frame(OP_BINARY, length=n)  # only the header: no payload anywhere
    with pytest.raises(ProtocolError) as info:
        backend.parse_header(head, 0, limit)
    assert info.value.code == 1009
    assert info.value.reason == f"frame of {n} bytes over the {limit}-byte limit"
    assert backend.parse_header(head, 0, n).length == n  # at the limit is fine
    assert backend.parse_header(head, 0, -1).length == n
    assert backend.parse_header(head, max_size=n + 1).length == n


def test_parse_header_every_short_prefix_is_none(backend) -> None:
    frames = [HELLO_UNMASKED, HELLO_MASKED, BIN_256_FRAME, BIN_64K_FRAME, raw_frame(OP_BINARY, key=KEY, length=70000),
              raw_frame(OP_PING, key=KEY, length=100)]
    for frame in frames:
        size = backend.parse_header(frame).size
        for k in range(size):
            assert backend.parse_header(frame[:k]) is None, (frame[:k])
            assert backend.parse_header(b"\xff\xff" + frame[:k], 2) is None
        assert backend.parse_header(frame[:size]) is not None


def test_parse_header_prefix_of_a_bad_header_is_none(backend) -> None:
    """A header is judged once it is complete: a prefix cannot be decided yet."""
    bad = raw_frame(0x3, length=70000, key=KEY)
    for k in range(2):
        assert backend.parse_header(bad[:k]) is None
    # once the first two bytes are in, the opcode is still only judged with the full header
    for k in range(2, 14):
        assert backend.parse_header(bad[:k]) is None
    with pytest.raises(ProtocolError):
        backend.parse_header(bad[:14])


def test_parse_header_offsets(backend) -> None:
    data = b"junk" + HELLO_MASKED
    assert backend.parse_header(data, 4).length == 5
    assert backend.parse_header(data, len(data)) is None
    for bad in (-1, len(data) + 1):
        with pytest.raises(ValueError):
            backend.parse_header(data, bad)
    for buf in (bytearray(data), memoryview(data), memoryview(b"!!" + data)[2:]):
        assert backend.parse_header(buf, 4).key == 0x37FA213D


def test_parse_header_rejects_non_buffers(backend) -> None:
    for bad in (None, "\x81\x00", 3):
        with pytest.raises(TypeError):
            backend.parse_header(bad)


def test_parse_header_all_rsv_values(backend) -> None:
    for rsv in range(8):
        assert backend.parse_header(raw_frame(OP_TEXT, b"", rsv=rsv)).rsv == rsv


# ------------------------------------------------------------- FrameReader: chunking

STREAM_FRAMES = [
    (OP_TEXT, b"Hello", True, 0, KEY),
    (OP_BINARY, bytes(range(200)), True, 0, b"\x01\x02\x03\x04"),
    (OP_TEXT, "h\u00e9llo \u20ac \U0001f600".encode(), False, 0, b"\xa1\xb2\xc3\xd4"),
    (OP_PING, b"", True, 0, b"\x00\x00\x00\x00"),
    (OP_CONT, "\U0001f600 end".encode(), True, 0, b"\x0f\x0e\x0d\x0c"),
    (OP_BINARY, b"", True, 0, b"\x99\x98\x97\x96"),
    (OP_CLOSE, b"\x03\xe8bye", True, 0, b"\x10\x20\x30\x40"),
]


def stream(masked: bool) -> tuple[bytes, list]:
    data = b"".join(raw_frame(op, p, fin, rsv, key if masked else None) for op, p, fin, rsv, key in STREAM_FRAMES)
    expected = [(op, fin, rsv, p) for op, p, fin, rsv, key in STREAM_FRAMES]
    return data, expected


@pytest.mark.parametrize("masked", [False, True])
def test_many_frames_in_one_feed(backend, masked: bool) -> None:
    data, expected = stream(masked)
    r = backend.FrameReader(require_mask=masked)
    frames = r.feed(data)
    assert frames_of(frames) == expected
    assert all(type(f.payload) is bytes for f in frames)
    assert r.error is None and r.pending == 0


@pytest.mark.parametrize("masked", [False, True])
def test_split_at_every_byte(backend, masked: bool) -> None:
    data, expected = stream(masked)
    for cut in range(len(data) + 1):
        r = backend.FrameReader(require_mask=masked)
        assert frames_of(feed_all(r, [data[:cut], data[cut:]])) == expected, cut
        assert r.error is None and r.pending == 0


@pytest.mark.parametrize("masked", [False, True])
def test_split_in_three_everywhere(backend, masked: bool) -> None:
    data, expected = stream(masked)
    data = data[:60]  # the first two frames and a bit
    whole = frames_of(backend.FrameReader().feed(data))
    for a in range(len(data) + 1):
        for b in range(a, len(data) + 1):
            r = backend.FrameReader()
            assert frames_of(feed_all(r, [data[:a], data[a:b], data[b:]])) == whole


@pytest.mark.parametrize("masked", [False, True])
def test_one_byte_feeds(backend, masked: bool) -> None:
    data, expected = stream(masked)
    r = backend.FrameReader(require_mask=masked)
    got = []
    for i in range(len(data)):
        got += r.feed(data[i : i + 1])
    assert frames_of(got) == expected
    assert r.pending == 0


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_feed_accepts_buffers(backend, kind) -> None:
    data, expected = stream(True)
    r = backend.FrameReader()
    got = []
    for i in range(0, len(data), 7):
        got += r.feed(kind(data[i : i + 7]))
    assert frames_of(got) == expected
    # memoryview slices of one big buffer, reused between feeds
    buf = bytearray(len(data) + 8)
    buf[8:] = data
    r = backend.FrameReader()
    got = []
    for i in range(8, len(buf), 13):
        got += r.feed(memoryview(buf)[i : i + 13])
    assert frames_of(got) == expected


def test_feed_rejects_non_buffers(backend) -> None:
    r = backend.FrameReader()
    for bad in (None, "text", 12):
        with pytest.raises(TypeError):
            r.feed(bad)
    assert r.error is None
    assert r.feed(b"") == []
    assert r.feed(HELLO_UNMASKED) == [backend.make_frame(OP_TEXT, b"Hello")]


def test_feed_does_not_keep_the_callers_buffer(backend) -> None:
    """Frames own their payload, and the caller's bytearray can be reused or resized at once."""
    buf = bytearray(HELLO_MASKED + HELLO_MASKED[:8])
    r = backend.FrameReader()
    frames = r.feed(buf)
    buf[:] = b"\x00" * len(buf)
    buf += b"more"
    del buf[:3]
    assert frames_of(frames) == [(OP_TEXT, True, 0, b"Hello")]
    assert frames_of(r.feed(HELLO_MASKED[8:])) == [(OP_TEXT, True, 0, b"Hello")]


@pytest.mark.parametrize("n", [0, 5, 126, 65536])
def test_partial_header_across_feeds(backend, n: int) -> None:
    payload = os.urandom(n)
    frame = raw_frame(OP_BINARY, payload, key=KEY)
    size = frame.index(KEY) + 4
    for a in range(1, size):
        for b in range(a, size + 1):
            r = backend.FrameReader()
            assert r.feed(frame[:a]) == []
            assert r.pending == a
            got = r.feed(frame[a:b])
            got += r.feed(frame[b:])
            assert frames_of(got) == [(OP_BINARY, True, 0, payload)]
            assert r.pending == 0


def test_partial_header_then_many_frames(backend) -> None:
    """The feed that completes a held header can also carry whole frames after it."""
    second = raw_frame(OP_TEXT, b"ab") + raw_frame(OP_PING, b"p") + raw_frame(OP_BINARY, b"c" * 300)
    frame = raw_frame(OP_BINARY, b"xyz", key=KEY)
    r = backend.FrameReader()
    assert r.feed(frame[:3]) == []
    assert frames_of(r.feed(frame[3:] + second + frame[:1])) == [
        (OP_BINARY, True, 0, b"xyz"), (OP_TEXT, True, 0, b"ab"), (OP_PING, True, 0, b"p"),
        (OP_BINARY, True, 0, b"c" * 300)]
    assert r.pending == 1
    assert frames_of(r.feed(frame[1:])) == [(OP_BINARY, True, 0, b"xyz")]


def test_pending_counts_held_bytes(backend) -> None:
    payload = bytes(range(100))
    frame = raw_frame(OP_BINARY, payload, key=KEY)  # 6-byte header
    r = backend.FrameReader()
    assert r.pending == 0
    r.feed(frame[:1])
    assert r.pending == 1
    r.feed(frame[1:4])
    assert r.pending == 4
    r.feed(frame[4:6])  # the header is complete and consumed: nothing held
    assert r.pending == 0
    r.feed(frame[6:36])
    assert r.pending == 30
    r.feed(frame[36:105])
    assert r.pending == 99
    assert frames_of(r.feed(frame[105:] + frame[:3])) == [(OP_BINARY, True, 0, payload)]
    assert r.pending == 3


def test_memory_is_bounded_by_what_was_fed(backend) -> None:
    """A header declaring 2**62 bytes allocates nothing: only what arrived is held."""
    r = backend.FrameReader()
    head = raw_frame(OP_BINARY, length=2**62)
    assert r.feed(head + b"abcde") == []
    assert r.error is None
    assert r.pending == 5
    assert r.feed(b"f" * 1000) == []
    assert r.pending == 1005
    r = backend.FrameReader(require_mask=True)
    assert r.feed(raw_frame(OP_TEXT, key=KEY, length=2**63 - 1) + naive_mask(b"ab", KEY)) == []
    assert r.error is None
    assert r.pending == 2


# ------------------------------------------------------------- FrameReader: mask direction


def test_require_mask_true_server_side(backend) -> None:
    r = backend.FrameReader(require_mask=True)
    assert frames_of(r.feed(HELLO_MASKED)) == [(OP_TEXT, True, 0, b"Hello")]
    assert frames_of(r.feed(HELLO_UNMASKED)) == []
    fails_with(r, 1002, "unmasked frame from a client")


def test_require_mask_false_client_side(backend) -> None:
    r = backend.FrameReader(require_mask=False)
    assert frames_of(r.feed(HELLO_UNMASKED)) == [(OP_TEXT, True, 0, b"Hello")]
    assert frames_of(r.feed(HELLO_MASKED)) == []
    fails_with(r, 1002, "masked frame from a server")


def test_require_mask_none_accepts_both(backend) -> None:
    r = backend.FrameReader(require_mask=None)
    assert len(r.feed(HELLO_UNMASKED + HELLO_MASKED + PING_HELLO + PONG_HELLO_MASKED)) == 4
    assert r.error is None


def test_mask_rule_applies_to_control_frames(backend) -> None:
    r = backend.FrameReader(require_mask=True)
    r.feed(PING_HELLO)
    fails_with(r, 1002)
    r = backend.FrameReader(require_mask=False)
    r.feed(PONG_HELLO_MASKED)
    fails_with(r, 1002)


def test_mask_rule_decided_at_the_header(backend) -> None:
    r = backend.FrameReader(require_mask=True)
    assert r.feed(raw_frame(OP_BINARY, length=1000)) == []  # header only, no payload
    fails_with(r, 1002)


# ------------------------------------------------------------- FrameReader: RSV bits


@pytest.mark.parametrize("rsv", range(1, 8))
def test_rsv_without_extension(backend, rsv: int) -> None:
    r = backend.FrameReader()
    r.feed(raw_frame(OP_TEXT, b"x", rsv=rsv))
    fails_with(r, 1002, f"reserved bits {rsv:#05b} set without an extension")


def test_rsv_allowed_by_extension(backend) -> None:
    r = backend.FrameReader(allowed_rsv=RSV1)
    assert frames_of(r.feed(raw_frame(OP_BINARY, b"z", rsv=RSV1))) == [(OP_BINARY, True, RSV1, b"z")]
    # RSV2 is still not allowed
    r.feed(raw_frame(OP_BINARY, b"z", rsv=2))
    fails_with(r, 1002)
    r = backend.FrameReader(allowed_rsv=7)
    assert frames_of(r.feed(raw_frame(OP_BINARY, b"z", rsv=3))) == [(OP_BINARY, True, 3, b"z")]


def test_rsv1_first_data_frame_only(backend) -> None:
    r = backend.FrameReader(allowed_rsv=RSV1)
    got = r.feed(raw_frame(OP_TEXT, b"ab", fin=False, rsv=RSV1) + raw_frame(OP_CONT, b"cd", fin=False))
    assert frames_of(got) == [(OP_TEXT, False, RSV1, b"ab"), (OP_CONT, False, 0, b"cd")]
    r.feed(raw_frame(OP_CONT, b"ef", rsv=RSV1))
    fails_with(r, 1002, "RSV1 set on a continuation frame")


@pytest.mark.parametrize("opcode", [OP_CLOSE, OP_PING, OP_PONG])
def test_rsv1_never_on_control_frames(backend, opcode: int) -> None:
    r = backend.FrameReader(allowed_rsv=RSV1)
    r.feed(raw_frame(opcode, b"", rsv=RSV1))
    fails_with(r, 1002, "RSV1 set on a control frame")


def test_compressed_text_not_validated(backend) -> None:
    """With RSV1 (permessage-deflate) the payload is compressed: UTF-8 is checked after inflating."""
    r = backend.FrameReader(allowed_rsv=RSV1)
    got = r.feed(raw_frame(OP_TEXT, b"\xff\x00", fin=False, rsv=RSV1) + raw_frame(OP_CONT, b"\xc0"))
    assert frames_of(got) == [(OP_TEXT, False, RSV1, b"\xff\x00"), (OP_CONT, True, 0, b"\xc0")]
    assert r.error is None
    # the next, uncompressed, text message is validated again
    r.feed(raw_frame(OP_TEXT, b"\xff"))
    fails_with(r, 1007)


# ------------------------------------------------------------- FrameReader: fragmentation


def test_continuation_without_message(backend) -> None:
    r = backend.FrameReader()
    r.feed(LO)
    fails_with(r, 1002, "continuation frame without a message to continue")
    r = backend.FrameReader()
    r.feed(HELLO_UNMASKED + LO)
    fails_with(r, 1002)


def test_new_data_frame_inside_fragmented_message(backend) -> None:
    for opcode in (OP_TEXT, OP_BINARY):
        r = backend.FrameReader()
        got = r.feed(HEL + raw_frame(opcode, b"x"))
        assert frames_of(got) == [(OP_TEXT, False, 0, b"Hel")]
        fails_with(r, 1002, "new data frame while a fragmented message is open")


def test_control_frames_interleaved(backend) -> None:
    data = (raw_frame(OP_BINARY, b"a", fin=False) + PING_HELLO + raw_frame(OP_CONT, b"b", fin=False)
            + raw_frame(OP_PONG, b"") + raw_frame(OP_PING, b"2") + raw_frame(OP_CONT, b"c"))
    expected = [(OP_BINARY, False, 0, b"a"), (OP_PING, True, 0, b"Hello"), (OP_CONT, False, 0, b"b"),
                (OP_PONG, True, 0, b""), (OP_PING, True, 0, b"2"), (OP_CONT, True, 0, b"c")]
    for cut in range(len(data) + 1):
        r = backend.FrameReader()
        assert frames_of(feed_all(r, [data[:cut], data[cut:]])) == expected
        assert r.error is None


def test_in_message(backend) -> None:
    r = backend.FrameReader()
    assert not r.in_message
    r.feed(HEL)
    assert r.in_message
    r.feed(PING_HELLO)
    assert r.in_message
    r.feed(LO)
    assert not r.in_message
    r.feed(HELLO_UNMASKED)
    assert not r.in_message


def test_fragmented_messages_back_to_back(backend) -> None:
    one = raw_frame(OP_TEXT, b"a", fin=False) + raw_frame(OP_CONT, b"b", fin=False) + raw_frame(OP_CONT, b"c")
    two = raw_frame(OP_BINARY, b"\xff", fin=False) + raw_frame(OP_CONT, b"")
    r = backend.FrameReader()
    assert len(r.feed(one + two + one)) == 8
    assert r.error is None and not r.in_message


def test_close_frame_does_not_end_a_message(backend) -> None:
    r = backend.FrameReader()
    r.feed(HEL + raw_frame(OP_CLOSE, b"\x03\xe8"))
    assert r.in_message
    assert frames_of(r.feed(LO)) == [(OP_CONT, True, 0, b"lo")]


# ------------------------------------------------------------- FrameReader: size limits


def test_max_frame_size_at_the_header(backend) -> None:
    r = backend.FrameReader(max_frame_size=100)
    assert frames_of(r.feed(raw_frame(OP_BINARY, b"x" * 100))) == [(OP_BINARY, True, 0, b"x" * 100)]
    assert r.feed(HELLO_UNMASKED + raw_frame(OP_BINARY, length=101)) == [backend.make_frame(OP_TEXT, b"Hello")]
    fails_with(r, 1009, "frame of 101 bytes over the 100-byte limit")
    assert r.pending == 0
    # a header split across feeds is judged as soon as it is complete
    r = backend.FrameReader(max_frame_size=100)
    head = raw_frame(OP_BINARY, length=2**40, key=KEY)
    assert r.feed(head[:5]) == []
    assert r.error is None
    r.feed(head[5:])
    fails_with(r, 1009)


def test_max_frame_size_applies_to_control_frames(backend) -> None:
    r = backend.FrameReader(max_frame_size=4)
    r.feed(PING_HELLO)
    fails_with(r, 1009)


def test_max_frame_size_zero(backend) -> None:
    r = backend.FrameReader(max_frame_size=0)
    assert len(r.feed(raw_frame(OP_BINARY, b"") + raw_frame(OP_PING, b""))) == 2
    r.feed(raw_frame(OP_BINARY, length=1))
    fails_with(r, 1009)


def test_max_message_size_at_the_header(backend) -> None:
    r = backend.FrameReader(max_message_size=10)
    got = r.feed(raw_frame(OP_TEXT, b"abcd", fin=False) + raw_frame(OP_CONT, b"efgh", fin=False)
                 + raw_frame(OP_CONT, length=3, fin=True))  # header only: 11 bytes in all
    assert frames_of(got) == [(OP_TEXT, False, 0, b"abcd"), (OP_CONT, False, 0, b"efgh")]
    fails_with(r, 1009, "message of more than 10 bytes over the limit")
    # exactly at the limit is fine, and the count starts again with each message
    r = backend.FrameReader(max_message_size=10)
    msg = raw_frame(OP_BINARY, b"abcde", fin=False) + raw_frame(OP_CONT, b"fghij")
    assert len(r.feed(msg + msg + raw_frame(OP_BINARY, b"x" * 10))) == 5
    assert r.error is None
    r.feed(raw_frame(OP_BINARY, length=11))
    fails_with(r, 1009)


def test_max_message_size_ignores_control_frames(backend) -> None:
    r = backend.FrameReader(max_message_size=4)
    got = r.feed(raw_frame(OP_BINARY, b"ab", fin=False) + raw_frame(OP_PING, b"x" * 125)
                 + raw_frame(OP_CONT, b"cd"))
    assert len(got) == 3 and r.error is None


def test_max_message_size_huge_declared_length(backend) -> None:
    r = backend.FrameReader(max_message_size=2**40)
    r.feed(raw_frame(OP_BINARY, length=2**40, fin=False))
    assert r.error is None
    r.feed(b"x" * 10)
    assert r.error is None and r.pending == 10


def test_max_fragments_counts_every_data_frame(backend) -> None:
    """Empty fragments count too: a message of many empty frames costs per frame, not per byte."""
    r = backend.FrameReader(max_fragments=3)
    first = raw_frame(OP_BINARY, b"a", fin=False)
    empty = raw_frame(OP_CONT, b"", fin=False)
    got = r.feed(first + empty + raw_frame(OP_PING, b"") + empty + raw_frame(OP_CONT, b"", fin=True))
    assert frames_of(got) == [(OP_BINARY, False, 0, b"a"), (OP_CONT, False, 0, b""), (OP_PING, True, 0, b""),
                              (OP_CONT, False, 0, b"")]
    fails_with(r, 1009, "message of more than 3 frames over the limit")


def test_max_fragments_exact_and_per_message(backend) -> None:
    r = backend.FrameReader(max_fragments=3)
    msg = raw_frame(OP_TEXT, b"a", fin=False) + raw_frame(OP_CONT, b"", fin=False) + raw_frame(OP_CONT, b"b")
    assert len(r.feed(msg + msg + raw_frame(OP_BINARY, b"x"))) == 7
    assert r.error is None and not r.in_message


def test_max_fragments_decided_at_the_header(backend) -> None:
    r = backend.FrameReader(max_fragments=1)
    r.feed(raw_frame(OP_BINARY, b"a", fin=False) + raw_frame(OP_CONT, length=1000)[:4])
    fails_with(r, 1009)
    assert r.pending == 0


def test_max_fragments_unlimited_by_default(backend) -> None:
    r = backend.FrameReader()
    n = 200_000
    r.feed(raw_frame(OP_BINARY, b"", fin=False) + raw_frame(OP_CONT, b"", fin=False) * n + raw_frame(OP_CONT))
    assert r.error is None and not r.in_message


# ------------------------------------------------------------- FrameReader: UTF-8


def test_invalid_utf8_single_frame(backend) -> None:
    r = backend.FrameReader()
    assert r.feed(HELLO_UNMASKED + raw_frame(OP_TEXT, b"ab\xffcd") + HELLO_UNMASKED) == [
        backend.make_frame(OP_TEXT, b"Hello")]
    fails_with(r, 1007, "invalid UTF-8 at byte 2")


def test_invalid_utf8_masked(backend) -> None:
    r = backend.FrameReader(require_mask=True)
    r.feed(raw_frame(OP_TEXT, b"ok \xed\xa0\x80", key=KEY))
    fails_with(r, 1007, "invalid UTF-8 at byte 3")


def test_invalid_utf8_in_a_fragment(backend) -> None:
    r = backend.FrameReader()
    got = r.feed(raw_frame(OP_TEXT, b"abc", fin=False) + raw_frame(OP_CONT, b"de", fin=False)
                 + raw_frame(OP_CONT, b"f\xc0\x80"))
    assert frames_of(got) == [(OP_TEXT, False, 0, b"abc"), (OP_CONT, False, 0, b"de")]
    fails_with(r, 1007, "invalid UTF-8 at byte 6")  # offsets count across the message


def test_binary_is_not_validated(backend) -> None:
    r = backend.FrameReader()
    assert len(r.feed(raw_frame(OP_BINARY, b"\xff\xfe", fin=False) + raw_frame(OP_CONT, b"\xc0"))) == 2
    assert r.error is None


def test_control_frames_are_not_validated(backend) -> None:
    """Only text messages are checked here; a ping payload is arbitrary bytes."""
    r = backend.FrameReader()
    assert len(r.feed(HEL + raw_frame(OP_PING, b"\xff") + LO)) == 3
    assert r.error is None


def test_validate_utf8_option_off(backend) -> None:
    r = backend.FrameReader(validate_utf8=False)
    assert frames_of(r.feed(raw_frame(OP_TEXT, b"\xff\xe2"))) == [(OP_TEXT, True, 0, b"\xff\xe2")]
    assert r.error is None


@pytest.mark.parametrize("masked", [False, True])
def test_invalid_utf8_fails_before_the_frame_completes(backend, masked: bool) -> None:
    """Fail fast: the feed that brings the bad byte fails, not the one that ends the frame."""
    good = ("\u00e9t\u00e9 " * 20).encode()
    payload = good + b"\xff" + b"rest of the frame" * 10
    key = KEY if masked else None
    frame = raw_frame(OP_TEXT, payload, key=key)
    head = len(frame) - len(payload)
    bad_at = head + len(good)
    for cut in range(1, bad_at + 1):  # from inside the header to just before the bad byte
        r = backend.FrameReader()
        assert r.feed(frame[:cut]) == []
        assert r.error is None, cut  # everything so far could still be valid
        assert r.feed(frame[cut : bad_at + 1]) == []
        fails_with(r, 1007, f"invalid UTF-8 at byte {len(good)}")
        assert r.feed(frame[bad_at + 1 :]) == []


def test_invalid_utf8_partial_frame_after_other_frames(backend) -> None:
    r = backend.FrameReader()
    frame = raw_frame(OP_TEXT, b"abc\x80" + b"x" * 50)
    assert frames_of(r.feed(PING_HELLO + frame[:8])) == [(OP_PING, True, 0, b"Hello")]
    fails_with(r, 1007, "invalid UTF-8 at byte 3")


def test_invalid_utf8_in_second_fragment_partly_arrived(backend) -> None:
    r = backend.FrameReader()
    first = raw_frame(OP_TEXT, b"abc\xe2\x82", fin=False)  # ends inside a code point: fine so far
    second = raw_frame(OP_CONT, b"\xacdef" + b"\xe2\x28" + b"z" * 40)
    assert frames_of(r.feed(first + second[:7])) == [(OP_TEXT, False, 0, b"abc\xe2\x82")]
    assert r.error is None
    assert r.feed(second[7:9]) == []
    fails_with(r, 1007, "invalid UTF-8 at byte 9")  # a b c e2 82 | ac d e f [e2 28]


def test_code_point_split_across_fragments(backend) -> None:
    text = "a\u00e9b\u20acc\U0001f600d".encode()
    for cut in range(len(text) + 1):
        for cut2 in (cut, min(cut + 1, len(text))):
            data = (raw_frame(OP_TEXT, text[:cut], fin=False) + raw_frame(OP_PING, b"\xff")
                    + raw_frame(OP_CONT, text[cut:cut2], fin=False) + raw_frame(OP_CONT, text[cut2:]))
            r = backend.FrameReader()
            got = r.feed(data)
            assert r.error is None, (cut, cut2)
            assert b"".join(f.payload for f in got if f.opcode != OP_PING) == text


def test_text_message_ending_inside_a_code_point(backend) -> None:
    r = backend.FrameReader()
    got = r.feed(raw_frame(OP_TEXT, b"ab\xf0\x9f", fin=False) + raw_frame(OP_CONT, b"\x98"))
    assert frames_of(got) == [(OP_TEXT, False, 0, b"ab\xf0\x9f")]
    fails_with(r, 1007, "incomplete UTF-8 sequence at byte 2")
    r = backend.FrameReader()
    r.feed(raw_frame(OP_TEXT, b"\xe2"))
    fails_with(r, 1007, "incomplete UTF-8 sequence at byte 0")


def test_utf8_state_resets_between_messages(backend) -> None:
    r = backend.FrameReader()
    # a binary message in between does not disturb the text state
    got = r.feed(raw_frame(OP_TEXT, "\u00e9".encode()) + raw_frame(OP_BINARY, b"\xe2")
                 + raw_frame(OP_TEXT, b"\x82"))
    assert len(got) == 2
    fails_with(r, 1007, "invalid UTF-8 at byte 0")


# ------------------------------------------------------------- FrameReader: after an error


def test_frames_before_the_error_are_returned(backend) -> None:
    r = backend.FrameReader()
    data = HELLO_UNMASKED + PING_HELLO + HEL + raw_frame(0x3, b"") + LO
    assert frames_of(r.feed(data)) == [(OP_TEXT, True, 0, b"Hello"), (OP_PING, True, 0, b"Hello"),
                                       (OP_TEXT, False, 0, b"Hel")]
    err = fails_with(r, 1002, "reserved opcode 0x3")
    assert r.pending == 0
    # the reader is stopped: nothing more comes out, and the error stays the same
    assert r.feed(LO) == []
    assert r.feed(HELLO_UNMASKED) == []
    assert r.feed(b"") == []
    assert r.error is err


def test_error_is_a_protocol_error_with_code(backend) -> None:
    r = backend.FrameReader()
    r.feed(raw_frame(OP_PING, b"", fin=False))
    err = r.error
    assert isinstance(err, ProtocolError)
    assert (err.code, err.reason) == (1002, "fragmented control frame")
    assert str(err) == "fragmented control frame (close code 1002)"


def test_error_in_a_later_feed(backend) -> None:
    r = backend.FrameReader()
    assert frames_of(r.feed(HEL)) == [(OP_TEXT, False, 0, b"Hel")]
    assert r.feed(HELLO_UNMASKED[:1]) == []
    assert r.error is None
    assert r.feed(HELLO_UNMASKED[1:]) == []
    fails_with(r, 1002, "new data frame while a fragmented message is open")


def test_the_callers_buffer_is_free_after_an_error(backend) -> None:
    """The stored error must not pin the fed bytearray (it can still be resized)."""
    r = backend.FrameReader()
    buf = bytearray(HELLO_UNMASKED + raw_frame(0xB, b""))
    r.feed(buf)
    assert r.error is not None
    buf += b"x"
    del buf[:4]
    r = backend.FrameReader()
    buf = bytearray(raw_frame(OP_TEXT, b"\xff" + b"x" * 20)[:5])
    r.feed(memoryview(buf))
    assert r.error is not None
    buf.extend(b"more")


@pytest.mark.parametrize("masked", [True, False])
def test_payload_across_feeds_counts_as_pending(backend, masked: bool) -> None:
    """A payload spanning feeds is written into its final buffer as it arrives: ``pending`` counts what
    arrived (not what the header announced), and the delivered payload is an independent bytes object."""
    payload = os.urandom(200_000)
    frame = raw_frame(OP_BINARY, payload, key=KEY if masked else None)
    r = backend.FrameReader()
    buf = bytearray(frame[:1000])
    assert r.feed(buf) == []
    assert r.pending == 1000 - (frame.index(KEY) + 4 if masked else 10)
    buf[:] = b"\x00" * 1000  # the caller's buffer is free at once
    got = []
    for i in range(1000, len(frame), 9999):
        got += r.feed(memoryview(frame)[i : i + 9999])
    assert frames_of(got) == [(OP_BINARY, True, 0, payload)]
    assert type(got[0].payload) is bytes and r.pending == 0


def test_a_frame_longer_than_the_preallocation_grows_as_it_arrives(backend) -> None:
    """Past 64 MiB (only with the limits raised), or with little of it here, a payload is not allocated
    from the header: a peer's length field alone cannot make the reader reserve what it never sends."""
    n = (1 << 26) + 3
    chunk = bytes(range(256)) * 4096  # 1 MiB
    r = backend.FrameReader(require_mask=False)
    assert r.feed(raw_frame(OP_BINARY, b"", key=None)[:1] + b"\x7f" + n.to_bytes(8, "big")) == []
    assert r.pending == 0
    got = []
    sent = 0
    while sent < n:
        piece = chunk[: n - sent]
        got += r.feed(piece)
        sent += len(piece)
        if sent == 5 * len(chunk):
            assert r.pending == sent
    assert len(got) == 1 and len(got[0].payload) == n
    assert got[0].payload[: len(chunk)] == chunk and got[0].payload[-3:] == chunk[:3]
    huge = backend.FrameReader(require_mask=False)  # 1 TiB announced: allocated whole, this would fail
    assert huge.feed(b"\x82\x7f" + (1 << 40).to_bytes(8, "big") + b"abc") == []
    assert huge.error is None and huge.pending == 3


def test_a_reader_cannot_be_pickled_or_copied(backend) -> None:
    """A frame in progress is written in place (compiled: into the bytes object it becomes): no copy
    of the reader may share it."""
    import copy
    import pickle

    r = backend.FrameReader()
    r.feed(raw_frame(OP_BINARY, b"x" * 100_000, key=KEY)[:50_000])
    for attempt in (lambda: pickle.dumps(r), lambda: copy.copy(r), lambda: copy.deepcopy(r)):
        with pytest.raises(TypeError):
            attempt()


@pytest.mark.parametrize("first", [10, 60_000])  # little or much of the payload in the first read
def test_bad_utf8_in_a_payload_across_feeds_fails_at_its_chunk(backend, first: int) -> None:
    text = ("é" * 50_000).encode()
    bad = text[:70_001] + b"\xff" + text[70_002:]
    frame = raw_frame(OP_TEXT, bad, key=KEY)
    head = frame.index(KEY) + 4
    r = backend.FrameReader()
    assert r.feed(frame[: head + first]) == [] and r.error is None
    assert r.feed(frame[head + first : head + 70_000]) == [] and r.error is None
    assert r.feed(frame[head + 70_000 : head + 80_000]) == []
    fails_with(r, 1007)
