"""permessage-deflate (RFC 7692) in the sans-I/O core, on both backends and on each zlib (stdlib, zlib-ng).

The peer's side is built by hand with zlib (tests/frames_by_hand.py frames),
not with wsframe's own encoder, so that a mistake shared by both directions
cannot hide.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import zlib
from typing import Any, List, Optional, Sequence, Tuple

import pytest
from conftest import ZLIBS
from frames_by_hand import raw_frame
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wsframe.protocol import deflate
from wsframe.protocol import extensions as ext
from wsframe.protocol import handshake as hs
from wsframe.protocol.connection import ClientConnection, Connection, ServerConnection
from wsframe.protocol.deflate import ClientDeflateFactory, Deflate, PerMessageDeflate, ServerDeflateFactory
from wsframe.protocol.events import BinaryMessage, Closed, Fragment, Ping, Rejected, TextMessage

pytestmark = pytest.mark.usefixtures("zlib_impl")  # every test here, on each zlib in turn

KEY = b"\x37\xfa\x21\x3d"
RSV1 = 0x4
TRAILER = b"\x00\x00\xff\xff"


def compress(data: bytes, bits: int = 15, final: bool = False, obj: Any = None) -> bytes:
    """A peer's message payload: raw deflate, sync-flushed, trailer removed (RFC 7692 7.2.1)."""
    c = obj or zlib.compressobj(6, zlib.DEFLATED, -bits)
    out = c.compress(data) + c.flush(zlib.Z_FINISH if final else zlib.Z_SYNC_FLUSH)
    return out[:-4] if out.endswith(TRAILER) else out


def inflate(payload: bytes, obj: Any = None) -> bytes:
    d = obj or zlib.decompressobj(-15)
    return d.decompress(payload + TRAILER)  # type: ignore[no-any-return]


def open_server(backend: Any, offer: str = "permessage-deflate", settings: Deflate = Deflate(),
                **kw: Any) -> Tuple[ServerConnection, Optional[str]]:
    """A server connection opened by a request offering ``offer``; and its Sec-WebSocket-Extensions answer."""
    conn = ServerConnection(extensions=[ServerDeflateFactory(settings)], backend=backend.name, **kw)
    conn.receive_data(hs.build_request("h", "/", key=hs.new_key(), extensions=offer or None))
    list(conn.events())
    reader = hs.HeadReader()
    reader.feed(conn.accept())
    return conn, hs.parse_response(reader).headers.get("Sec-WebSocket-Extensions")


def server_frames(conn: Connection, data: bytes) -> List[Tuple[int, int, bytes]]:
    """(opcode, rsv, payload) of unmasked frames written by a server."""
    out = []
    reader = conn._backend.FrameReader(require_mask=False, allowed_rsv=7, validate_utf8=False)
    for frame in reader.feed(data):
        out.append((frame.opcode, frame.rsv, frame.payload))
    return out


def events_of(conn: Connection, data: bytes) -> List[Any]:
    conn.receive_data(data)
    return list(conn.events())


# -- negotiation, server side ------------------------------------------------------------

# (offer, the server's answer with the default settings or None for declined)
SERVER_TABLE = [
    ("permessage-deflate", "permessage-deflate; server_no_context_takeover"),
    ("permessage-deflate; client_max_window_bits",
     "permessage-deflate; server_no_context_takeover; client_max_window_bits=12"),
    ("permessage-deflate; client_max_window_bits=10",
     "permessage-deflate; server_no_context_takeover; client_max_window_bits=10"),
    ("permessage-deflate; client_max_window_bits=15",
     "permessage-deflate; server_no_context_takeover; client_max_window_bits=12"),
    ("permessage-deflate; server_max_window_bits=10",
     "permessage-deflate; server_no_context_takeover; server_max_window_bits=10"),
    ("permessage-deflate; server_max_window_bits=8",
     "permessage-deflate; server_no_context_takeover; server_max_window_bits=8"),
    ("permessage-deflate; server_no_context_takeover", "permessage-deflate; server_no_context_takeover"),
    ("permessage-deflate; client_no_context_takeover",
     "permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
    ('permessage-deflate; server_max_window_bits="11"',
     "permessage-deflate; server_no_context_takeover; server_max_window_bits=11"),
    # Invalid offers are declined (RFC 7692 5.1) ...
    ("permessage-deflate; unknown", None),
    ("permessage-deflate; server_no_context_takeover; server_no_context_takeover", None),
    ("permessage-deflate; client_max_window_bits; client_max_window_bits=10", None),
    ("permessage-deflate; server_no_context_takeover=1", None),
    ("permessage-deflate; client_no_context_takeover=yes", None),
    ("permessage-deflate; server_max_window_bits", None),
    ("permessage-deflate; server_max_window_bits=7", None),
    ("permessage-deflate; server_max_window_bits=16", None),
    ("permessage-deflate; server_max_window_bits=09", None),
    ("permessage-deflate; server_max_window_bits=abc", None),
    ("permessage-deflate; client_max_window_bits=16", None),
    ("permessage-deflate; client_max_window_bits=0", None),
    ("permessage-deflate; SERVER_MAX_WINDOW_BITS=10", None),
    ("x-webkit-deflate-frame", None),
    # ... and the next offer is a fallback.
    ("permessage-deflate; server_max_window_bits=16, permessage-deflate; client_max_window_bits",
     "permessage-deflate; server_no_context_takeover; client_max_window_bits=12"),
    ("foo, permessage-deflate", "permessage-deflate; server_no_context_takeover"),
    ("permessage-deflate; server_max_window_bits=9, permessage-deflate",
     "permessage-deflate; server_no_context_takeover; server_max_window_bits=9"),
]


@pytest.mark.parametrize("offer, answer", SERVER_TABLE)
def test_server_negotiation(offer: str, answer: Optional[str], backend: Any) -> None:
    conn, got = open_server(backend, offer)
    assert got == answer
    assert len(conn.extensions) == (answer is not None)


def test_server_negotiation_settings() -> None:
    def answer(settings: Deflate, offer: str) -> Optional[str]:
        header, _ = ext.negotiate_server([ServerDeflateFactory(settings)], hs.parse_extensions(offer))
        return header

    stateless = deflate.SETTINGS["stateless"]
    assert answer(stateless, "permessage-deflate; client_max_window_bits") == (
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits=15")
    context = deflate.SETTINGS["context"]
    # Our own window (12) is not announced unasked: a smaller window than the client allows is always fine.
    assert answer(context, "permessage-deflate; client_max_window_bits") == (
        "permessage-deflate; client_max_window_bits=12")
    assert answer(context, "permessage-deflate; server_max_window_bits=14") == (
        "permessage-deflate; server_max_window_bits=12")
    # Asking for a window the client did not offer to limit is not possible: its window stays 15.
    _, agreed = ext.negotiate_server([ServerDeflateFactory(context)], hs.parse_extensions("permessage-deflate"))
    assert isinstance(agreed[0], PerMessageDeflate) and agreed[0].recv_bits == 15


def test_without_factories_every_offer_is_declined(backend: Any) -> None:
    conn = ServerConnection(backend=backend.name)
    conn.receive_data(hs.build_request("h", "/", key=hs.new_key(), extensions="permessage-deflate"))
    list(conn.events())
    assert b"Sec-WebSocket-Extensions" not in conn.accept()
    assert conn.extensions == []


# -- negotiation, client side ------------------------------------------------------------

def client_response(conn: ClientConnection, extensions: Optional[str]) -> bytes:
    request = hs.HeadReader()
    request.feed(conn.handshake_request())
    req = hs.parse_request(request)
    headers = [("Sec-WebSocket-Extensions", extensions)] if extensions else []
    return hs.accept(req, None, None, headers).serialize() if not extensions else _raw_101(req, extensions)


def _raw_101(req: hs.Request, extensions: str) -> bytes:
    key = req.headers["Sec-WebSocket-Key"]
    return (f"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {hs.accept_key(key)}\r\nSec-WebSocket-Extensions: {extensions}\r\n\r\n").encode()


def test_client_offer() -> None:
    assert ext.offer_header([ClientDeflateFactory()]) == (
        "permessage-deflate; client_no_context_takeover; server_max_window_bits=12; client_max_window_bits")
    assert ext.offer_header([ClientDeflateFactory(deflate.SETTINGS["context"])]) == (
        "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12")
    assert ext.offer_header([ClientDeflateFactory(deflate.SETTINGS["stateless"])]) == (
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits")


# (answer, accepted?) for the default offer
CLIENT_TABLE = [
    ("permessage-deflate; server_max_window_bits=12", True),
    ("permessage-deflate; server_max_window_bits=9; client_max_window_bits=10", True),
    ("permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=8", True),
    ("permessage-deflate", True),  # server_max_window_bits=12 asked for, not answered: the server may use 15
    ("permessage-deflate; server_max_window_bits=13", False),  # more than offered
    ("permessage-deflate; server_max_window_bits=12; server_max_window_bits=12", False),
    ("permessage-deflate; server_max_window_bits=12; client_max_window_bits", False),  # a value is needed
    ("permessage-deflate; server_max_window_bits=12; unknown=1", False),
    ("permessage-deflate; server_max_window_bits=12; server_no_context_takeover=1", False),
    ("permessage-deflate; server_max_window_bits=12, permessage-deflate; server_max_window_bits=12", False),
    ("permessage-deflate; server_max_window_bits=7", False),
    ("x-unknown", False),
]


@pytest.mark.parametrize("answer, accepted", CLIENT_TABLE)
def test_client_negotiation(answer: str, accepted: bool, backend: Any) -> None:
    conn = ClientConnection("h", extensions=[ClientDeflateFactory()], backend=backend.name)
    events = events_of(conn, client_response(conn, answer))
    if accepted:
        assert len(conn.extensions) == 1 and conn.state.name == "OPEN"
    else:
        assert isinstance(events[0], Rejected) and isinstance(events[-1], Closed)
        assert conn.extensions == []


def test_client_inflates_a_full_window_when_the_server_ignores_its_request(backend: Any) -> None:
    conn = ClientConnection("h", extensions=[ClientDeflateFactory()], backend=backend.name)
    events_of(conn, client_response(conn, "permessage-deflate"))
    (pmd,) = conn.extensions
    assert isinstance(pmd, PerMessageDeflate) and pmd.recv_bits == 15
    far = os.urandom(20000)
    data = compress(far + b"-" + far)  # refers back 20 001 bytes: a 2**15 window
    assert events_of(conn, raw_frame(0x2, data, rsv=RSV1)) == [BinaryMessage(far + b"-" + far)]


def test_client_answer_without_extension_is_uncompressed(backend: Any) -> None:
    conn = ClientConnection("h", extensions=[ClientDeflateFactory()], backend=backend.name)
    events_of(conn, client_response(conn, None))
    assert conn.extensions == [] and conn.state.name == "OPEN"
    frames = conn._backend.FrameReader(require_mask=True).feed(conn.send_text("x" * 5000))
    assert frames[0].rsv == 0


# -- messages ------------------------------------------------------------------------------

@pytest.mark.parametrize("bits", range(8, 16))
@pytest.mark.parametrize("takeover", [True, False])
def test_round_trips_at_every_window_size(bits: int, takeover: bool, backend: Any) -> None:
    """Client and server both compress and inflate, several messages, context kept or not."""
    settings = Deflate(no_context_takeover=not takeover, peer_no_context_takeover=not takeover,
                       max_window_bits=bits, peer_max_window_bits=bits, threshold=0)
    client = ClientConnection("h", extensions=[ClientDeflateFactory(settings)], backend=backend.name)
    server = ServerConnection(extensions=[ServerDeflateFactory(settings)], backend=backend.name)
    server.receive_data(client.handshake_request())
    list(server.events())
    client.receive_data(server.accept())
    list(client.events())
    assert client.extensions and server.extensions
    messages: List[Any] = ["", "a", "héllo ✓ " * 300, os.urandom(3000), b"\x00" * 70000, "abc" * 5000]
    for sender, receiver in ((client, server), (server, client)):
        for message in messages:
            data = sender.send(message)
            rsv = data[0] & 0x70
            assert rsv == (0x40 if bits > 8 else 0)  # zlib cannot compress with 8 bits: uncompressed then
            events = events_of(receiver, data)
            assert [e.data for e in events] == [message]


def test_server_inflates_peer_messages_with_context_takeover(backend: Any) -> None:
    conn, _ = open_server(backend, "permessage-deflate")
    peer = zlib.compressobj(6, zlib.DEFLATED, -15)
    texts = ["the same words again " * 20] * 5
    payloads = [compress(t.encode(), obj=peer) for t in texts]
    assert len(payloads[1]) < len(payloads[0]) / 3  # the later ones refer back to the first
    data = b"".join(raw_frame(0x1, p, rsv=RSV1, key=KEY) for p in payloads)
    assert [e.data for e in events_of(conn, data)] == texts


def test_server_output_has_no_context_takeover_and_no_trailer(backend: Any) -> None:
    conn, _ = open_server(backend, "permessage-deflate")
    text = "x" * 4000
    frames = server_frames(conn, conn.send_text(text) + conn.send_text(text))
    for opcode, rsv, payload in frames:
        assert (opcode, rsv) == (0x1, RSV1)
        assert not payload.endswith(TRAILER)
        assert inflate(payload) == text.encode()  # each inflates alone: no context taken over
    assert frames[0][2] == frames[1][2]


def test_threshold_and_per_message_choice(backend: Any) -> None:
    conn, _ = open_server(backend, "permessage-deflate")
    small, large = "s" * 1023, "l" * 1024
    rsvs = [server_frames(conn, data)[0][1] for data in (
        conn.send_text(small), conn.send_text(large), conn.send_text(small, compress=True),
        conn.send_text(large, compress=False), conn.send_binary(b"b" * 2000), conn.send(b"b" * 2000, compress=False))]
    assert rsvs == [0, RSV1, RSV1, 0, RSV1, 0]


def test_send_parts_goes_through_the_extension(backend: Any) -> None:
    """With compression agreed, a large message is one (compressed, or not when asked) frame: the
    extension encodes it, so its payload is never sent as the caller's bytes."""
    conn, _ = open_server(backend, "permessage-deflate")
    big = b"b" * 70000
    for compress, rsv in ((None, RSV1), (False, 0)):
        parts = conn.send_parts(big, compress)
        assert len(parts) == 1
        (opcode, got_rsv, payload), = server_frames(conn, parts[0])
        assert (opcode, got_rsv) == (2, rsv)
        assert (inflate(payload) if rsv else payload) == big


def test_uncompressed_messages_from_the_peer(backend: Any) -> None:
    conn, _ = open_server(backend, "permessage-deflate")
    data = raw_frame(0x1, b"plain", key=KEY) + raw_frame(0x2, compress(b"packed"), rsv=RSV1, key=KEY)
    assert [e.data for e in events_of(conn, data)] == ["plain", b"packed"]


def test_fragmented_compressed_message_split_at_every_byte(backend: Any) -> None:
    text = ("fragmented, compressed, héllo ✓ " * 40).encode()
    packed = compress(text)
    parts = [packed[:10], packed[10:11], b"", packed[11:]]
    data = b"".join(
        raw_frame(0x1 if i == 0 else 0x0, p, fin=i == len(parts) - 1, rsv=RSV1 if i == 0 else 0, key=KEY)
        for i, p in enumerate(parts)
    ) + raw_frame(0x9, b"ping", key=KEY)
    for split in range(1, len(data)):  # (b"" would be EOF)
        conn, _ = open_server(backend)
        events = events_of(conn, data[:split]) + events_of(conn, data[split:])
        assert [type(e) for e in events] == [TextMessage, Ping], split
        assert events[0].data == text.decode()


def test_control_frames_between_compressed_fragments(backend: Any) -> None:
    conn, _ = open_server(backend)
    packed = compress(b"abcdef" * 100)
    data = (raw_frame(0x2, packed[:5], fin=False, rsv=RSV1, key=KEY) + raw_frame(0x9, b"1", key=KEY)
            + raw_frame(0x0, packed[5:], key=KEY))
    events = events_of(conn, data)
    assert [type(e) for e in events] == [Ping, BinaryMessage] and events[1].data == b"abcdef" * 100
    assert server_frames(conn, conn.data_to_send()) == [(0xA, 0, b"1")]  # pongs are never compressed


def test_sending_compressed_fragments(backend: Any) -> None:
    conn, _ = open_server(backend)
    data = conn.send_fragment("a" * 2000) + conn.send_ping(b"p") + conn.send_fragment("b" * 5) \
        + conn.send_fragment("c", final=True)
    frames = server_frames(conn, data)
    assert [(op, rsv) for op, rsv, _ in frames] == [(0x1, RSV1), (0x9, 0), (0x0, 0), (0x0, 0)]
    payload = b"".join(p for op, _, p in frames if op != 0x9)
    assert inflate(payload) == b"a" * 2000 + b"b" * 5 + b"c"


def test_stream_mode_delivers_inflated_fragments(backend: Any) -> None:
    conn, _ = open_server(backend, stream=True)
    packed = compress("héllo wörld ✓".encode() * 50)
    data = raw_frame(0x1, packed[:7], fin=False, rsv=RSV1, key=KEY) + raw_frame(0x0, packed[7:], key=KEY)
    events = events_of(conn, data)
    assert all(isinstance(e, Fragment) for e in events)
    assert "".join(e.data for e in events) == "héllo wörld ✓" * 50


def test_peer_ending_its_stream_with_a_final_block(backend: Any) -> None:
    conn, _ = open_server(backend, "permessage-deflate")
    data = raw_frame(0x1, compress(b"first", final=True), rsv=RSV1, key=KEY) \
        + raw_frame(0x1, compress(b"second"), rsv=RSV1, key=KEY)
    assert [e.data for e in events_of(conn, data)] == ["first", "second"]


def test_the_rfc_7692_example_of_a_final_block_then_an_empty_stored_block(backend: Any) -> None:
    """RFC 7692 7.2.3.4: "Hello" in a BFINAL block, then 0x00, completed by the receiver's trailer."""
    conn, _ = open_server(backend)
    assert events_of(conn, raw_frame(0x1, bytes.fromhex("f348cdc9c9070000"), rsv=RSV1, key=KEY)) == [
        TextMessage("Hello")]


def test_context_is_kept_across_a_final_block(backend: Any) -> None:
    """BFINAL ends the peer's deflate stream, not its window (RFC 7692 7.2.2): the next message may refer back."""
    conn, _ = open_server(backend)
    text = b"the quick brown fox jumps over the lazy dog " * 15
    later = zlib.compressobj(6, zlib.DEFLATED, -15, zdict=text)
    refers_back = compress(text, obj=later)
    assert len(refers_back) < 20
    data = raw_frame(0x2, compress(text, final=True), rsv=RSV1, key=KEY) + raw_frame(0x2, refers_back, rsv=RSV1, key=KEY)
    assert events_of(conn, data) == [BinaryMessage(text), BinaryMessage(text)]


def test_data_after_a_final_block_fails_at_once(backend: Any) -> None:
    """Not at the end of the message: the first frame after the final block that carries data fails it."""
    conn, _ = open_server(backend)
    first = raw_frame(0x2, compress(b"x", final=True), fin=False, rsv=RSV1, key=KEY)
    events = events_of(conn, first + raw_frame(0x0, b"", fin=False, key=KEY))
    assert events == []  # empty frames after it are fine
    events = events_of(conn, raw_frame(0x0, b"AAAAAAAA", fin=False, key=KEY))
    assert events[-1].code == 1007


def test_empty_compressed_message(backend: Any) -> None:
    conn, _ = open_server(backend)
    data = raw_frame(0x1, b"\x00", rsv=RSV1, key=KEY) + raw_frame(0x2, compress(b""), rsv=RSV1, key=KEY)
    assert [e.data for e in events_of(conn, data)] == ["", b""]
    frames = server_frames(conn, conn.send_text("", compress=True))
    assert frames[0][1] == RSV1 and inflate(frames[0][2]) == b""


# -- bad input -----------------------------------------------------------------------------

@pytest.mark.parametrize("frame, code", [
    (raw_frame(0x9, b"", rsv=RSV1, key=KEY), 1002),  # a compressed control frame
    (raw_frame(0x1, compress(b"ab"), fin=False, rsv=RSV1, key=KEY) + raw_frame(0x0, b"", rsv=RSV1, key=KEY), 1002),
    (raw_frame(0x1, b"x", rsv=0x2, key=KEY), 1002),  # RSV2: nobody agreed to it
    (raw_frame(0x2, b"\xff\xff\xff\xff", rsv=RSV1, key=KEY), 1007),  # not deflate data
    (raw_frame(0x1, compress(b"ok \xff"), rsv=RSV1, key=KEY), 1007),  # inflates to invalid UTF-8
    (raw_frame(0x1, compress(b"\xe2\x82"), rsv=RSV1, key=KEY), 1007),  # ends inside a character
    (raw_frame(0x2, compress(b"x", final=True) + b"junk", rsv=RSV1, key=KEY), 1007),
])
def test_bad_compressed_input(frame: bytes, code: int, backend: Any) -> None:
    conn, _ = open_server(backend)
    events = events_of(conn, frame)
    assert isinstance(events[-1], Closed) and events[-1].code == code
    assert not any(isinstance(e, (TextMessage, BinaryMessage)) for e in events)


def test_rsv1_without_negotiation_is_refused(backend: Any) -> None:
    conn, answer = open_server(backend, "")
    assert answer is None
    events = events_of(conn, raw_frame(0x1, compress(b"x"), rsv=RSV1, key=KEY))
    assert events[-1] == Closed(1002, events[-1].reason)


def test_invalid_utf8_fails_before_the_message_ends(backend: Any) -> None:
    """Inflated text is checked as it inflates: 1007 on the first fragment, the rest never needed."""
    conn, _ = open_server(backend)
    packed = compress(b"\xc0\xaf" + b"x" * 10000)
    events = events_of(conn, raw_frame(0x1, packed, fin=False, rsv=RSV1, key=KEY))
    assert events[-1].code == 1007


@pytest.mark.parametrize("size", [2**20, 2**20 + 1])
def test_inflated_size_limit(size: int, backend: Any) -> None:
    conn, _ = open_server(backend)  # max_message_size defaults to 1 MiB
    data = os.urandom(size)  # incompressible: its compressed form is a little longer than itself
    events = events_of(conn, raw_frame(0x2, compress(data), rsv=RSV1, key=KEY))
    if size <= 2**20:
        assert events == [BinaryMessage(data)]
    else:
        assert events[-1].code == 1009


def test_a_huge_limit_does_not_overflow_the_compiled_reader(backend: Any) -> None:
    conn, _ = open_server(backend, max_message_size=2**63 - 1)
    assert events_of(conn, raw_frame(0x2, compress(b"fine"), rsv=RSV1, key=KEY)) == [BinaryMessage(b"fine")]


def test_uncompressed_message_over_the_limit_on_a_deflate_connection(backend: Any) -> None:
    conn, _ = open_server(backend, max_message_size=1000)
    events = events_of(conn, raw_frame(0x2, b"x" * 1001, key=KEY))  # within the reader's slack for deflate
    assert events[-1].code == 1009


def test_fragmented_inflated_size_limit(backend: Any) -> None:
    conn, _ = open_server(backend, max_message_size=10_000)
    packed = compress(b"\x00" * 20_000)
    data = raw_frame(0x2, packed[:20], fin=False, rsv=RSV1, key=KEY) + raw_frame(0x0, packed[20:], key=KEY)
    assert events_of(conn, data)[-1].code == 1009


BOMB = textwrap.dedent("""
    import resource, sys, zlib
    from frames_by_hand import raw_frame
    from wsframe.protocol import handshake as hs
    from wsframe.protocol.connection import ServerConnection
    from wsframe.protocol.deflate import ZLIB, ServerDeflateFactory
    assert ZLIB == sys.argv[2], ZLIB
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = bytes(2**20)
    bomb = b"".join([c.compress(zeros) for _ in range(256)]) + c.flush(zlib.Z_SYNC_FLUSH)  # 256 MiB in ~260 KB
    del zeros
    frame = raw_frame(0x2, bomb[:-4], rsv=4, key=b"abcd")
    conn = ServerConnection(extensions=[ServerDeflateFactory()], backend=sys.argv[1])
    conn.receive_data(hs.build_request("h", "/", key=hs.new_key(), extensions="permessage-deflate"))
    list(conn.events()); conn.accept()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    conn.receive_data(frame)
    events = list(conn.events())
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(len(bomb), getattr(events[-1], "code", 0), (after - before) // 1024)
""")


def test_a_decompression_bomb_costs_at_most_the_limit(backend: Any, zlib_impl: str) -> None:
    """256 MiB in a 260 KB message: refused with 1009 with the peak RSS up by a few MiB (the 1 MiB limit)."""
    tests = os.path.dirname(__file__)
    out = subprocess.run([sys.executable, "-c", BOMB, backend.name, zlib_impl], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "PYTHONPATH": tests, "WSFRAME_ZLIB": zlib_impl},
                         check=True).stdout.split()
    compressed, code, grown_mib = int(out[0]), int(out[1]), int(out[2])
    assert compressed < 2**20 and code == 1009
    assert grown_mib < 16, f"peak RSS grew by {grown_mib} MiB"


# -- which zlib ----------------------------------------------------------------------------

CHOICE = "import wsframe; from wsframe.protocol import deflate; print(wsframe.ZLIB, deflate._z.__name__)"


@pytest.mark.parametrize("wanted", ["", "zlib", "zlib-ng"])
def test_the_zlib_is_chosen_at_import(wanted: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "WSFRAME_ZLIB"}
    if wanted:
        env["WSFRAME_ZLIB"] = wanted
    out = subprocess.run([sys.executable, "-c", CHOICE], capture_output=True, text=True, timeout=60, env=env)
    if wanted == "zlib-ng" and "zlib-ng" not in ZLIBS:
        assert out.returncode != 0 and "zlib_ng" in out.stderr  # asked for, not installed: an import error
        return
    expected = wanted or ZLIBS[-1]  # unasked: zlib-ng where installed
    assert out.stdout.split() == [expected, "zlib_ng.zlib_ng" if expected == "zlib-ng" else "zlib"], out.stderr


def test_an_unknown_zlib_is_refused_at_import() -> None:
    out = subprocess.run([sys.executable, "-c", CHOICE], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "WSFRAME_ZLIB": "zopfli"})
    assert out.returncode != 0 and "WSFRAME_ZLIB must be 'zlib' or 'zlib-ng', not 'zopfli'" in out.stderr


def test_the_default_level_is_the_fast_one_of_the_compressors_zlib(backend: Any, zlib_impl: str) -> None:
    fast = {"zlib": 1, "zlib-ng": 2}[zlib_impl]
    assert Deflate().level is None
    conn, _ = open_server(backend)  # shared compressors: ZLIB's
    assert conn.extensions[0].level == fast  # type: ignore[attr-defined]
    conn, _ = open_server(backend, settings=Deflate(level=6))
    assert conn.extensions[0].level == 6  # type: ignore[attr-defined]
    conn, _ = open_server(backend, settings=Deflate(no_context_takeover=False))  # its own: the stdlib's
    assert conn.extensions[0].level == 1  # type: ignore[attr-defined]
    client = ClientDeflateFactory(Deflate(level=None)).accept([])
    assert client.level == fast  # type: ignore[attr-defined]


def module_of(obj: Any) -> str:
    return type(obj).__module__.partition(".")[0]


def test_what_a_connection_keeps_is_the_stdlibs_and_the_rest_zlib_s(backend: Any, zlib_impl: str) -> None:
    """zlib-ng's larger state is used only where nothing outlives a message."""
    chosen = {"zlib": "zlib", "zlib-ng": "zlib_ng"}[zlib_impl]
    packed = compress(b"y" * 3000)
    first = raw_frame(0x1, packed[:10], fin=False, rsv=RSV1, key=KEY)
    for offer, kept in [("permessage-deflate; client_no_context_takeover", chosen), ("permessage-deflate", "zlib")]:
        conn, _ = open_server(backend, offer)
        pmd = conn.extensions[0]
        assert isinstance(pmd, PerMessageDeflate)
        events_of(conn, first)  # mid-message: the inflater exists
        assert module_of(pmd._decompressor) == kept
        assert events_of(conn, raw_frame(0x0, packed[10:], key=KEY)) == [TextMessage("y" * 3000)]
    conn, _ = open_server(backend)
    conn.send_text("z" * 3000)  # the shared compressor went back to its pool
    idle = [obj for pool in deflate._pools.values() for obj in pool._idle]
    assert idle and {module_of(obj) for obj in idle} == {chosen}
    conn, _ = open_server(backend, settings=deflate.SETTINGS["context"])
    conn.send_text("z" * 3000)
    assert module_of(conn.extensions[0]._compressor) == "zlib"  # type: ignore[attr-defined]


# -- memory --------------------------------------------------------------------------------

def test_zlib_state_is_made_lazily_and_dropped_without_context_takeover(backend: Any) -> None:
    conn, _ = open_server(backend, "permessage-deflate; client_no_context_takeover")
    pmd = conn.extensions[0]
    assert isinstance(pmd, PerMessageDeflate)
    assert pmd._compressor is None and pmd._decompressor is None  # nothing before the first message
    events_of(conn, raw_frame(0x1, compress(b"y" * 3000), rsv=RSV1, key=KEY))
    conn.send_text("z" * 3000)
    assert pmd._compressor is None and pmd._decompressor is None  # stateless both ways: nothing kept


def test_context_takeover_keeps_its_own_state(backend: Any) -> None:
    conn, _ = open_server(backend, "permessage-deflate", settings=deflate.SETTINGS["context"])
    pmd = conn.extensions[0]
    assert isinstance(pmd, PerMessageDeflate)
    events_of(conn, raw_frame(0x1, compress(b"y" * 3000), rsv=RSV1, key=KEY))
    conn.send_text("z" * 3000)
    assert pmd._compressor is not None and pmd._decompressor is not None
    events_of(conn, raw_frame(0x8, b"\x03\xe8", key=KEY))
    assert pmd._compressor is None and pmd._decompressor is None  # released when the connection ends


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError):
        Deflate(max_window_bits=16)
    with pytest.raises(ValueError):
        Deflate(peer_max_window_bits=7)
    with pytest.raises(TypeError):
        Deflate(threshold="1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="compression must be one of"):
        deflate.settings_for("gzip")
    with pytest.raises(TypeError):
        deflate.settings_for(15)  # type: ignore[arg-type]
    assert deflate.settings_for(None) is None and deflate.settings_for("deflate") == Deflate()


# -- both backends, the same answers --------------------------------------------------------

@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=st.binary(max_size=300), cuts=st.lists(st.integers(0, 400), max_size=4),
       opcode=st.sampled_from([0x1, 0x2]), valid=st.booleans())
def test_backends_agree_on_compressed_input(payload: bytes, cuts: Sequence[int], opcode: int, valid: bool) -> None:
    """Random (or randomly compressed) payloads split anywhere: the same events from both backends."""
    from conftest import BACKENDS
    from wsframe.protocol import backend as _backend

    body = compress(payload) if valid else payload
    data = raw_frame(opcode, body, rsv=RSV1, key=KEY)
    points = sorted({min(c, len(data)) for c in cuts})
    chunks = [data[a:b] for a, b in zip([0] + points, points + [len(data)])]
    results = []
    for name in BACKENDS:
        conn, _ = open_server(_backend.load(name))
        events: List[Any] = []
        for chunk in chunks:
            if chunk:  # (b"" would be EOF)
                events += events_of(conn, chunk)
        results.append(events)
    assert all(r == results[0] for r in results)
    if valid and opcode == 0x2:
        assert results[0] == [BinaryMessage(payload)]


# -- broadcast -------------------------------------------------------------------------------

def test_a_shared_message_is_compressed_once_per_group(backend: Any) -> None:
    from wsframe.protocol.connection import SharedMessage

    context = deflate.SETTINGS["context"]
    plain = [open_server(backend, "")[0] for _ in range(2)]
    stateless = [open_server(backend, "permessage-deflate; server_no_context_takeover", context)[0]
                 for _ in range(2)]
    own = [open_server(backend, "permessage-deflate", context)[0] for _ in range(2)]
    text = "broadcast to everyone " * 100
    shared = SharedMessage(text)
    frames = {id(c): c.send_encoded(shared) for c in plain + stateless + own}
    assert frames[id(plain[0])] is frames[id(plain[1])]
    assert frames[id(stateless[0])] is frames[id(stateless[1])]  # compressed once for both
    assert frames[id(own[0])] is not frames[id(own[1])]  # context takeover: each its own compressor
    for conn in plain + stateless + own:
        ((opcode, rsv, payload),) = server_frames(conn, frames[id(conn)])
        assert opcode == 0x1 and rsv == (0 if conn in plain else RSV1)
        assert (payload if conn in plain else inflate(payload)) == text.encode()


@pytest.mark.parametrize("bad, code", [
    (raw_frame(0x2, b"\xff\xff\xff\xff", rsv=RSV1, key=KEY), 1007),  # not deflate data
    (raw_frame(0x1, compress(b"ok \xff"), rsv=RSV1, key=KEY), 1007),  # inflates to invalid UTF-8
    (raw_frame(0x2, compress(b"z" * 5000), rsv=RSV1, key=KEY), 1009),  # inflates past max_message_size
])
def test_take_messages_leaves_a_failure_for_after_the_messages_before_it(bad: bytes, code: int, backend: Any) -> None:
    """A bad compressed message behind good ones: the good ones are taken, and nothing (no close
    frame) is written until the driver asks for events again, so its answers to them go out first."""
    conn, _ = open_server(backend, max_message_size=4096)
    good = raw_frame(0x1, compress(b"first"), rsv=RSV1, key=KEY) + raw_frame(0x2, b"plain", key=KEY)
    conn.receive_data(good + bad + raw_frame(0x1, b"never", key=KEY))
    assert conn.take_messages() == ["first", b"plain"]
    assert conn.data_to_send() == b""
    assert conn.has_pending_input
    assert conn.take_messages() == []  # the failure is next: only events() gives it
    events = list(conn.events())
    assert [type(e) for e in events] == [Closed] and events[0].code == code
    assert [f[0] for f in server_frames(conn, conn.data_to_send())] == [0x8]
    assert conn.take_messages() == [] and not conn.has_pending_input
