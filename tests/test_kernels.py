"""Per-byte kernels on both backends: XOR masking and UTF-8 validation."""

from __future__ import annotations

import os
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wsframe.protocol.errors import ProtocolError
from frames_by_hand import decodes_as_utf8, naive_mask

KEYS = [b"\x37\xfa\x21\x3d", b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", b"\x01\x02\x03\x04", b"\x80\x00\x00\x01"]


def payload(n: int, seed: int = 0) -> bytes:
    return random.Random(n * 7919 + seed).randbytes(n)


# ---------------------------------------------------------------- masking


@pytest.mark.parametrize("key", KEYS)
def test_mask_every_length_and_phase(backend, key: bytes) -> None:
    for n in range(301):
        data = payload(n)
        for phase in range(8):
            expected = naive_mask(data, key, phase)
            assert backend.mask(data, key, phase) == expected, (n, phase)


@pytest.mark.parametrize("kind", ["bytes", "bytearray", "memoryview", "memoryview-slice", "bytearray-slice"])
def test_mask_accepts_buffers(backend, kind: str) -> None:
    key = KEYS[0]
    for n in (0, 1, 3, 4, 7, 31, 32, 33, 63, 64, 65, 127, 129, 255, 300):
        raw = payload(n + 10, seed=1)
        if kind == "bytes":
            data, ref = raw[:n], raw[:n]
        elif kind == "bytearray":
            data, ref = bytearray(raw[:n]), raw[:n]
        elif kind == "memoryview":
            data, ref = memoryview(raw[:n]), raw[:n]
        elif kind == "memoryview-slice":
            data, ref = memoryview(raw)[5 : 5 + n], raw[5 : 5 + n]
        else:
            data, ref = memoryview(bytearray(raw))[3 : 3 + n], raw[3 : 3 + n]
        for phase in range(8):
            out = backend.mask(data, key, phase)
            assert type(out) is bytes
            assert out == naive_mask(ref, key, phase), (n, phase)
        # the input is untouched
        assert bytes(data) == ref


@pytest.mark.parametrize("key_kind", ["bytes", "bytearray", "memoryview"])
def test_mask_key_may_be_any_4_byte_buffer(backend, key_kind: str) -> None:
    key = {"bytes": bytes, "bytearray": bytearray, "memoryview": memoryview}[key_kind](KEYS[3])
    data = payload(100)
    assert backend.mask(data, key) == naive_mask(data, KEYS[3])
    buf = bytearray(data)
    backend.mask_inplace(buf, key, 1)
    assert buf == naive_mask(data, KEYS[3], 1)


def test_mask_inplace_every_length_and_phase(backend) -> None:
    key = KEYS[0]
    for n in range(301):
        data = payload(n)
        for phase in range(8):
            buf = bytearray(data)
            assert backend.mask_inplace(buf, key, phase) is None
            assert buf == naive_mask(data, key, phase), (n, phase)


def test_mask_inplace_on_memoryview_slices(backend) -> None:
    key = KEYS[3]
    raw = payload(400)
    for start, stop in [(0, 0), (1, 2), (3, 70), (5, 300), (17, 400), (200, 201)]:
        buf = bytearray(raw)
        backend.mask_inplace(memoryview(buf)[start:stop], key, 2)
        # only the slice changed, nothing around it
        assert buf[:start] == raw[:start]
        assert buf[start:stop] == naive_mask(raw[start:stop], key, 2)
        assert buf[stop:] == raw[stop:]


@pytest.mark.parametrize("n", [65536, 65536 + 5, 1024 * 1024 + 3])
def test_mask_large(backend, n: int) -> None:
    data = os.urandom(n)
    key = KEYS[0]
    for phase in (0, 1, 2, 3, 6):
        expected = naive_mask(data, key, phase)
        assert backend.mask(data, key, phase) == expected
        buf = bytearray(data)
        backend.mask_inplace(buf, key, phase)
        assert buf == expected


def test_mask_unaligned_offsets(backend) -> None:
    key = KEYS[4]
    size = 70_000  # over the no-GIL threshold as well as the SIMD widths
    raw = os.urandom(size + 64)
    for offset in range(1, 32):
        for n in (size, 300, 257, 256, 255, 129, 64, 63, 17, 16, 15, 8, 7):
            for phase in (0, 3):
                expected = naive_mask(raw[offset : offset + n], key, phase)
                view = memoryview(bytearray(raw))[offset : offset + n]
                assert backend.mask(view, key, phase) == expected, (offset, n, phase)
                buf = bytearray(raw)
                backend.mask_inplace(memoryview(buf)[offset : offset + n], key, phase)
                assert buf[offset : offset + n] == expected, (offset, n, phase)
                assert buf[:offset] == raw[:offset]
                assert buf[offset + n :] == raw[offset + n :]


def test_mask_is_its_own_inverse(backend) -> None:
    for n in (0, 1, 5, 64, 1000, 65537):
        data = os.urandom(n)
        for phase in range(4):
            key = os.urandom(4)
            once = backend.mask(data, key, phase)
            assert backend.mask(once, key, phase) == data
            buf = bytearray(data)
            backend.mask_inplace(buf, key, phase)
            backend.mask_inplace(buf, key, phase)
            assert buf == data


def test_mask_in_pieces_with_phase(backend) -> None:
    """Unmasking a payload piece by piece with the running phase equals unmasking it whole."""
    key = KEYS[0]
    data = payload(1000)
    whole = backend.mask(data, key)
    for cut in (1, 2, 3, 5, 64, 333, 999):
        pieces = [backend.mask(data[i : i + cut], key, i) for i in range(0, len(data), cut)]
        assert b"".join(pieces) == whole


@pytest.mark.parametrize("key", [b"", b"\x01", b"\x01\x02\x03", b"\x01\x02\x03\x04\x05", bytearray(8)])
def test_bad_key_length(backend, key) -> None:
    with pytest.raises(ValueError):
        backend.mask(b"abcd", key)
    with pytest.raises(ValueError):
        backend.mask_inplace(bytearray(b"abcd"), key)


@pytest.mark.parametrize("key", [4, 0, [1, 2, 3, 4], (1, 2, 3, 4), "abcd", None])
def test_key_that_is_not_a_buffer(backend, key) -> None:
    """``bytes(4)`` is four zero bytes: an int must not pass for an (all-zero) key."""
    with pytest.raises(TypeError):
        backend.mask(b"abcd", key)
    with pytest.raises(TypeError):
        backend.mask_inplace(bytearray(b"abcd"), key)


def test_negative_phase(backend) -> None:
    with pytest.raises(ValueError):
        backend.mask(b"abcd", KEYS[0], -1)
    with pytest.raises(ValueError):
        backend.mask_inplace(bytearray(b"abcd"), KEYS[0], -1)


@pytest.mark.parametrize(
    "buf", [b"abcdefgh", b"", memoryview(b"abcdefgh"), memoryview(bytearray(b"abcdefgh")).toreadonly()]
)
def test_mask_inplace_read_only(backend, buf) -> None:
    """Both backends raise TypeError, like the standard library for a read-only buffer."""
    with pytest.raises(TypeError):
        backend.mask_inplace(buf, KEYS[0])


def test_mask_inplace_read_only_raises_same_type_in_both_backends() -> None:
    from wsframe.protocol import backend as _backend

    kinds = set()
    for name in _backend.available():
        try:
            _backend.load(name).mask_inplace(b"abcdefgh", KEYS[0])
        except Exception as exc:  # noqa: BLE001 - the type is what is compared
            kinds.add(type(exc))
        else:
            pytest.fail(f"{name}: mask_inplace wrote into bytes")
    assert kinds == {TypeError}


def test_argument_checks_come_before_the_buffer_check(backend) -> None:
    """Same order in both backends: phase, then key, then writability."""
    with pytest.raises(ValueError):
        backend.mask_inplace(b"abcd", KEYS[0], -1)
    with pytest.raises(ValueError):
        backend.mask_inplace(b"abcd", b"abc")


@pytest.mark.parametrize("step", [2, -1, -2])
def test_non_contiguous_buffers_rejected(backend, step: int) -> None:
    """A strided view is refused; it must never be read or written as if it were contiguous."""
    raw = bytes(range(64))
    guard = bytearray(raw)
    with pytest.raises((TypeError, ValueError, BufferError)):
        backend.mask(memoryview(raw)[::step], KEYS[3])
    with pytest.raises((TypeError, ValueError, BufferError)):
        backend.mask_inplace(memoryview(guard)[::step], KEYS[3])
    assert guard == raw
    with pytest.raises((TypeError, ValueError, BufferError)):
        backend.validate_utf8(memoryview(raw)[::step])
    with pytest.raises((TypeError, ValueError, BufferError)):
        backend.Utf8Validator().feed(memoryview(raw)[::step])


def test_mask_rejects_text(backend) -> None:
    with pytest.raises(TypeError):
        backend.mask("abcd", KEYS[0])
    with pytest.raises(TypeError):
        backend.mask_inplace("abcd", KEYS[0])


def test_mask_impl_name(backend) -> None:
    assert backend.MASK_IMPL in ("python", "avx2", "sse2", "neon", "scalar")


# ---------------------------------------------------------------- UTF-8

VALID = [
    b"",
    b"Hello, world",
    b"\x00\x7f",
    "\u00e9t\u00e9".encode(),  # 2-byte
    "\u20ac\u4e2d\u6587".encode(),  # 3-byte
    "\U0001f600\U00010000".encode(),  # 4-byte
    "\uffff".encode(),
    "\U0010ffff".encode(),
    "\ud7ff".encode(),
    "\ue000".encode(),
    "\u0080\u07ff\u0800".encode(),  # first/last of each length
    ("a" * 40 + "\u00e9" + "b" * 33 + "\U0001f600" + "c" * 17).encode(),  # past the 16-byte fast path
    "κόσμε".encode(),
]

# (bytes, index of the first byte that makes it invalid, offset the error names: where that sequence began)
INVALID = [
    (b"\xc0\x80", 0, 0),  # overlong NUL
    (b"\xc1\xbf", 0, 0),  # overlong
    (b"\xe0\x80\x80", 1, 0),  # overlong 3-byte
    (b"\xe0\x9f\xbf", 1, 0),  # overlong 3-byte (largest)
    (b"\xf0\x80\x80\x80", 1, 0),  # overlong 4-byte
    (b"\xf0\x8f\xbf\xbf", 1, 0),  # overlong 4-byte (largest)
    (b"\xed\xa0\x80", 1, 0),  # U+D800
    (b"\xed\xbf\xbf", 1, 0),  # U+DFFF
    (b"ab\xed\xa0\x80cd", 3, 2),  # surrogate after ASCII
    (b"\xf4\x90\x80\x80", 1, 0),  # U+110000
    (b"\xf5\x80\x80\x80", 0, 0),
    (b"\xf8\x88\x80\x80\x80", 0, 0),
    (b"\xfe", 0, 0),
    (b"\xff", 0, 0),
    (b"\x80", 0, 0),  # lone continuation bytes
    (b"\xbf", 0, 0),
    (b"abc\x80def", 3, 3),
    (b"\xc3\xa9\xa9", 2, 2),  # one continuation too many
    (b"\xe2\x82A", 2, 0),  # truncated, then ASCII
    (b"\xe2A\x82", 1, 0),
    (b"\xf0\x9f\x98\xf0\x9f\x98\x80", 3, 0),  # new lead byte inside a sequence
    (("x" * 37).encode() + b"\xc3\xa9" + b"\xff" + b"y" * 20, 39, 39),
    (("x" * 64).encode() + b"\xed\xa0\x80", 65, 64),
    (("\u20ac" * 20).encode() + b"\xe2\x28\xa1", 61, 60),
]

# truncated at the end: every byte so far could still be valid; only finish() fails
TRUNCATED = [
    (b"\xc3", 0),
    (b"\xe2\x82", 0),
    (b"\xe2", 0),
    (b"\xf0\x9f\x98", 0),
    (b"\xf0", 0),
    (b"\xf4\x8f", 0),
    (b"\xed\x9f", 0),
    (b"abc\xe2\x82", 3),
    (b"\xc3\xa9\xf0\x9f", 2),
]


def chunkings(data: bytes):
    """Every split into two chunks, then one byte at a time."""
    for cut in range(len(data) + 1):
        yield [data[:cut], data[cut:]]
    yield [data[i : i + 1] for i in range(len(data))]


def test_invalid_samples_really_are_invalid() -> None:
    """The table above agrees with Python's own decoder."""
    for data, bad, start in INVALID:
        with pytest.raises(UnicodeDecodeError):
            data.decode("utf-8")
        assert data[:start].decode("utf-8") is not None
    for data, _ in TRUNCATED:
        with pytest.raises(UnicodeDecodeError):
            data.decode("utf-8")
    for data in VALID:
        data.decode("utf-8")


@pytest.mark.parametrize("data", VALID)
def test_valid_samples(backend, data: bytes) -> None:
    assert backend.validate_utf8(data) is True
    assert backend.validate_utf8(bytearray(data)) is True
    assert backend.validate_utf8(memoryview(b"\xff" + data + b"\xff")[1:-1]) is True
    for chunks in chunkings(data):
        v = backend.Utf8Validator()
        for chunk in chunks:
            v.feed(chunk)
        assert v.complete
        v.finish()


@pytest.mark.parametrize("data,bad,start", INVALID)
def test_invalid_samples_fail_fast(backend, data: bytes, bad: int, start: int) -> None:
    assert backend.validate_utf8(data) is False
    message = f"invalid UTF-8 at byte {start}"
    for chunks in chunkings(data):
        v = backend.Utf8Validator()
        seen = 0
        for i, chunk in enumerate(chunks):
            if seen <= bad < seen + len(chunk):
                with pytest.raises(ProtocolError) as info:
                    v.feed(chunk)
                assert info.value.code == 1007
                assert info.value.reason == message, [bytes(c) for c in chunks]
                break
            v.feed(chunk)  # must not fail before the offending byte arrives
            seen += len(chunk)
        else:
            pytest.fail(f"the offending byte {bad} was never fed")
        assert not v.complete
        # a failed validator stays failed, with the same message
        for again in (lambda: v.feed(b"a"), v.finish, lambda: v.feed(b"")):
            with pytest.raises(ProtocolError) as info:
                again()
            assert (info.value.code, info.value.reason) == (1007, message)


@pytest.mark.parametrize("data,start", TRUNCATED)
def test_truncated_samples_fail_only_at_finish(backend, data: bytes, start: int) -> None:
    assert backend.validate_utf8(data) is False
    for chunks in chunkings(data):
        v = backend.Utf8Validator()
        for chunk in chunks:
            v.feed(chunk)
        assert not v.complete
        with pytest.raises(ProtocolError) as info:
            v.finish()
        assert info.value.code == 1007
        assert info.value.reason == f"incomplete UTF-8 sequence at byte {start}"


def test_feed_with_start_and_stop(backend) -> None:
    data = b"\xff\xffab\xc3\xa9cd\xff"
    v = backend.Utf8Validator()
    v.feed(data, 2, 8)  # only "ab\xc3\xa9cd"
    assert v.complete
    v.feed(data, 2, 5)  # "ab\xc3"
    assert not v.complete
    v.feed(data, 5, 6)  # "\xa9"
    assert v.complete
    v.feed(data, 4, 4)  # empty
    v.feed(data, 7, 3)  # stop before start: empty
    v.feed(data, -5, 0)  # negative start is 0: still empty
    assert v.complete
    v.finish()
    with pytest.raises(ProtocolError) as info:
        v.feed(data, 6, -1)  # "cd\xff": a negative stop means the end; 12 good bytes so far
    assert info.value.reason == "invalid UTF-8 at byte 12"


def test_feed_stop_past_the_end_is_clipped(backend) -> None:
    data = b"ab\xc3\xa9\xff"
    v = backend.Utf8Validator()
    with pytest.raises(ProtocolError) as info:
        v.feed(data, 0, 100)
    assert info.value.reason == "invalid UTF-8 at byte 4"
    v = backend.Utf8Validator()
    v.feed(data, 0, 4)
    v.feed(data, 100, 200)  # start past the end: nothing
    v.finish()


def test_complete_property(backend) -> None:
    v = backend.Utf8Validator()
    assert v.complete
    v.feed(b"a")
    assert v.complete
    v.feed(b"\xf0")
    assert not v.complete
    v.feed(b"\x9f\x98")
    assert not v.complete
    v.feed(b"\x80")
    assert v.complete
    with pytest.raises(ProtocolError):
        v.feed(b"\xc0")
    assert not v.complete


def test_reset(backend) -> None:
    v = backend.Utf8Validator()
    v.feed(b"ab\xe2")
    v.reset()
    assert v.complete
    v.feed(b"\xc3\xa9")  # a fresh text: no leftover \xe2
    v.finish()
    with pytest.raises(ProtocolError):
        v.feed(b"\xff")
    v.reset()
    v.feed(b"ok")
    v.finish()
    # offsets restart at 0 after a reset
    v.reset()
    with pytest.raises(ProtocolError) as info:
        v.feed(b"x\x80")
    assert info.value.reason == "invalid UTF-8 at byte 1"


def test_offset_counts_across_chunks(backend) -> None:
    v = backend.Utf8Validator()
    v.feed(b"a" * 100)
    v.feed("\u00e9".encode() * 10)
    v.feed(b"\xe2\x82")
    with pytest.raises(ProtocolError) as info:
        v.feed(b"x")
    assert info.value.reason == "invalid UTF-8 at byte 120"


def test_large_text(backend) -> None:
    text = ("ascii " * 5000 + "\u00e9\u20ac\U0001f600" * 5000).encode()
    assert len(text) > 65536
    assert backend.validate_utf8(text)
    v = backend.Utf8Validator()
    v.feed(text)
    v.finish()
    bad = bytearray(text)
    bad[70001] = 0xFF
    assert not backend.validate_utf8(bad)
    v = backend.Utf8Validator()
    with pytest.raises(ProtocolError) as info:
        v.feed(bad)
    assert info.value.code == 1007


# -------------------------------------------------- reference: Python's own decoder

# a few likely-interesting bytes, so random samples hit multi-byte sequences often
_interesting = st.sampled_from(
    [0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xE1, 0xEC, 0xED, 0xEE,
     0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xFF]
)
utf8ish = st.one_of(
    st.binary(max_size=40),
    st.lists(st.one_of(_interesting, st.integers(0, 255)), max_size=40).map(bytes),
    st.text(max_size=20).map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.lists(st.one_of(st.text(max_size=4).map(lambda s: s.encode("utf-8", "surrogatepass")),
                       st.binary(max_size=2)), max_size=8).map(b"".join),
)


def _valid_prefix(data: bytes) -> bool:
    """Whether some continuation makes ``data`` valid (brute force over the next byte)."""
    if decodes_as_utf8(data):
        return True
    for more in (1, 2, 3):
        for b in range(0x80, 0xC0):
            if decodes_as_utf8(data + bytes([b]) + b"\x80" * (more - 1)):
                return True
    return False


def reference(data: bytes):
    """(valid, index of the first impossible byte or None, offset the error names)."""
    if decodes_as_utf8(data):
        return True, None, None
    lo, hi = 0, len(data)  # data[:lo] is a valid prefix; is data[:hi]?
    if _valid_prefix(data):
        bad = None
    else:
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if _valid_prefix(data[:mid]):
                lo = mid
            else:
                hi = mid
        bad = hi - 1
    good = len(data) if bad is None else bad
    start = next(good - k for k in range(4) if decodes_as_utf8(data[: good - k]))
    return False, bad, start


def test_reference_agrees_with_the_tables() -> None:
    """The brute-force reference below reproduces the hand-written tables."""
    for data, bad, start in INVALID:
        assert reference(data) == (False, bad, start), data
    for data, start in TRUNCATED:
        assert reference(data) == (False, None, start), data
    for data in VALID:
        assert reference(data) == (True, None, None)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=utf8ish, cuts=st.lists(st.integers(0, 40), max_size=4))
def test_validator_agrees_with_python_decoder(backend, data: bytes, cuts) -> None:
    valid, bad, start = reference(data)
    assert backend.validate_utf8(data) is valid
    points = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
    chunks = [data[a:b] for a, b in zip(points, points[1:])]
    v = backend.Utf8Validator()
    seen = 0
    for chunk in chunks:
        if bad is not None and seen <= bad < seen + len(chunk):
            with pytest.raises(ProtocolError) as info:
                v.feed(chunk)
            assert (info.value.code, info.value.reason) == (1007, f"invalid UTF-8 at byte {start}")
            return
        v.feed(chunk)
        seen += len(chunk)
    assert bad is None
    assert v.complete is valid
    if valid:
        v.finish()
    else:
        with pytest.raises(ProtocolError) as info:
            v.finish()
        assert (info.value.code, info.value.reason) == (1007, f"incomplete UTF-8 sequence at byte {start}")

