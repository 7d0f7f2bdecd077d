"""Fuzzing the connection with hypothesis: random, frame-shaped and mutated byte streams into both roles.

Whatever arrives, the core must never raise (a broken peer ends in a ``Closed``
event with a proper close code), never hang, keep what it buffers within the
configured limits, write nothing but well-formed pongs and at most one close
frame with a sendable code, report the same thing however the bytes are
chunked, and report exactly the same thing with both backends. Valid streams
(generated messages, fragmented anywhere, control frames in between) must come
out as exactly the messages that went in.
"""

from __future__ import annotations

import codecs
from datetime import timedelta
from typing import Any, List, NamedTuple, Optional, Sequence, Tuple

import pytest
from frames_by_hand import naive_mask, raw_frame
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from wsframe.protocol import backend as _backend
from wsframe.protocol import handshake as hs
from wsframe.protocol.connection import ClientConnection, Connection, ServerConnection, State, is_valid_close_code
from wsframe.protocol.events import (
    Accepted,
    BinaryMessage,
    CloseReceived,
    Closed,
    Fragment,
    Ping,
    Pong,
    Rejected,
    Request,
    TextMessage,
)

BACKENDS = _backend.available()
CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
FAILURE_CODES = (1002, 1007, 1009)
MAX_HEADER = 14

FUZZ = settings(
    max_examples=120,
    deadline=timedelta(seconds=5),  # "never hangs": an example this slow is a failure
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def norm(events: Sequence[Any]) -> list:
    return [(type(e).__name__, tuple(e)) for e in events]


# --- an independent encoder / decoder -------------------------------------------------


def parse_written(data: bytes, client: bool) -> List[Tuple[int, bytes]]:
    """(opcode, payload) of every frame a connection wrote; checks the framing and the masking."""
    frames = []
    pos = 0
    while pos < len(data):
        b0, b1 = data[pos], data[pos + 1]
        assert b0 & 0xF0 == 0x80, "we only write final frames without RSV bits"
        assert bool(b1 & 0x80) == client, "masked iff client"
        n, p = b1 & 0x7F, pos + 2
        assert n <= 125, "we only write control frames on our own"
        key = b""
        if client:
            key, p = data[p : p + 4], p + 4
        payload = data[p : p + n]
        assert len(payload) == n, "truncated frame written"
        frames.append((b0 & 0x0F, naive_mask(payload, key) if client else payload))
        pos = p + n
    return frames


# --- running a connection and checking every invariant ------------------------------------


class Result(NamedTuple):
    events: list
    written: List[Tuple[int, bytes]]


def check_bounds(conn: Connection) -> None:
    """What the connection holds stays within the limits (plus a header)."""
    limits = [x for x in (conn.max_message_size, conn.max_frame_size) if x is not None]
    reader = conn._reader
    if reader is not None and limits:
        # A control frame (at most 125 bytes) is not part of a message: it may be bigger.
        assert reader.pending <= max(min(limits), 125) + MAX_HEADER
    if conn.max_message_size is not None:
        assert sum(len(p) for p in conn._parts) <= conn.max_message_size
    # Once events() is exhausted, nothing is left queued behind it.
    assert not conn._ready and not conn._frames
    if conn.state is not State.CONNECTING or getattr(conn, "request", None) is None:
        assert not conn._incoming


def drain(conn: Connection, events: list, written: bytearray) -> None:
    events.extend(conn.events())
    written += conn.data_to_send()
    check_bounds(conn)


def run(conn: Connection, chunks: Sequence[bytes]) -> Result:
    """Feed ``chunks`` then EOF; nothing may raise."""
    events: list = []
    written = bytearray()
    for chunk in chunks:
        conn.receive_data(chunk)
        drain(conn, events, written)
    conn.receive_data(b"")
    drain(conn, events, written)
    result = Result(events, parse_written(bytes(written), conn.client))
    check_result(conn, result)
    return result


def check_result(conn: Connection, result: Result) -> None:
    events, written = result
    assert conn.state is State.CLOSED and conn.should_close_transport
    closed = [e for e in events if isinstance(e, Closed)]
    assert len(closed) == 1 and events[-1] is closed[0], events[-3:]
    code, reason = closed[0]
    assert (conn.close_code, conn.close_reason) == (code, reason)
    received = [e for e in events if isinstance(e, CloseReceived)]
    assert len(received) <= 1
    pongs = [p for op, p in written if op == PONG]
    closes = [p for op, p in written if op == CLOSE]
    assert all(op in (PONG, CLOSE) for op, _ in written)
    if conn.auto_pong:
        assert pongs == [e.payload for e in events if isinstance(e, Ping)]
    else:
        assert pongs == []
    assert len(closes) <= 1 and (not closes or written[-1][0] == CLOSE)
    if received:
        # A closing handshake: the peer's close, then ours echoing its code.
        assert events[-2] == CloseReceived(code, reason)
        assert code == 1005 or is_valid_close_code(code)
        assert closes == [b"" if code == 1005 else code.to_bytes(2, "big")]
    elif code == 1006:
        assert closes == [], "1006 is never sent"
    else:
        assert code in FAILURE_CODES and reason
        assert closes == [code.to_bytes(2, "big") + reason.encode()]
    for payload in closes:
        if payload:
            assert len(payload) >= 2 and is_valid_close_code(int.from_bytes(payload[:2], "big"))
            assert len(payload) <= 125
            payload[2:].decode("utf-8")
    for e in events:
        if isinstance(e, TextMessage):
            assert isinstance(e.data, str)
        elif isinstance(e, BinaryMessage):
            assert isinstance(e.data, bytes)
    if conn.stream:
        check_fragments(events)


def check_fragments(events: Sequence[Any]) -> None:
    inside: Optional[type] = None
    for e in events:
        assert not isinstance(e, (TextMessage, BinaryMessage))
        if isinstance(e, Fragment):
            assert e.first == (inside is None)
            if inside is not None:
                assert type(e.data) is inside
            inside = None if e.last else type(e.data)


def chunk(data: bytes, cuts: Sequence[int]) -> List[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:]) if b > a]


def check_everywhere(data: bytes, cuts: Sequence[int], client: bool, **opts: Any) -> Result:
    """Whole and chunked, on every backend: the same events and the same frames written."""
    results = []
    for name in BACKENDS:
        for chunks in ([data], chunk(data, cuts)):
            conn = Connection(client=client, backend=name, **opts)
            results.append(run(conn, chunks))
    first = results[0]
    event(f"ends in {first.events[-1].code}, {len(first.events) - 1} events before")
    for other in results[1:]:
        assert norm(other.events) == norm(first.events)
        assert other.written == first.written
    return first


# --- strategies ---------------------------------------------------------------------------

OPTIONS = st.fixed_dictionaries(
    {},
    optional={
        "max_message_size": st.sampled_from([None, 0, 1, 10, 64, 300]),
        "max_frame_size": st.sampled_from([None, 0, 5, 40, 200]),
        "stream": st.booleans(),
        "auto_pong": st.booleans(),
    },
)
CUTS = st.lists(st.integers(min_value=0, max_value=10**6), max_size=20)

ANY_OPCODE = st.one_of(st.sampled_from([CONT, TEXT, BINARY, CLOSE, PING, PONG]), st.integers(0, 15))
CLOSE_PAYLOADS = st.one_of(
    st.just(b""),
    st.binary(min_size=1, max_size=1),
    st.tuples(
        st.one_of(st.sampled_from([1000, 1001, 1005, 1006, 1011, 1015, 3000, 4999, 5000]), st.integers(0, 65535)),
        st.one_of(st.text(max_size=10).map(str.encode), st.binary(max_size=10)),
    ).map(lambda t: t[0].to_bytes(2, "big") + t[1]),
)
PAYLOADS = st.one_of(
    st.binary(max_size=30),
    st.text(max_size=15).map(str.encode),
    st.sampled_from([b"\xce", b"\xba", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xf0\x9f", b"\x99\x82", b"\xff"]),
    st.integers(120, 400).map(lambda n: b"z" * n),
    CLOSE_PAYLOADS,
)


@st.composite
def frame_shaped(draw: Any, client: bool) -> bytes:
    """A stream of frames of every kind, mostly valid, each one sometimes broken in one way."""
    out = bytearray()
    open_message = False
    for _ in range(draw(st.integers(1, 10))):
        fault = draw(st.sampled_from([None] * 10 + ["opcode", "rsv", "mask", "fin", "order", "payload", "length"]))
        control = draw(st.integers(0, 3)) == 0
        if control:
            opcode = draw(st.sampled_from([PING, PONG, PING, PONG, CLOSE]))
            fin = True
        else:
            opcode = CONT if open_message else draw(st.sampled_from([TEXT, BINARY]))
            fin = draw(st.booleans())
        payload = draw(st.binary(max_size=20) if opcode != TEXT else st.text(max_size=10).map(str.encode))
        if opcode == CLOSE:
            payload = draw(CLOSE_PAYLOADS)
        rsv = 0
        masked = not client
        form = draw(st.sampled_from([0, 0, 0, 0, 16, 64]))
        if fault == "opcode":
            opcode = draw(st.integers(0, 15))
        elif fault == "rsv":
            rsv = draw(st.integers(1, 7))
        elif fault == "mask":
            masked = not masked
        elif fault == "fin":
            fin = not fin
        elif fault == "order":
            opcode = draw(st.sampled_from([TEXT, BINARY])) if open_message else CONT
        elif fault == "payload":
            payload = draw(PAYLOADS)
        length = None
        if fault == "length":
            length = draw(st.one_of(st.integers(0, 300), st.sampled_from([2**16, 2**32, 2**63 - 1, 2**63, 2**64 - 1])))
        if opcode < CLOSE and not control:
            open_message = not fin
        key = draw(st.binary(min_size=4, max_size=4)) if masked else None
        out += raw_frame(opcode, payload, fin, rsv, key, form, length)
    return bytes(out)


class Item(NamedTuple):
    kind: str  # "text", "binary", "ping", "pong"
    data: Any
    cuts: Tuple[int, ...]  # where a data message is split into fragments (byte offsets)
    controls: Tuple[Tuple[int, bytes], ...]  # control frames inserted after fragment i


ITEMS = st.one_of(
    st.builds(
        Item,
        st.just("text"),
        st.text(max_size=40),
        st.lists(st.integers(0, 200), max_size=4).map(tuple),
        st.lists(st.tuples(st.integers(0, 4), st.binary(max_size=8)), max_size=2).map(tuple),
    ),
    st.builds(
        Item,
        st.just("binary"),
        st.binary(max_size=60),
        st.lists(st.integers(0, 200), max_size=4).map(tuple),
        st.lists(st.tuples(st.integers(0, 4), st.binary(max_size=8)), max_size=2).map(tuple),
    ),
    st.builds(Item, st.just("ping"), st.binary(max_size=125), st.just(()), st.just(())),
    st.builds(Item, st.just("pong"), st.binary(max_size=20), st.just(()), st.just(())),
)
ENDINGS = st.one_of(
    st.none(),
    st.tuples(st.sampled_from([1000, 1001, 1011, 3000, 4999]), st.text(max_size=20)),
    st.just("empty"),
)


def encode_items(items: Sequence[Item], ending: Any, client: bool, keys: Any) -> Tuple[bytes, list, list]:
    """The peer's wire bytes, the events expected (message mode) and the events expected (stream mode)."""
    masked = not client
    out = bytearray()
    events: list = []
    stream: list = []

    def frame(opcode: int, payload: bytes, fin: bool = True) -> None:
        out.extend(raw_frame(opcode, payload, fin, 0, next(keys) if masked else None))

    def control(opcode: int, payload: bytes) -> None:
        frame(opcode, payload)
        kind = Ping if opcode == PING else Pong
        events.append(kind(payload))
        stream.append(kind(payload))

    for item in items:
        if item.kind in ("ping", "pong"):
            control(PING if item.kind == "ping" else PONG, item.data)
            continue
        text = item.kind == "text"
        data = item.data.encode() if text else item.data
        points = sorted({c % (len(data) + 1) for c in item.cuts})
        bounds = [0, *points, len(data)]
        pieces = [data[a:b] for a, b in zip(bounds, bounds[1:])]
        decoder = codecs.getincrementaldecoder("utf-8")()
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1
            frame((TEXT if text else BINARY) if i == 0 else CONT, piece, last)
            stream.append(Fragment(decoder.decode(piece, last) if text else piece, i == 0, last))
            for where, payload in item.controls:
                if where == i and not last:
                    control(PING, payload)
        events.append(TextMessage(item.data) if text else BinaryMessage(item.data))
    if ending == "empty":
        frame(CLOSE, b"")
        tail = [CloseReceived(1005, ""), Closed(1005, "")]
    elif ending is not None:
        code, reason = ending
        frame(CLOSE, code.to_bytes(2, "big") + reason.encode()[:123].decode("utf-8", "ignore").encode())
        reason = reason.encode()[:123].decode("utf-8", "ignore")
        tail = [CloseReceived(code, reason), Closed(code, reason)]
    else:
        tail = [Closed(1006, "")]
    return bytes(out), events + tail, stream + tail


def key_stream(seed: int):
    import random

    rng = random.Random(seed)
    while True:
        yield bytes(rng.randrange(256) for _ in range(4))


MUTATIONS = st.lists(
    st.tuples(
        st.sampled_from(["flip", "set", "insert", "delete", "truncate", "duplicate"]),
        st.integers(0, 10**6),
        st.integers(0, 255),
    ),
    min_size=1,
    max_size=4,
)


def mutate(data: bytes, mutations: Sequence[Tuple[str, int, int]]) -> bytes:
    buf = bytearray(data)
    for kind, where, value in mutations:
        i = where % (len(buf) + 1)
        if kind == "flip" and i < len(buf):
            buf[i] ^= 1 << (value % 8)
        elif kind == "set" and i < len(buf):
            buf[i] = value
        elif kind == "insert":
            buf[i:i] = bytes([value]) * (1 + value % 3)
        elif kind == "delete":
            del buf[i : i + 1 + value % 4]
        elif kind == "truncate":
            del buf[i:]
        elif kind == "duplicate":
            buf[i:i] = buf[i : i + 1 + value % 16]
    return bytes(buf)


# --- the properties -------------------------------------------------------------------------


@settings(FUZZ, max_examples=400)
@given(data=st.binary(max_size=300), cuts=CUTS, client=st.booleans(), opts=OPTIONS)
def test_random_bytes(data: bytes, cuts: List[int], client: bool, opts: dict) -> None:
    check_everywhere(data, cuts, client, **opts)


@settings(FUZZ, max_examples=600)
@given(data=st.data(), cuts=CUTS, client=st.booleans(), opts=OPTIONS)
def test_frame_shaped_streams(data: Any, cuts: List[int], client: bool, opts: dict) -> None:
    stream = data.draw(frame_shaped(client))
    check_everywhere(stream, cuts, client, **opts)


@settings(FUZZ, max_examples=500)
@given(
    items=st.lists(ITEMS, max_size=8),
    ending=ENDINGS,
    cuts=CUTS,
    client=st.booleans(),
    stream=st.booleans(),
    seed=st.integers(0, 2**32),
)
def test_valid_streams_give_exactly_their_messages(items, ending, cuts, client, stream, seed) -> None:
    data, expected, expected_stream = encode_items(items, ending, client, key_stream(seed))
    result = check_everywhere(data, cuts, client, stream=stream, max_message_size=None)
    assert norm(result.events) == norm(expected_stream if stream else expected)


@settings(FUZZ, max_examples=800)
@given(
    items=st.lists(ITEMS, min_size=1, max_size=6),
    ending=ENDINGS,
    mutations=MUTATIONS,
    cuts=CUTS,
    client=st.booleans(),
    opts=OPTIONS,
    seed=st.integers(0, 2**32),
)
def test_mutated_valid_streams(items, ending, mutations, cuts, client, opts, seed) -> None:
    data, _, _ = encode_items(items, ending, client, key_stream(seed))
    check_everywhere(mutate(data, mutations), cuts, client, **opts)


# --- through the handshake -------------------------------------------------------------------

KEY = "dGhlIHNhbXBsZSBub25jZQ=="
REQUEST = hs.build_request("example.com", "/chat", key=KEY, subprotocols=["chat"])


@settings(FUZZ, max_examples=300)
@given(
    items=st.lists(ITEMS, max_size=4),
    mutations=st.one_of(st.just([]), MUTATIONS),
    cuts=CUTS,
    seed=st.integers(0, 2**32),
)
def test_server_handshake_then_frames(items, mutations, cuts, seed) -> None:
    frames, expected, _ = encode_items(items, None, False, key_stream(seed))
    data = mutate(REQUEST + frames, mutations) if mutations else REQUEST + frames
    outcomes = []
    for name in BACKENDS:
        conn = ServerConnection(backend=name)
        events: list = []
        written = bytearray()
        for piece in chunk(data, cuts):
            conn.receive_data(piece)
            for event in conn.events():
                events.append(event)
                if isinstance(event, Request):
                    written += conn.accept()
            written += conn.data_to_send()
            check_bounds(conn)
        conn.receive_data(b"")
        events += conn.events()
        written += conn.data_to_send()
        assert conn.state is State.CLOSED and conn.should_close_transport
        if not events or isinstance(events[0], Rejected):
            # Incomplete or invalid request: Rejected then Closed(1006), an HTTP error response unless cut short.
            assert [type(e) for e in events] == [Rejected, Closed]
            assert events[1] == Closed(1006, events[0].reason)
            if events[0].status:
                assert written.startswith(b"HTTP/1.1 %d " % events[0].status) and 400 <= events[0].status < 500
            else:
                assert written == b""
        else:
            assert isinstance(events[0], Request) and written.startswith(b"HTTP/1.1 101 ")
            head, _, rest = bytes(written).partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 101 ")
            parse_written(rest, client=False)
            assert isinstance(events[-1], Closed)
            if not mutations:
                assert norm(events[1:]) == norm(expected)
        outcomes.append((norm(e for e in events if not isinstance(e, Request)), bytes(written).partition(b"\r\n\r\n")[2]))
    assert all(o == outcomes[0] for o in outcomes)


@settings(FUZZ, max_examples=300)
@given(
    items=st.lists(ITEMS, max_size=4),
    mutations=st.one_of(st.just([]), MUTATIONS),
    cuts=CUTS,
)
def test_client_handshake_then_frames(items, mutations, cuts) -> None:
    frames, expected, _ = encode_items(items, None, True, key_stream(0))
    for name in BACKENDS:
        conn = ClientConnection("example.com", "/chat", subprotocols=["chat"], backend=name)
        reader = hs.HeadReader()
        reader.feed(conn.handshake_request())
        response = hs.accept(hs.parse_request(reader), "chat").serialize()
        data = mutate(response + frames, mutations) if mutations else response + frames
        events: list = []
        written = bytearray()
        for piece in chunk(data, cuts):
            conn.receive_data(piece)
            drain(conn, events, written)
        conn.receive_data(b"")
        drain(conn, events, written)
        assert conn.state is State.CLOSED and conn.should_close_transport
        if isinstance(events[0], Rejected):
            assert norm(events) == norm([events[0], Closed(1006, events[0].reason)]) and written == b""
        else:
            assert isinstance(events[0], Accepted) and isinstance(events[-1], Closed)
            parse_written(bytes(written), client=True)
            if not mutations:
                assert norm(events[1:]) == norm(expected)


# --- memory and time on large inputs ------------------------------------------------------------


@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize("stream", [False, True])
def test_buffers_stay_within_the_limit_while_a_message_arrives(backend_name: str, stream: bool) -> None:
    """A 64 KiB limit, a 64 KiB - 1 message in fragments fed in 1000-byte pieces, then one too big.

    ``drain`` checks the buffers after every piece; the oversized frame fails from its header.
    """
    limit = 65536
    conn = Connection(client=False, backend=backend_name, max_message_size=limit, stream=stream)
    keys = key_stream(1)
    data = b"".join(
        raw_frame(BINARY if i == 0 else CONT, bytes([i]) * 4096, False, 0, next(keys)) for i in range(15)
    )
    data += raw_frame(CONT, b"\x10" * 4095, True, 0, next(keys))
    header_end = len(data) + 14
    data += raw_frame(BINARY, b"x" * (limit + 1), True, 0, next(keys))  # over: refused from its header
    events: list = []
    written = bytearray()
    for i in range(0, len(data), 1000):
        conn.receive_data(data[i : i + 1000])
        drain(conn, events, written)
        if conn.state is State.CLOSED:
            fed = i + 1000
            break
    assert fed < header_end + 1000  # failed in the piece that completed the header
    if stream:
        assert sum(len(e.data) for e in events if isinstance(e, Fragment)) == 15 * 4096 + 4095
    else:
        assert isinstance(events[0], BinaryMessage) and len(events[0].data) == 15 * 4096 + 4095
    assert isinstance(events[-1], Closed) and events[-1].code == 1009


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_small_chunks_take_linear_time(backend_name: str) -> None:
    """200 KB of text fed 3 bytes at a time (split code points everywhere) finishes quickly."""
    import time

    text = ("€uro κόσμε 🙂 " * 10000)[:66000]
    payload = text.encode()
    data = raw_frame(TEXT, payload, True, 0, b"\x01\x02\x03\x04")
    conn = Connection(client=False, backend=backend_name, max_message_size=None)
    start = time.perf_counter()
    events: list = []
    for i in range(0, len(data), 3):
        conn.receive_data(data[i : i + 3])
        events += conn.events()
    assert time.perf_counter() - start < 10
    assert norm(events) == norm([TextMessage(text)])
