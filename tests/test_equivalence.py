"""Property tests: the compiled and the pure backend behave identically, byte for byte and error for error."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wsframe.protocol import backend as _backend
from wsframe.protocol.errors import ProtocolError
from frames_by_hand import decodes_as_utf8, raw_frame

if "cython" not in _backend.available():
    pytest.skip("the compiled backend is not built", allow_module_level=True)

C = _backend.load("cython")
P = _backend.load("python")

# Sized for the whole file to run in well under a minute on a 2-core machine.
SETTINGS = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
READER_SETTINGS = settings(max_examples=900, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ------------------------------------------------------------- helpers


def outcome(fn):
    """What a call did, comparable across backends: its result or its exception."""
    try:
        return ("ok", fn())
    except ProtocolError as exc:
        return ("protocol", type(exc), exc.code, exc.reason)
    except (ValueError, OverflowError) as exc:
        return ("error", type(exc), str(exc))
    except (TypeError, BufferError) as exc:
        return ("error", type(exc))  # the wording of buffer-protocol errors is CPython's


def frames_of(frames):
    return [(f.opcode, f.fin, f.rsv, f.payload) for f in frames]


def header_of(h):
    if h is None:
        return None
    return (h.fin, h.rsv, h.opcode, h.masked, h.length, h.key, h.size, h.mask_key)


def error_of(reader):
    err = reader.error
    if err is None:
        return None
    return (type(err), err.code, err.reason)


def as_kind(data: bytes, kind: int):
    if kind == 0:
        return data
    if kind == 1:
        return bytearray(data)
    if kind == 2:
        return memoryview(data)
    return memoryview(b"\x00" * 3 + data + b"\x00")[3:-1]


# ------------------------------------------------------------- strategies

SIZES = [0, 1, 2, 3, 4, 5, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 124, 125, 126, 127, 128, 255, 256, 257]

opcodes = st.one_of(st.sampled_from([0x0, 0x1, 0x2, 0x8, 0x9, 0xA]), st.integers(0, 15))
rsvs = st.one_of(st.just(0), st.just(0), st.integers(0, 7))
keys = st.one_of(st.none(), st.binary(min_size=4, max_size=4), st.just(b"\x00\x00\x00\x00"))


@st.composite
def payloads(draw):
    kind = draw(st.integers(0, 5))
    if kind == 0:
        return draw(st.binary(max_size=40))
    if kind in (1, 2):  # text, often cut inside a code point
        data = draw(st.text(max_size=30)).encode("utf-8", "surrogatepass")
        if kind == 2 and data:
            cut = draw(st.integers(0, len(data)))
            return data[:cut]
        return data
    if kind == 3:
        n = draw(st.sampled_from(SIZES))
    elif kind == 4:
        n = draw(st.integers(0, 300))
    else:
        n = draw(st.sampled_from([65535, 65536, 65537, 70000]))
    seed = draw(st.integers(0, 2**16))
    if draw(st.booleans()):
        return random.Random(seed).randbytes(n)
    return ("\u00e9a\u20ac\U0001f600z" * (n // 10 + 1)).encode()[:n]


@st.composite
def frame_specs(draw):
    opcode = draw(opcodes)
    fin = draw(st.one_of(st.just(True), st.booleans()))
    return (opcode, draw(payloads()), fin, draw(rsvs), draw(keys), draw(st.sampled_from([None, None, None, 7, 16, 64])))


@st.composite
def streams(draw):
    """Frames (lawful or not), maybe mutated, maybe with garbage, and a chunking of the bytes."""
    specs = draw(st.lists(frame_specs(), min_size=1, max_size=6))
    data = bytearray(b"".join(raw_frame(*s) for s in specs))
    for _ in range(draw(st.integers(0, 3)) if draw(st.integers(0, 3)) == 0 else 0):
        i = draw(st.integers(0, len(data) - 1))
        data[i] = draw(st.integers(0, 255))
    if draw(st.integers(0, 5)) == 0:
        data += draw(st.binary(max_size=30))
    if draw(st.integers(0, 9)) == 0:
        data = bytearray(draw(st.binary(max_size=60))) + data
    data = bytes(data)
    cuts = draw(st.lists(st.integers(0, len(data)), max_size=8))
    if draw(st.integers(0, 9)) == 0 and len(data) < 400:
        cuts = list(range(len(data)))  # one byte at a time
    points = sorted(set(cuts) | {0, len(data)})
    chunks = [data[a:b] for a, b in zip(points, points[1:])]
    kinds = [draw(st.integers(0, 3)) for _ in chunks]
    return chunks, kinds


limits = st.sampled_from([-1, -1, -1, 0, 1, 5, 40, 125, 126, 300, 65536])
reader_options = st.fixed_dictionaries(
    {
        "require_mask": st.sampled_from([None, True, False]),
        "max_frame_size": limits,
        "max_message_size": limits,
        "allowed_rsv": st.one_of(st.just(0), st.integers(0, 7)),
        "validate_utf8": st.booleans(),
        "max_fragments": st.sampled_from([-1, -1, -1, 0, 1, 2, 3, 5]),
    }
)


def run_both(options, chunks, kinds):
    rc = C.FrameReader(**options)
    rp = P.FrameReader(**options)
    for i, (chunk, kind) in enumerate(zip(chunks, kinds)):
        fc = frames_of(rc.feed(as_kind(chunk, kind)))
        fp = frames_of(rp.feed(as_kind(chunk, kind)))
        assert fc == fp, f"frames differ at feed {i}"
        assert error_of(rc) == error_of(rp), f"errors differ at feed {i}"
        assert rc.pending == rp.pending, f"pending differs at feed {i}"
        assert rc.in_message == rp.in_message
    return rc, rp


# ------------------------------------------------------------- FrameReader


@READER_SETTINGS
@given(stream=streams())
def test_readers_agree_default_options(stream) -> None:
    chunks, kinds = stream
    run_both({}, chunks, kinds)


@READER_SETTINGS
@given(stream=streams(), options=reader_options)
def test_readers_agree_random_options(stream, options) -> None:
    chunks, kinds = stream
    run_both(options, chunks, kinds)


@settings(max_examples=500, deadline=None)
@given(data=st.binary(max_size=200), cuts=st.lists(st.integers(0, 200), max_size=6), options=reader_options)
def test_readers_agree_on_garbage(data, cuts, options) -> None:
    points = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
    chunks = [data[a:b] for a, b in zip(points, points[1:])]
    run_both(options, chunks, [0] * len(chunks))


@settings(max_examples=400, deadline=None)
@given(specs=st.lists(frame_specs(), min_size=1, max_size=5), cut_seed=st.integers(0, 2**32))
def test_chunking_does_not_matter(specs, cut_seed) -> None:
    """For each backend, any chunking of a stream gives the frames and the error of one big feed."""
    data = b"".join(raw_frame(*s) for s in specs)
    rng = random.Random(cut_seed)
    cuts = sorted(rng.sample(range(len(data) + 1), min(len(data) + 1, rng.randint(0, 6))))
    points = sorted(set(cuts) | {0, len(data)})
    chunks = [data[a:b] for a, b in zip(points, points[1:])]
    for b in (C, P):
        whole = b.FrameReader()
        expected = frames_of(whole.feed(data))
        pieces = b.FrameReader()
        got = []
        for chunk in chunks:
            got += frames_of(pieces.feed(chunk))
        assert got == expected
        assert error_of(pieces) == error_of(whole)


# ------------------------------------------------------------- encoding round trip

valid_data_frames = st.tuples(st.sampled_from([0x1, 0x2]), payloads(), st.integers(0, 7), keys)
valid_control_frames = st.tuples(st.sampled_from([0x8, 0x9, 0xA]), st.binary(max_size=125), st.integers(0, 7), keys)


@SETTINGS
@given(spec=st.one_of(valid_data_frames, valid_control_frames), fin=st.booleans(), offset=st.integers(0, 9))
def test_encode_then_parse_round_trip(spec, fin, offset) -> None:
    opcode, payload, rsv, key = spec
    if opcode >= 0x8:
        fin = True
        rsv &= 3  # RSV1 is never allowed on a control frame, whatever the extensions
    frame_c = C.encode_frame(opcode, payload, fin=fin, rsv=rsv, mask_key=key)
    frame_p = P.encode_frame(opcode, payload, fin=fin, rsv=rsv, mask_key=key)
    assert frame_c == frame_p == raw_frame(opcode, payload, fin, rsv, key, None)
    assert len(frame_c) == C.frame_size(len(payload), key is not None) == P.frame_size(len(payload), key is not None)
    for b in (C, P):
        buf = bytearray(b"\xaa" * (offset + len(frame_c) + 3))
        assert b.encode_frame_into(buf, offset, opcode, payload, fin=fin, rsv=rsv, mask_key=key) == len(frame_c)
        assert bytes(buf[offset : offset + len(frame_c)]) == frame_c
        assert buf[:offset] == b"\xaa" * offset and buf[offset + len(frame_c) :] == b"\xaa" * 3
        assert header_of(b.parse_header(frame_c)) == header_of(C.parse_header(frame_c))
        for feeder in (C, P):  # each backend reads what either one wrote
            r = feeder.FrameReader(allowed_rsv=7, validate_utf8=False)
            assert frames_of(r.feed(frame_c)) == [(opcode, fin, rsv, bytes(payload))]
            assert r.error is None and r.pending == 0


@SETTINGS
@given(
    opcode=st.integers(-2, 17),
    size=st.sampled_from([0, 1, 125, 126, 127, 300]),
    fin=st.booleans(),
    rsv=st.integers(-2, 9),
    key=st.one_of(st.none(), st.binary(max_size=6)),
    room=st.integers(-2, 320),
    offset=st.integers(-2, 12),
)
def test_encode_errors_agree(opcode, size, fin, rsv, key, room, offset) -> None:
    payload = bytes(range(256)) * 2
    payload = payload[:size]
    assert outcome(lambda: C.encode_frame(opcode, payload, fin=fin, rsv=rsv, mask_key=key)) == outcome(
        lambda: P.encode_frame(opcode, payload, fin=fin, rsv=rsv, mask_key=key)
    )
    bufs = [bytearray(b"\x11" * max(room, 0)) for _ in range(2)]
    results = [
        outcome(lambda b=b, buf=buf: b.encode_frame_into(buf, offset, opcode, payload, fin=fin, rsv=rsv, mask_key=key))
        for b, buf in zip((C, P), bufs)
    ]
    assert results[0] == results[1]
    assert bufs[0] == bufs[1]


@SETTINGS
@given(size=st.integers(0, 80), start=st.integers(0, 80), length=st.integers(0, 40), offset=st.integers(-1, 80),
       key=keys, read_only=st.booleans(), seed=st.integers(0, 2**16))
def test_encode_into_own_buffer_agrees(size, start, length, offset, key, read_only, seed) -> None:
    """A payload cut from the destination itself: in place, elsewhere or overlapping, both backends agree."""
    data = random.Random(seed).randbytes(size)
    bufs = [bytearray(data) for _ in range(2)]
    results = []
    for b, buf in zip((C, P), bufs):
        view = memoryview(buf)
        payload = (view.toreadonly() if read_only else view)[start : start + length]
        results.append(outcome(lambda b=b, buf=buf, payload=payload: b.encode_frame_into(
            buf, offset, 0x2, payload, mask_key=key)))
        payload.release()
        view.release()
    assert results[0] == results[1]
    assert bufs[0] == bufs[1]
    if results[0][0] == "ok":  # what was written is the frame of the payload as it was
        n = results[0][1]
        expected = raw_frame(0x2, data[start : start + length], key=key)
        assert bytes(bufs[0][offset : offset + n]) == expected


# ------------------------------------------------------------- values


@SETTINGS
@given(opcode=st.sampled_from([0, 1, 2, 8, 9, 10]), payload=st.binary(max_size=20), fin=st.booleans(),
       rsv=st.integers(0, 7), other=st.tuples(st.sampled_from([0, 1, 2]), st.binary(max_size=3), st.booleans()))
def test_frames_equal_across_backends(opcode, payload, fin, rsv, other) -> None:
    """A frame is a value: the same fields make equal frames with equal hashes, whichever backend made them."""
    fc, fp = C.make_frame(opcode, payload, fin, rsv), P.make_frame(opcode, payload, fin, rsv)
    assert fc == fp and fp == fc and not (fc != fp)
    assert hash(fc) == hash(fp)
    assert len({fc, fp}) == 1
    assert repr(fc) == repr(fp)
    o_opcode, o_payload, o_fin = other
    same = (o_opcode, o_payload, o_fin) == (opcode, payload, fin)
    for a, b in ((fc, P.make_frame(o_opcode, o_payload, o_fin, rsv)), (fp, C.make_frame(o_opcode, o_payload, o_fin, rsv))):
        assert (a == b) == same and (a != b) == (not same)
    assert fc != (opcode, fin, rsv, payload) and fp != (opcode, fin, rsv, payload)


def test_parsed_frames_equal_across_backends() -> None:
    data = raw_frame(0x1, b"hello", fin=False, key=b"abcd") + raw_frame(0x9, b"p") + raw_frame(0x0, b"!")
    assert C.FrameReader().feed(data) == P.FrameReader().feed(data)


@pytest.mark.parametrize("option", ["max_frame_size", "max_message_size", "max_fragments", "allowed_rsv"])
@pytest.mark.parametrize("value", [None, "3", 2.0, [1]])
def test_reader_option_errors_agree(option, value) -> None:
    assert outcome(lambda: C.FrameReader(**{option: value}) and None) == outcome(
        lambda: P.FrameReader(**{option: value}) and None)
    with pytest.raises(TypeError) as c_info:
        C.FrameReader(**{option: value})
    with pytest.raises(TypeError) as p_info:
        P.FrameReader(**{option: value})
    assert str(c_info.value) == str(p_info.value)


# ------------------------------------------------------------- parse_header


@settings(max_examples=800, deadline=None)
@given(
    data=st.one_of(st.binary(max_size=20), st.tuples(frame_specs(), st.integers(0, 16)).map(
        lambda t: raw_frame(*t[0])[: t[1]])),
    prefix=st.binary(max_size=3),
    offset=st.one_of(st.none(), st.integers(-2, 25)),
    max_size=st.one_of(st.sampled_from([-1, 0, 125, 126, 65535, 65536, 2**63 - 1]), st.integers(-3, 300)),
)
def test_parse_header_agrees(data, prefix, offset, max_size) -> None:
    data = prefix + data
    if offset is None:
        offset = len(prefix)
    for kind in range(4):
        buf_c, buf_p = as_kind(data, kind), as_kind(data, kind)
        rc = outcome(lambda: header_of(C.parse_header(buf_c, offset, max_size)))
        rp = outcome(lambda: header_of(P.parse_header(buf_p, offset, max_size)))
        assert rc == rp


# ------------------------------------------------------------- kernels


@settings(max_examples=400, deadline=None)
@given(data=st.one_of(st.binary(max_size=300), st.integers(0, 70000).map(lambda n: random.Random(n).randbytes(n))),
       key=st.binary(min_size=4, max_size=4), phase=st.integers(0, 2**20), start=st.integers(0, 40),
       kind=st.integers(0, 3))
def test_mask_agrees(data, key, phase, start, kind) -> None:
    data = data[start:]
    out_c = C.mask(as_kind(data, kind), key, phase)
    out_p = P.mask(as_kind(data, kind), key, phase)
    assert out_c == out_p
    assert out_c == bytes(b ^ key[(phase + i) % 4] for i, b in enumerate(data[:64])) + out_c[64:]
    # in place, through an unaligned window of a larger buffer
    bufs = [bytearray(b"\x5a" * start + data + b"\xa5" * 3) for _ in range(2)]
    C.mask_inplace(memoryview(bufs[0])[start : start + len(data)], key, phase)
    P.mask_inplace(memoryview(bufs[1])[start : start + len(data)], key, phase)
    assert bufs[0] == bufs[1]
    assert bytes(bufs[0][start : start + len(data)]) == out_c


@settings(max_examples=200, deadline=None)
@given(key=st.one_of(st.binary(max_size=6), st.integers(0, 8), st.none(), st.text(max_size=4),
                     st.lists(st.integers(0, 255), max_size=5)),
       phase=st.integers(-3, 5),
       data=st.sampled_from([b"abcdef", bytearray(b"abcdef"), "abcdef", None, 7]))
def test_mask_errors_agree(key, phase, data) -> None:
    assert outcome(lambda: C.mask(data, key, phase)) == outcome(lambda: P.mask(data, key, phase))
    bufs = [bytearray(data) if isinstance(data, bytearray) else data for _ in range(2)]
    assert outcome(lambda: C.mask_inplace(bufs[0], key, phase)) == outcome(lambda: P.mask_inplace(bufs[1], key, phase))
    assert bufs[0] == bufs[1]


_utf8_bytes = st.one_of(
    st.binary(max_size=12),
    st.text(max_size=6).map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.lists(st.sampled_from([0x41, 0x80, 0xA0, 0xBF, 0xC2, 0xE0, 0xED, 0xF0, 0xF4, 0xFF, 0x9F, 0x90]),
             max_size=6).map(bytes),
)


@settings(max_examples=800, deadline=None)
@given(steps=st.lists(st.tuples(_utf8_bytes, st.integers(-2, 14), st.integers(-2, 14), st.integers(0, 9)),
                      max_size=8))
def test_utf8_validator_agrees(steps) -> None:
    vc, vp = C.Utf8Validator(), P.Utf8Validator()
    everything = b""
    for data, start, stop, action in steps:
        if action == 0:
            rc, rp = outcome(vc.finish), outcome(vp.finish)
        elif action == 1:
            vc.reset()
            vp.reset()
            rc = rp = None
        elif action == 2:
            rc = outcome(lambda: vc.feed(data, start, stop))
            rp = outcome(lambda: vp.feed(data, start, stop))
        else:
            rc = outcome(lambda: vc.feed(data))
            rp = outcome(lambda: vp.feed(data))
            everything += data
        assert rc == rp
        assert vc.complete == vp.complete
    assert C.validate_utf8(everything) == P.validate_utf8(everything)
    assert C.validate_utf8(everything) == decodes_as_utf8(everything)


# ------------------------------------------------------------- unusual arguments


class _Bytes(bytes):
    pass


def _odd_inputs():
    """Things a caller might pass as a buffer, lawful or not; a fresh set for each call."""
    import array

    released = memoryview(b"\x81\x00")
    released.release()
    return {
        "none": None,
        "str": "\x81\x00",
        "int": 4,
        "list": [0x81, 0x00],
        "bytes-subclass": _Bytes(b"\x81\x02hi"),
        "strided": memoryview(b"\x81x\x00y")[::2],
        "reversed": memoryview(b"\x00\x81")[::-1],
        "empty-strided": memoryview(b"")[::2],
        "read-only": memoryview(bytearray(b"\x82\x01z")).toreadonly(),
        "array-H": array.array("H", [0x0181, 0x0000]),
        "array-I": array.array("I", [0x00000281]),
        "2-d": memoryview(bytearray(b"\x82\x02ab")).cast("B", (2, 2)),
        "signed": memoryview(b"\x81\x01\xff").cast("b"),
        "char": memoryview(b"\x81\x01a").cast("c"),
        "released": released,
    }


@pytest.mark.parametrize("name", sorted(_odd_inputs()))
def test_unusual_arguments_agree(name) -> None:
    calls = {
        "mask": lambda b, x: b.mask(x, b"abcd", 1),
        "mask-key": lambda b, x: b.mask(b"payload", x),
        "mask_inplace": lambda b, x: (b.mask_inplace(x, b"abcd", 1), bytes(x) if x is not None else None)[1],
        "validate_utf8": lambda b, x: b.validate_utf8(x),
        "Utf8Validator.feed": lambda b, x: (lambda v: (v.feed(x), v.complete))(b.Utf8Validator()),
        "parse_header": lambda b, x: header_of(b.parse_header(x)),
        "encode_frame": lambda b, x: b.encode_frame(2, x),
        "encode_frame-key": lambda b, x: b.encode_frame(2, b"p", mask_key=x),
        "encode_frame_into-buffer": lambda b, x: b.encode_frame_into(x, 0, 2, b""),
        "encode_frame_into-payload": lambda b, x: b.encode_frame_into(bytearray(20), 0, 2, x),
        "FrameReader.feed": lambda b, x: (lambda r: (frames_of(r.feed(x)), error_of(r), r.pending))(b.FrameReader()),
    }
    for what, call in calls.items():
        rc = outcome(lambda: call(C, _odd_inputs()[name]))
        rp = outcome(lambda: call(P, _odd_inputs()[name]))
        assert rc == rp, what


@SETTINGS
@given(
    opcode=st.integers(-2, 17),
    length=st.one_of(st.integers(-2, 70000), st.sampled_from([2**16 - 1, 2**16, 2**63 - 1, 2**63, 2**64])),
    fin=st.booleans(),
    rsv=st.integers(-2, 9),
)
def test_encode_header_agrees(opcode, length, fin, rsv) -> None:
    """encode_header() is encode_frame()'s header, with the same errors, in both backends."""
    rc = outcome(lambda: C.encode_header(opcode, length, fin=fin, rsv=rsv))
    assert rc == outcome(lambda: P.encode_header(opcode, length, fin=fin, rsv=rsv))
    if 0 <= length <= 300:
        frame = outcome(lambda: C.encode_frame(opcode, bytes(length), fin=fin, rsv=rsv))
        assert rc == (frame if frame[0] != "ok" else ("ok", frame[1][: len(frame[1]) - length]))
    if rc[0] == "ok":
        header = C.parse_header(rc[1] + b"\x00" * 8)
        assert header is not None and (header.opcode, header.fin, header.rsv, header.length) == (
            opcode, fin, rsv, length)
        assert header.size == len(rc[1]) and not header.masked
