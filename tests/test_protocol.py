"""RFC 6455 conformance of the sans-I/O connection (sections 4, 5, 7 and 8), both roles, both backends.

The core of this file is a table: each case is a stream of frames the peer
sends, the exact events the connection must report and the exact frames it
must write back (pongs, close replies, the close frame failing the connection
with 1002 / 1007 / 1009). Every case is fed whole, one byte at a time and in
seeded random chunkings, as the server and as the client where the rule applies
to both, and always ends with EOF: an accepted stream without a close frame
must end in ``Closed(1006)`` with nothing written for it.

Frames are built here with an independent encoder (:func:`raw_frame`) so that
frames the library refuses to produce (reserved opcodes, fragmented or
oversized control frames, wrong masking) can be fed to it.
"""

from __future__ import annotations

import random
from typing import Any, List, NamedTuple, Optional, Sequence, Tuple

import pytest
from frames_by_hand import naive_mask, raw_frame

from wsframe.protocol import handshake as hs
from wsframe.protocol.connection import (
    DEFAULT_MAX_FRAGMENTS,
    DEFAULT_MAX_MESSAGE_SIZE,
    ClientConnection,
    Connection,
    ServerConnection,
    State,
    is_valid_close_code,
)
from wsframe.protocol.errors import InvalidState
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

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
PEER_KEY = b"\x37\xfa\x21\x3d"  # RFC 6455 section 5.7's example key
ROLES = ("server", "client")
NEVER_SENT = (1005, 1006, 1015)


# --- an independent frame encoder / decoder ------------------------------------------


class Out(NamedTuple):
    """A frame parsed from what the connection wrote."""

    opcode: int
    fin: bool
    rsv: int
    key: Optional[bytes]
    payload: bytes
    raw: bytes


def parse_frames(data: bytes) -> List[Out]:
    """Split bytes written by a connection into frames; fails on trailing garbage."""
    frames = []
    pos = 0
    while pos < len(data):
        assert len(data) - pos >= 2, data[pos:]
        b0, b1 = data[pos], data[pos + 1]
        n, p = b1 & 0x7F, pos + 2
        if n == 126:
            n, p = int.from_bytes(data[p : p + 2], "big"), p + 2
        elif n == 127:
            n, p = int.from_bytes(data[p : p + 8], "big"), p + 8
        key = None
        if b1 & 0x80:
            key, p = bytes(data[p : p + 4]), p + 4
        assert len(data) - p >= n, "truncated frame written"
        payload = bytes(data[p : p + n])
        if key is not None:
            payload = naive_mask(payload, key)
        frames.append(Out(b0 & 0x0F, bool(b0 & 0x80), (b0 >> 4) & 7, key, payload, bytes(data[pos : p + n])))
        pos = p + n
    return frames


def check_written(data: bytes, role: str, expected: Sequence[Tuple[int, bytes]]) -> None:
    """``data`` is exactly the frames ``expected`` ((opcode, payload), final, no RSV), masked iff client."""
    frames = parse_frames(data)
    assert [(f.opcode, f.payload) for f in frames] == list(expected)
    for f in frames:
        assert f.fin and f.rsv == 0
        if role == "client":
            assert f.key is not None, "a client frame must be masked"
            assert f.raw == raw_frame(f.opcode, f.payload, key=f.key)
        else:
            assert f.key is None, "a server frame must not be masked"
            assert f.raw == raw_frame(f.opcode, f.payload)
        if f.opcode == CLOSE:
            check_close_payload(f.payload)


def check_close_payload(payload: bytes) -> None:
    """A close frame we wrote: empty, or a sendable code and at most 123 bytes of UTF-8."""
    assert len(payload) != 1 and len(payload) <= 125
    if payload:
        code = int.from_bytes(payload[:2], "big")
        assert code not in NEVER_SENT and is_valid_close_code(code), code
        payload[2:].decode("utf-8")


def norm(events: Sequence[Any]) -> List[Tuple[str, tuple]]:
    """Events as (kind, fields): NamedTuples alone would compare Ping(b"x") equal to Pong(b"x")."""
    return [(type(e).__name__, tuple(e)) for e in events]


# --- the conformance table ---------------------------------------------------------


class F(NamedTuple):
    """A frame the peer sends. ``masked=None``: masked as the peer's role requires."""

    opcode: int
    payload: bytes = b""
    fin: bool = True
    rsv: int = 0
    masked: Optional[bool] = None
    length: Optional[int] = None  # header length when it differs from the payload's
    length_form: Optional[int] = None
    key: bytes = PEER_KEY  # the mask key when masked


class Fail(NamedTuple):
    """Expected last event: Closed(code, some reason), and a close frame with that code and reason written."""

    code: int


class Case(NamedTuple):
    id: str
    frames: Tuple[F, ...]
    events: Tuple[Any, ...]  # Event values, ending with Fail(...) when the connection fails
    written: Tuple[Tuple[int, bytes], ...] = ()  # frames written before any failure close
    opts: dict = {}
    roles: Tuple[str, ...] = ROLES
    # Where the failure is decided: (frame index, byte offset in its payload) -> the Closed event
    # appears exactly when that byte arrives, not before; (frame index, "header") -> by the end of
    # that frame's header, before any payload byte.
    decide: Optional[Tuple[int, Any]] = None


def wire(frames: Sequence[F], role: str) -> Tuple[bytes, List[Tuple[int, int]]]:
    """The bytes the peer of ``role`` sends, and (header start, payload start) of each frame."""
    out = bytearray()
    spans = []
    for f in frames:
        masked = (role == "server") if f.masked is None else f.masked
        data = raw_frame(
            f.opcode, f.payload, f.fin, f.rsv, f.key if masked else None, form=f.length_form, length=f.length
        )
        header = len(data) - len(f.payload)
        spans.append((len(out), len(out) + header))
        out += data
    return bytes(out), spans


def close_body(code: int, reason: bytes = b"") -> bytes:
    return code.to_bytes(2, "big") + reason


CASES: List[Case] = []


def case(id: str, frames, events, written=(), **kw) -> None:
    CASES.append(Case(id, tuple(frames), tuple(events), tuple(written), **kw))


# Section 5.6: data frames.
case("text", [F(TEXT, b"hello")], [TextMessage("hello")])
case("text-multibyte", [F(TEXT, "κόσμε 🙂".encode())], [TextMessage("κόσμε 🙂")])
case("binary", [F(BINARY, b"\x00\xff\x80\xc0")], [BinaryMessage(b"\x00\xff\x80\xc0")])
case("text-empty", [F(TEXT)], [TextMessage("")])
case("binary-empty", [F(BINARY)], [BinaryMessage(b"")])
case("text-125", [F(TEXT, b"a" * 125)], [TextMessage("a" * 125)])
case("text-126-16bit-length", [F(TEXT, b"b" * 126)], [TextMessage("b" * 126)])
case("binary-65535", [F(BINARY, b"\x07" * 65535)], [BinaryMessage(b"\x07" * 65535)])
case("binary-65536-64bit-length", [F(BINARY, b"\x08" * 65536)], [BinaryMessage(b"\x08" * 65536)])
case(
    "several-messages",
    [F(TEXT, b"one"), F(BINARY, b"two"), F(TEXT, b""), F(TEXT, b"four")],
    [TextMessage("one"), BinaryMessage(b"two"), TextMessage(""), TextMessage("four")],
)
case("text-max-code-point", [F(TEXT, b"\xf4\x8f\xbf\xbf")], [TextMessage("\U0010ffff")])
case("text-before-surrogates", [F(TEXT, b"\xed\x9f\xbf\xee\x80\x80\xef\xbf\xbf")], [TextMessage("\ud7ff\ue000\uffff")])
case("text-nul", [F(TEXT, b"a\x00b")], [TextMessage("a\x00b")])

# Section 5.1 / 5.3: masking by role.
case("server-unmasked-text", [F(TEXT, b"hi", masked=False)], [Fail(1002)], roles=("server",), decide=(0, "header"))
case("server-unmasked-ping", [F(PING, b"hi", masked=False)], [Fail(1002)], roles=("server",), decide=(0, "header"))
case(
    "server-unmasked-after-message",
    [F(TEXT, b"ok"), F(BINARY, b"x", masked=False)],
    [TextMessage("ok"), Fail(1002)],
    roles=("server",),
)
case("client-masked-text", [F(TEXT, b"hi", masked=True)], [Fail(1002)], roles=("client",), decide=(0, "header"))
case(
    "client-masked-close",
    [F(CLOSE, close_body(1000), masked=True)],
    [Fail(1002)],
    roles=("client",),
    decide=(0, "header"),
)
case(
    "server-masked-zero-key",
    [F(TEXT, b"zero", key=b"\0\0\0\0"), F(PING, b"z", key=b"\0\0\0\0")],
    [TextMessage("zero"), Ping(b"z")],
    [(PONG, b"z")],
    roles=("server",),
)
case(
    "client-masked-continuation",
    [F(TEXT, b"a", fin=False), F(CONT, b"b", masked=True)],
    [Fail(1002)],
    roles=("client",),
    decide=(1, "header"),
)

# Section 5.2: RSV bits (no extension is negotiated) and reserved opcodes.
for rsv in (1, 2, 4, 7):
    case(f"text-rsv{rsv}", [F(TEXT, b"x", rsv=rsv)], [Fail(1002)], decide=(0, "header"))
case("ping-rsv4", [F(PING, b"x", rsv=4)], [Fail(1002)], decide=(0, "header"))
case("close-rsv2", [F(CLOSE, close_body(1000), rsv=2)], [Fail(1002)], decide=(0, "header"))
case(
    "continuation-rsv1",
    [F(TEXT, b"a", fin=False), F(CONT, b"b", rsv=1)],
    [Fail(1002)],
    decide=(1, "header"),
)
for op in (3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF):
    case(f"reserved-opcode-{op:#x}", [F(op, b"x")], [Fail(1002)], decide=(0, "header"))
case("reserved-opcode-after-message", [F(BINARY, b"m"), F(0x3)], [BinaryMessage(b"m"), Fail(1002)])
case(
    "reserved-opcode-inside-fragments",
    [F(TEXT, b"a", fin=False), F(0xB, b"x"), F(CONT, b"b")],
    [Fail(1002)],
    decide=(1, "header"),
)

# Section 5.5: control frames are at most 125 bytes and never fragmented.
case("ping-125", [F(PING, b"p" * 125)], [Ping(b"p" * 125)], [(PONG, b"p" * 125)])
case("ping-126", [F(PING, b"p" * 126)], [Fail(1002)], decide=(0, "header"))
case("pong-126", [F(PONG, b"p" * 126)], [Fail(1002)], decide=(0, "header"))
case("close-126", [F(CLOSE, close_body(1000, b"r" * 124))], [Fail(1002)], decide=(0, "header"))
case("ping-64bit-length-200", [F(PING, b"p" * 200, length_form=64)], [Fail(1002)], decide=(0, "header"))
case("ping-fragmented", [F(PING, b"p", fin=False)], [Fail(1002)], decide=(0, "header"))
case("pong-fragmented", [F(PONG, b"p", fin=False)], [Fail(1002)], decide=(0, "header"))
case("close-fragmented", [F(CLOSE, close_body(1000), fin=False)], [Fail(1002)], decide=(0, "header"))
case(
    "ping-fragmented-inside-message",
    [F(TEXT, b"a", fin=False), F(PING, b"", fin=False), F(CONT, b"b")],
    [Fail(1002)],
    decide=(1, "header"),
)

# Section 5.5.2 / 5.5.3: ping and pong.
case("ping-empty", [F(PING)], [Ping(b"")], [(PONG, b"")])
case("ping-payload", [F(PING, b"\x00abc\xff")], [Ping(b"\x00abc\xff")], [(PONG, b"\x00abc\xff")])
case(
    "pings-answered-in-order",
    [F(PING, b"1"), F(TEXT, b"t"), F(PING, b"2")],
    [Ping(b"1"), TextMessage("t"), Ping(b"2")],
    [(PONG, b"1"), (PONG, b"2")],
)
case("ping-no-auto-pong", [F(PING, b"x")], [Ping(b"x")], [], opts={"auto_pong": False})
case("pong-unsolicited", [F(PONG, b"beat")], [Pong(b"beat")], [])
case("pong-empty", [F(PONG)], [Pong(b"")], [])

# Section 5.4: fragmentation.
case(
    "text-three-fragments",
    [F(TEXT, b"he", fin=False), F(CONT, b"ll", fin=False), F(CONT, b"o")],
    [TextMessage("hello")],
)
case("binary-two-fragments", [F(BINARY, b"\x01", fin=False), F(CONT, b"\x02")], [BinaryMessage(b"\x01\x02")])
case(
    "fragments-with-ping",
    [F(TEXT, b"ab", fin=False), F(PING, b"p"), F(CONT, b"cd")],
    [Ping(b"p"), TextMessage("abcd")],
    [(PONG, b"p")],
)
case(
    "fragments-with-pong",
    [F(BINARY, b"ab", fin=False), F(PONG, b"q"), F(CONT, b"cd", fin=False), F(PING, b"r"), F(CONT, b"")],
    [Pong(b"q"), Ping(b"r"), BinaryMessage(b"abcd")],
    [(PONG, b"r")],
)
case(
    "fragments-with-close",
    [F(TEXT, b"ab", fin=False), F(CLOSE, close_body(1001, b"away")), F(CONT, b"cd")],
    [CloseReceived(1001, "away"), Closed(1001, "away")],
    [(CLOSE, close_body(1001))],
)
case("fragments-empty-first", [F(TEXT, b"", fin=False), F(CONT, b"abc")], [TextMessage("abc")])
case("fragments-empty-last", [F(TEXT, b"abc", fin=False), F(CONT, b"")], [TextMessage("abc")])
case("fragments-all-empty", [F(BINARY, b"", fin=False), F(CONT, b"", fin=False), F(CONT)], [BinaryMessage(b"")])
case(
    "fragments-then-message",
    [F(TEXT, b"a", fin=False), F(CONT, b"b"), F(BINARY, b"c")],
    [TextMessage("ab"), BinaryMessage(b"c")],
)
case("continuation-without-message", [F(CONT, b"x")], [Fail(1002)], decide=(0, "header"))
case("continuation-unfinished-without-message", [F(CONT, b"x", fin=False)], [Fail(1002)], decide=(0, "header"))
case(
    "continuation-after-complete-message",
    [F(TEXT, b"a"), F(CONT, b"b")],
    [TextMessage("a"), Fail(1002)],
    decide=(1, "header"),
)
case(
    "continuation-after-fragmented-message",
    [F(TEXT, b"a", fin=False), F(CONT, b"b"), F(CONT, b"c")],
    [TextMessage("ab"), Fail(1002)],
    decide=(2, "header"),
)
case(
    "text-inside-fragmented-text",
    [F(TEXT, b"a", fin=False), F(TEXT, b"b")],
    [Fail(1002)],
    decide=(1, "header"),
)
case(
    "binary-inside-fragmented-text",
    [F(TEXT, b"a", fin=False), F(BINARY, b"b")],
    [Fail(1002)],
    decide=(1, "header"),
)
case(
    "text-inside-fragmented-binary-after-ping",
    [F(BINARY, b"a", fin=False), F(PING), F(TEXT, b"b", fin=False)],
    [Ping(b""), Fail(1002)],
    [(PONG, b"")],
    decide=(2, "header"),
)

# Section 5.6 / 8.1: UTF-8, incrementally. The bad byte is followed by more payload, so the
# failure must come while the frame is still arriving.
for name, payload, bad in [
    ("lone-continuation", b"\x80", 0),
    ("overlong-2", b"ab\xc0\xaf", 2),
    ("c1", b"\xc1\xbf", 0),
    ("overlong-3", b"\xe0\x80\x80", 1),
    ("overlong-4", b"\xf0\x80\x80\x80", 1),
    ("surrogate", b"x\xed\xa0\x80", 2),
    ("over-10ffff", b"\xf4\x90\x80\x80", 1),
    ("f5", b"\xf5\x80\x80\x80", 0),
    ("ff", b"\xff", 0),
    ("missing-continuation", b"\xce\x41", 1),
    ("missing-3rd-byte", b"\xe2\x82A", 2),
]:
    case(f"utf8-{name}", [F(TEXT, payload + b"z" * 40)], [Fail(1007)], decide=(0, bad))
case("utf8-truncated-at-end", [F(TEXT, b"ok\xe2\x82")], [Fail(1007)], decide=(0, 3))
case("utf8-truncated-4-at-end", [F(TEXT, b"\xf0\x9f\x99")], [Fail(1007)], decide=(0, 2))
case(
    "utf8-split-across-fragments",
    [F(TEXT, b"\xce", fin=False), F(CONT, b"\xba")],
    [TextMessage("κ")],
)
case(
    "utf8-4-bytes-over-4-fragments",
    [F(TEXT, b"\xf0", fin=False), F(CONT, b"\x9f", fin=False), F(CONT, b"\x99", fin=False), F(CONT, b"\x82")],
    [TextMessage("🙂")],
)
case(
    "utf8-split-around-ping",
    [F(TEXT, b"\xe2\x82", fin=False), F(PING, b"\xff"), F(CONT, b"\xac")],
    [Ping(b"\xff"), TextMessage("€")],
    [(PONG, b"\xff")],
)
case(
    "utf8-invalid-in-second-fragment",
    [F(TEXT, b"ok", fin=False), F(CONT, b"\xff" + b"z" * 30)],
    [Fail(1007)],
    decide=(1, 0),
)
case(
    "utf8-invalid-continuation-of-split",
    [F(TEXT, b"\xce", fin=False), F(CONT, b"A" + b"z" * 30)],
    [Fail(1007)],
    decide=(1, 0),
)
case(
    "utf8-invalid-after-ping-inside-fragments",
    [F(TEXT, b"\xed", fin=False), F(PING, b"p"), F(CONT, b"\xa0\x80")],
    [Ping(b"p"), Fail(1007)],
    [(PONG, b"p")],
    decide=(2, 0),
)
case(
    "utf8-truncated-at-end-of-fragments",
    [F(TEXT, b"a", fin=False), F(CONT, b"\xce")],
    [Fail(1007)],
    decide=(1, 0),
)
case("utf8-invalid-binary-is-fine", [F(BINARY, b"\xff\xed\xa0\x80")], [BinaryMessage(b"\xff\xed\xa0\x80")])
case("utf8-invalid-ping-is-fine", [F(PING, b"\xff")], [Ping(b"\xff")], [(PONG, b"\xff")])

# Section 10.4 / 7.4.1 (1009): limits, decided from the header before the payload arrives.
case("max-message-exact", [F(TEXT, b"m" * 16)], [TextMessage("m" * 16)], opts={"max_message_size": 16})
case("max-message-over", [F(TEXT, b"m" * 17)], [Fail(1009)], opts={"max_message_size": 16}, decide=(0, "header"))
case("max-message-over-binary", [F(BINARY, b"m" * 17)], [Fail(1009)], opts={"max_message_size": 16}, decide=(0, "header"))
case(
    "max-message-fragments-exact",
    [F(BINARY, b"m" * 8, fin=False), F(PING, b"p" * 20), F(CONT, b"m" * 8)],
    [Ping(b"p" * 20), BinaryMessage(b"m" * 16)],
    [(PONG, b"p" * 20)],
    opts={"max_message_size": 16},
)
case(
    "max-message-fragments-over",
    [F(TEXT, b"m" * 8, fin=False), F(CONT, b"m" * 8, fin=False), F(CONT, b"m")],
    [Fail(1009)],
    opts={"max_message_size": 16},
    decide=(2, "header"),
)
case(
    "max-message-resets-between-messages",
    [F(TEXT, b"m" * 16), F(BINARY, b"n" * 10, fin=False), F(CONT, b"n" * 6)],
    [TextMessage("m" * 16), BinaryMessage(b"n" * 16)],
    opts={"max_message_size": 16},
)
case(
    "max-message-huge-64bit-header",
    [F(BINARY, b"", length=2**40)],
    [Fail(1009)],
    opts={"max_message_size": 16},
    decide=(0, "header"),
)
case("max-frame-exact", [F(BINARY, b"f" * 8)], [BinaryMessage(b"f" * 8)], opts={"max_frame_size": 8})
case("max-frame-over", [F(BINARY, b"f" * 9)], [Fail(1009)], opts={"max_frame_size": 8}, decide=(0, "header"))
case(
    "max-frame-fragments-ok",
    [F(TEXT, b"f" * 8, fin=False), F(CONT, b"f" * 8, fin=False), F(CONT, b"f" * 8)],
    [TextMessage("f" * 24)],
    opts={"max_frame_size": 8, "max_message_size": None},
)
case(
    "max-frame-over-in-fragments",
    [F(TEXT, b"f" * 8, fin=False), F(CONT, b"f" * 9)],
    [Fail(1009)],
    opts={"max_frame_size": 8},
    decide=(1, "header"),
)
case(
    "max-fragments-exact",
    [F(TEXT, b"a", fin=False), F(CONT, b"", fin=False), F(PING, b"p"), F(CONT, b"b")],
    [Ping(b"p"), TextMessage("ab")],
    [(PONG, b"p")],
    opts={"max_fragments": 3},
)
case(
    "max-fragments-over-with-empty-frames",
    [F(BINARY, b"", fin=False), F(CONT, b"", fin=False), F(CONT, b"", fin=False), F(CONT, b"x")],
    [Fail(1009)],
    opts={"max_fragments": 3},
    decide=(3, "header"),
)
case(
    "max-fragments-resets-between-messages",
    [F(TEXT, b"a", fin=False), F(CONT, b"b"), F(BINARY, b"c", fin=False), F(CONT, b"d")],
    [TextMessage("ab"), BinaryMessage(b"cd")],
    opts={"max_fragments": 2},
)
case(
    "length-64bit-top-bit",
    [F(BINARY, b"", length=2**63)],
    [Fail(1002)],
    opts={"max_message_size": None, "max_frame_size": None},
    decide=(0, "header"),
)
case(
    "length-64bit-largest",
    [F(BINARY, b"", length=2**63 - 1)],
    [Fail(1009)],
    decide=(0, "header"),
)
case(
    "limits-disabled",
    [F(BINARY, b"\x01" * 70000)],
    [BinaryMessage(b"\x01" * 70000)],
    opts={"max_message_size": None, "max_frame_size": None},
)

# Section 5.5.1 / 7.4: close frames.
case("close-empty", [F(CLOSE)], [CloseReceived(1005, ""), Closed(1005, "")], [(CLOSE, b"")])
case("close-1-byte", [F(CLOSE, b"\x03")], [Fail(1002)])
for code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999):
    case(
        f"close-code-{code}",
        [F(CLOSE, close_body(code))],
        [CloseReceived(code, ""), Closed(code, "")],
        [(CLOSE, close_body(code))],
    )
for code in (0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535):
    case(f"close-invalid-code-{code}", [F(CLOSE, close_body(code))], [Fail(1002)])
case(
    "close-reason",
    [F(CLOSE, close_body(1000, "bye κόσμε".encode()))],
    [CloseReceived(1000, "bye κόσμε"), Closed(1000, "bye κόσμε")],
    [(CLOSE, close_body(1000))],
)
case(
    "close-reason-123-bytes",
    [F(CLOSE, close_body(4000, b"r" * 123))],
    [CloseReceived(4000, "r" * 123), Closed(4000, "r" * 123)],
    [(CLOSE, close_body(4000))],
)
case("close-reason-invalid-utf8", [F(CLOSE, close_body(1000, b"\xff"))], [Fail(1007)])
case("close-reason-truncated-utf8", [F(CLOSE, close_body(1000, b"ok\xce"))], [Fail(1007)])
case("close-reason-surrogate", [F(CLOSE, close_body(1000, b"\xed\xa0\x80"))], [Fail(1007)])
case("close-invalid-code-and-reason", [F(CLOSE, close_body(1004, b"\xff"))], [Fail(1002)])
case(
    "close-then-everything-ignored",
    [F(TEXT, b"a"), F(CLOSE, close_body(1000)), F(TEXT, b"b"), F(PING, b"x"), F(0x3), F(CONT)],
    [TextMessage("a"), CloseReceived(1000, ""), Closed(1000, "")],
    [(CLOSE, close_body(1000))],
)
case(
    "close-after-ping",
    [F(PING, b"1"), F(CLOSE)],
    [Ping(b"1"), CloseReceived(1005, ""), Closed(1005, "")],
    [(PONG, b"1"), (CLOSE, b"")],
)
case(
    "invalid-frame-after-failure-ignored",
    [F(CONT, b"x"), F(CLOSE, close_body(1000))],
    [Fail(1002)],
)

assert len({c.id for c in CASES}) == len(CASES)

PARAMS = [pytest.param(c, role, id=f"{c.id}-{role}") for c in CASES for role in c.roles]


# --- driving a connection ------------------------------------------------------------


def chunkings(data: bytes, mode: str) -> List[List[bytes]]:
    if mode == "whole":
        return [[data]]
    if mode == "bytes":
        if len(data) <= 4096:
            return [[data[i : i + 1] for i in range(len(data))]]
        # Large payloads: byte by byte through the headers, then in odd-sized pieces.
        head = [data[i : i + 1] for i in range(64)]
        return [head + [data[i : i + 997] for i in range(64, len(data), 997)]]
    rng = random.Random(f"{mode}:{len(data)}:{data[:32]!r}")
    result = []
    for _ in range(4):
        cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(1, 12)))) if len(data) > 1 else []
        bounds = [0, *cuts, len(data)]
        result.append([data[a:b] for a, b in zip(bounds, bounds[1:])])
    return result


class Run(NamedTuple):
    events: list
    written: bytes
    closed_at: Optional[int]  # bytes fed when the Closed event first appeared
    conn: Connection


def pull(conn: Connection, batched: bool = False) -> list:
    """Every event the connection has now: from ``events()``, or (``batched``) as a batching driver takes
    them, ``take_messages()`` between ``next_event()`` calls, its messages counted as the events they stand for."""
    if not batched:
        return list(conn.events())
    out: list = []
    while True:
        out += [TextMessage(m) if isinstance(m, str) else BinaryMessage(m) for m in conn.take_messages()]
        event = conn.next_event()
        if event is None:
            return out
        out.append(event)


def drive(conn: Connection, chunks: Sequence[bytes], eof: bool = True, batched: bool = False) -> Run:
    events: list = []
    written = bytearray()
    fed = 0
    closed_at = None
    for chunk in chunks:
        conn.receive_data(chunk)
        fed += len(chunk)
        new = pull(conn, batched)
        written += conn.data_to_send()
        if closed_at is None and any(isinstance(e, Closed) for e in new):
            closed_at = fed
        events += new
    if eof:
        conn.receive_data(b"")
        events += pull(conn, batched)
        written += conn.data_to_send()
    return Run(events, bytes(written), closed_at, conn)


def expected_of(case_: Case, run: Run) -> Tuple[list, list]:
    """Expected (events, written frames) of a case; a Fail takes its reason from the actual Closed event."""
    events = list(case_.events)
    written = list(case_.written)
    if events and isinstance(events[-1], Fail):
        code = events[-1].code
        last = run.events[-1] if run.events else None
        assert isinstance(last, Closed) and last.code == code, f"expected failure {code}, got {run.events}"
        assert isinstance(last.reason, str) and last.reason
        events[-1] = Closed(code, last.reason)
        written.append((CLOSE, close_body(code, last.reason.encode())))
    elif not any(isinstance(e, Closed) for e in events):
        events.append(Closed(1006, ""))  # the transport ended without a close frame
    return events, written


@pytest.mark.parametrize("pulled", ["events", "batched"])
@pytest.mark.parametrize("mode", ["whole", "bytes", "random"])
@pytest.mark.parametrize("case_,role", PARAMS)
def test_conformance(case_: Case, role: str, mode: str, pulled: str, backend) -> None:
    """``batched``: a driver taking messages with take_messages() sees the same events and bytes."""
    data, spans = wire(case_.frames, role)
    for chunks in chunkings(data, mode):
        conn = Connection(client=role == "client", backend=backend.name, **case_.opts)
        assert conn.state is State.OPEN
        run = drive(conn, chunks, batched=pulled == "batched")
        events, written = expected_of(case_, run)
        assert norm(run.events) == norm(events)
        check_written(run.written, role, written)
        assert conn.state is State.CLOSED
        assert conn.close_code == events[-1].code and conn.close_reason == events[-1].reason
        assert list(conn.events()) == [] and conn.data_to_send() == b""
        if mode == "bytes" and case_.decide is not None and len(data) <= 4096:
            index, where = case_.decide
            if where == "header":
                # Decided from the header: before a single payload byte arrived.
                assert run.closed_at is not None and run.closed_at <= spans[index][1]
            else:
                # Decided by the bad byte itself: not before it, and as soon as it arrives.
                assert run.closed_at == spans[index][1] + where + 1


def test_table_covers_every_close_code_class() -> None:
    ids = {c.id for c in CASES}
    for code in (0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000):
        assert f"close-invalid-code-{code}" in ids
    for code in (1000, 1001, 1002, 1003, 1007, 1011, 1012, 1013, 1014, 3000, 4999):
        assert f"close-code-{code}" in ids


# --- the pong goes out before the message completes -------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_ping_inside_fragments_answered_at_once(role: str, backend) -> None:
    first, spans = wire([F(TEXT, b"ab", fin=False), F(PING, b"now")], role)
    rest, _ = wire([F(CONT, b"cd" * 100)], role)
    conn = Connection(client=role == "client", backend=backend.name)
    conn.receive_data(first + rest[:5])  # the last fragment has only begun
    assert norm(conn.events()) == norm([Ping(b"now")])
    check_written(conn.data_to_send(), role, [(PONG, b"now")])
    conn.receive_data(rest[5:])
    assert norm(conn.events()) == norm([TextMessage("ab" + "cd" * 100)])
    assert conn.data_to_send() == b""


@pytest.mark.parametrize("role", ROLES)
def test_invalid_utf8_fails_before_rest_of_frame(role: str, backend) -> None:
    data, spans = wire([F(TEXT, b"valid " + b"\xc3\x28" + b"x" * 5000)], role)
    cut = spans[0][1] + 8  # up to and including the bad byte 0x28
    conn = Connection(client=role == "client", backend=backend.name)
    conn.receive_data(data[: cut - 1])
    assert list(conn.events()) == [] and conn.data_to_send() == b""
    conn.receive_data(data[cut - 1 : cut])
    (event,) = conn.events()
    assert isinstance(event, Closed) and event.code == 1007
    check_written(conn.data_to_send(), role, [(CLOSE, close_body(1007, event.reason.encode()))])
    assert conn.should_close_transport
    conn.receive_data(data[cut:])  # the rest of the frame is ignored
    assert list(conn.events()) == [] and conn.data_to_send() == b""


@pytest.mark.parametrize("role", ROLES)
def test_default_limit_protects_from_the_header(role: str, backend) -> None:
    frame = raw_frame(BINARY, b"", key=PEER_KEY if role == "server" else None, length=DEFAULT_MAX_MESSAGE_SIZE + 1)
    conn = Connection(client=role == "client", backend=backend.name)
    assert conn.max_message_size == DEFAULT_MAX_MESSAGE_SIZE == 2**20
    conn.receive_data(frame)  # the header only: the payload never comes
    (event,) = conn.events()
    assert isinstance(event, Closed) and event.code == 1009
    check_written(conn.data_to_send(), role, [(CLOSE, close_body(1009, event.reason.encode()))])


@pytest.mark.parametrize("role", ROLES)
def test_default_limit_accepts_exactly_one_mib(role: str, backend) -> None:
    payload = bytes(range(256)) * (DEFAULT_MAX_MESSAGE_SIZE // 256)
    half = len(payload) // 2
    data, _ = wire([F(BINARY, payload[:half], fin=False), F(CONT, payload[half:])], role)
    run = drive(Connection(client=role == "client", backend=backend.name), [data[i : i + 65536] for i in range(0, len(data), 65536)])
    assert norm(run.events) == norm([BinaryMessage(payload), Closed(1006, "")])
    assert run.written == b""


@pytest.mark.parametrize("role", ROLES)
def test_default_fragment_limit(role: str, backend) -> None:
    """Empty continuation frames are not free: past DEFAULT_MAX_FRAGMENTS frames a message fails with 1009."""
    assert DEFAULT_MAX_FRAGMENTS == 128 * 1024
    key = PEER_KEY if role == "server" else None
    empty = raw_frame(CONT, b"", fin=False, key=key)
    start = raw_frame(BINARY, b"x", fin=False, key=key)
    body = start + empty * (DEFAULT_MAX_FRAGMENTS - 2)
    conn = Connection(client=role == "client", max_message_size=1024, backend=backend.name)
    assert conn.max_fragments == DEFAULT_MAX_FRAGMENTS
    run = drive(conn, [body, raw_frame(CONT, b"y", key=key)], eof=False)  # exactly at the limit
    assert norm(run.events) == norm([BinaryMessage(b"xy")])
    conn = Connection(client=role == "client", max_message_size=1024, backend=backend.name)
    run = drive(conn, [body, empty, raw_frame(CONT, b"y", key=key)], eof=False)  # one frame over
    assert [type(e) for e in run.events] == [Closed] and run.events[0].code == 1009
    check_written(run.written, role, [(CLOSE, close_body(1009, run.events[0].reason.encode()))])


def test_empty_fragments_are_not_kept(backend) -> None:
    """Per-message bookkeeping grows with the payload bytes, not with the number of frames."""
    import tracemalloc

    empty = raw_frame(CONT, b"", fin=False)
    conn = Connection(client=True, max_fragments=None, backend=backend.name)
    conn.receive_data(raw_frame(BINARY, b"x", fin=False))
    assert list(conn.events()) == []
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(20):
            conn.receive_data(empty * 1000)
            assert list(conn.events()) == []
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held < 20_000, f"{held} bytes held for 20000 empty fragments"
    conn.receive_data(raw_frame(CONT, b"y"))
    assert norm(conn.events()) == norm([BinaryMessage(b"xy")])


# --- stream mode -------------------------------------------------------------------------


STREAM_CASES = [
    ("single-text", [F(TEXT, b"hi")], [Fragment("hi", True, True)]),
    ("single-binary", [F(BINARY, b"\x00")], [Fragment(b"\x00", True, True)]),
    ("empty", [F(TEXT)], [Fragment("", True, True)]),
    (
        "binary-fragments",
        [F(BINARY, b"ab", fin=False), F(CONT, b"", fin=False), F(CONT, b"c")],
        [Fragment(b"ab", True, False), Fragment(b"", False, False), Fragment(b"c", False, True)],
    ),
    (
        "text-split-code-point",
        [F(TEXT, b"a\xe2", fin=False), F(CONT, b"\x82", fin=False), F(PING, b"p"), F(CONT, b"\xacz")],
        [Fragment("a", True, False), Fragment("", False, False), Ping(b"p"), Fragment("€z", False, True)],
    ),
    (
        "two-messages",
        [F(TEXT, b"\xce", fin=False), F(CONT, b"\xba"), F(BINARY, b"\xce", fin=False), F(CONT, b"\xba")],
        [
            Fragment("", True, False),
            Fragment("κ", False, True),
            Fragment(b"\xce", True, False),
            Fragment(b"\xba", False, True),
        ],
    ),
]


@pytest.mark.parametrize("mode", ["whole", "bytes", "random"])
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name,frames,expected", STREAM_CASES, ids=[c[0] for c in STREAM_CASES])
def test_stream_mode(name, frames, expected, role: str, mode: str, backend) -> None:
    data, _ = wire(frames, role)
    for chunks in chunkings(data, mode):
        run = drive(Connection(client=role == "client", stream=True, backend=backend.name), chunks)
        assert norm(run.events) == norm([*expected, Closed(1006, "")])
        check_written(run.written, role, [(PONG, e.payload) for e in expected if isinstance(e, Ping)])


@pytest.mark.parametrize("role", ROLES)
def test_stream_mode_fragments_arrive_before_the_message_ends(role: str, backend) -> None:
    conn = Connection(client=role == "client", stream=True, backend=backend.name)
    conn.receive_data(wire([F(TEXT, "κόσμε".encode(), fin=False)], role)[0])
    assert norm(conn.events()) == norm([Fragment("κόσμε", True, False)])
    conn.receive_data(wire([F(CONT, b"\xff")], role)[0])
    (event,) = conn.events()
    assert isinstance(event, Closed) and event.code == 1007


# --- sending ---------------------------------------------------------------------------


def outgoing(conn: Connection, data: bytes) -> List[Out]:
    frames = parse_frames(data)
    for f in frames:
        assert (f.key is not None) == conn.client
    return frames


def test_server_send_exact_bytes(backend) -> None:
    conn = Connection(client=False, backend=backend.name)
    assert conn.send_text("") == b"\x81\x00"
    assert conn.send_binary(b"") == b"\x82\x00"
    assert conn.send_text("hé") == b"\x81\x03h\xc3\xa9"
    assert conn.send_binary(bytearray(b"\x00\x01")) == b"\x82\x02\x00\x01"
    assert conn.send_binary(memoryview(b"xyz")[1:]) == b"\x82\x02yz"
    assert conn.send("t") == b"\x81\x01t"
    assert conn.send(b"b") == b"\x82\x01b"
    assert conn.send_binary(b"x" * 126) == b"\x82\x7e\x00\x7e" + b"x" * 126
    assert conn.send_binary(b"x" * 65536) == b"\x82\x7f" + (65536).to_bytes(8, "big") + b"x" * 65536
    assert conn.send_ping(b"p") == b"\x89\x01p"
    assert conn.send_ping() == b"\x89\x00"
    assert conn.send_ping("κ") == b"\x89\x02\xce\xba"
    assert conn.send_pong(b"q") == b"\x8a\x01q"
    assert conn.send_pong() == b"\x8a\x00"
    with pytest.raises(ValueError):
        conn.send_ping(b"x" * 126)
    with pytest.raises(ValueError):
        conn.send_pong(b"x" * 126)
    assert conn.state is State.OPEN
    assert conn.data_to_send() == b""


def test_client_frames_masked_with_fresh_keys(backend) -> None:
    conn = Connection(client=True, backend=backend.name)
    sent = [
        conn.send_text("hello"),
        conn.send_binary(b""),
        conn.send_binary(b"\x00" * 300),
        conn.send_ping(b"p"),
        conn.send_pong(b""),
        conn.send_fragment("a"),
        conn.send_fragment("b", final=True),
    ]
    sent += [conn.send_text(str(i)) for i in range(1100)]  # past one bulk draw of keys (1024)
    keys = []
    for data in sent:
        (frame,) = outgoing(conn, data)
        assert frame.raw == raw_frame(frame.opcode, frame.payload, frame.fin, key=frame.key)
        keys.append(frame.key)
    assert [(f.opcode, f.fin, f.payload) for f in parse_frames(b"".join(sent[:7]))] == [
        (TEXT, True, b"hello"),
        (BINARY, True, b""),
        (BINARY, True, b"\x00" * 300),
        (PING, True, b"p"),
        (PONG, True, b""),
        (TEXT, False, b"a"),
        (CONT, True, b"b"),
    ]
    # 32-bit keys from the OS: a repeat among ~1100 has a probability of about 1e-4.
    assert len(set(keys)) >= len(keys) - 1
    # The masked payload of the 300 zero bytes is the key repeated: the key is really used.
    zeros = parse_frames(sent[2])[0]
    assert zeros.raw[-300:] == (zeros.key * 75)


def test_client_mask_keys_drawn_from_the_os_in_bulk(backend, monkeypatch) -> None:
    """Keys come from os.urandom (a CSPRNG), many at a time: not one system call per frame."""
    import wsframe.protocol.connection as connection_module

    calls = []

    def urandom(n: int) -> bytes:
        calls.append(n)
        return bytes(range(256)) * (n // 256) + bytes(n % 256)

    monkeypatch.setattr(connection_module.os, "urandom", urandom)
    conn = Connection(client=True, backend=backend.name)
    keys = [parse_frames(conn.send_binary(b"x"))[0].key for _ in range(2048)]
    assert len(calls) <= 2 and sum(calls) >= 2048 * 4
    assert keys[0] == b"\x00\x01\x02\x03" and keys[1] == b"\x04\x05\x06\x07"  # consecutive, never reused
    assert keys[64] == bytes([0, 1, 2, 3])  # (the fake source repeats every 256 bytes)


def test_client_frames_read_by_a_server_reader(backend) -> None:
    conn = Connection(client=True, backend=backend.name)
    data = conn.send_text("κόσμε") + conn.send_binary(b"\xff" * 70000) + conn.close(4001, "done")
    reader = backend.FrameReader(require_mask=True)
    frames = reader.feed(data)
    assert reader.error is None
    assert [(f.opcode, f.payload) for f in frames] == [
        (TEXT, "κόσμε".encode()),
        (BINARY, b"\xff" * 70000),
        (CLOSE, close_body(4001, b"done")),
    ]


@pytest.mark.parametrize("role", ROLES)
def test_send_fragment(role: str, backend) -> None:
    conn = Connection(client=role == "client", backend=backend.name)
    data = conn.send_fragment("κ") + conn.send_ping(b"mid") + conn.send_fragment("ό") + conn.send_fragment("", final=True)
    data += conn.send_fragment(b"\x01") + conn.send_fragment(bytearray(b"\x02"), final=True)
    data += conn.send_fragment(b"one", final=True) + conn.send_text("after")
    assert [(f.opcode, f.fin, f.payload) for f in outgoing(conn, data)] == [
        (TEXT, False, "κ".encode()),
        (PING, True, b"mid"),
        (CONT, False, "ό".encode()),
        (CONT, True, b""),
        (BINARY, False, b"\x01"),
        (CONT, True, b"\x02"),
        (BINARY, True, b"one"),
        (TEXT, True, b"after"),
    ]
    if role == "server":
        assert data[:2] == b"\x01\x02" and data[-7:] == b"\x81\x05after"


@pytest.mark.parametrize("first,second", [("text", b"bytes"), (b"bytes", "text")])
def test_send_fragment_type_mismatch(first, second, backend) -> None:
    conn = Connection(client=False, backend=backend.name)
    conn.send_fragment(first)
    with pytest.raises(TypeError):
        conn.send_fragment(second)
    with pytest.raises(TypeError):
        conn.send_fragment(second, final=True)
    # The message stays open with its type: it can still be finished properly.
    assert conn.send_fragment(first, final=True) == b"\x80" + bytes([len(first)]) + (
        first.encode() if isinstance(first, str) else first
    )
    # Then a new message may have either type.
    assert conn.send_fragment(second, final=True)[0] == (0x82 if isinstance(second, bytes) else 0x81)


@pytest.mark.parametrize("bad", [5, None, object(), [1, 2], memoryview(b"abcd")[::2]])
def test_send_fragment_failure_leaves_no_trace(bad, backend) -> None:
    """A fragment that cannot be encoded is not recorded: later sends work as if it was never tried."""
    conn = Connection(client=False, backend=backend.name)
    with pytest.raises(TypeError):
        conn.send_fragment(bad)
    assert conn.send_text("x") == b"\x81\x01x"  # no message was opened
    assert conn.send_fragment("a") == b"\x01\x01a"
    with pytest.raises(TypeError):
        conn.send_fragment(bad, final=True)
    with pytest.raises(TypeError):
        conn.send_fragment(bad)
    assert conn.send_fragment("b", final=True) == b"\x80\x01b"  # the message was still open, as text
    assert conn.send_binary(b"y") == b"\x82\x01y"
    with pytest.raises(UnicodeEncodeError):
        conn.send_fragment("\ud800")  # a lone surrogate has no UTF-8
    assert conn.send_binary(b"z") == b"\x82\x01z"


def test_send_fragment_failure_on_the_client_leaves_no_trace(backend) -> None:
    """The same on the masking side: no key spent on state, the next fragment starts the message."""
    conn = Connection(client=True, backend=backend.name)
    with pytest.raises(TypeError):
        conn.send_fragment(3.5, final=False)
    assert [f.opcode for f in outgoing(conn, conn.send_fragment(b"a") + conn.send_fragment(b"b", True))] == [BINARY, CONT]


def test_whole_message_refused_while_fragments_open(backend) -> None:
    conn = Connection(client=False, backend=backend.name)
    conn.send_fragment(b"a")
    for send in (lambda: conn.send_text("x"), lambda: conn.send_binary(b"x"), lambda: conn.send("x")):
        with pytest.raises(InvalidState):
            send()
    assert conn.send_pong(b"") == b"\x8a\x00"
    assert conn.send_fragment(b"b", final=True) == b"\x80\x01b"
    assert conn.send_text("x") == b"\x81\x01x"


# --- close() and states -------------------------------------------------------------------


@pytest.mark.parametrize("code", [0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535, -1000])
def test_close_refuses_unsendable_codes(code: int, backend) -> None:
    conn = Connection(client=False, backend=backend.name)
    with pytest.raises(ValueError):
        conn.close(code)
    assert conn.state is State.OPEN  # nothing happened
    assert conn.close(1000) == b"\x88\x02\x03\xe8"


@pytest.mark.parametrize("code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999])
def test_close_sendable_codes_exact_bytes(code: int, backend) -> None:
    conn = Connection(client=False, backend=backend.name)
    assert conn.close(code, "why") == b"\x88\x05" + close_body(code, b"why")
    assert conn.state is State.CLOSING


@pytest.mark.parametrize(
    "reason,ok",
    [("r" * 123, True), ("r" * 124, False), ("é" * 61 + "r", True), ("é" * 62, False), ("€" * 41, True), ("€" * 42, False)],
)
def test_close_reason_length_in_bytes(reason: str, ok: bool, backend) -> None:
    conn = Connection(client=False, backend=backend.name)
    if ok:
        data = reason.encode()
        assert conn.close(1000, reason) == bytes([0x88, 2 + len(data)]) + close_body(1000, data)
    else:
        with pytest.raises(ValueError):
            conn.close(1000, reason)
        assert conn.state is State.OPEN


def test_close_reason_must_be_encodable(backend) -> None:
    conn = Connection(client=False, backend=backend.name)
    with pytest.raises(ValueError):  # UnicodeEncodeError: a lone surrogate is not UTF-8
        conn.close(1000, "\ud800")
    assert conn.state is State.OPEN


def test_close_without_code(backend) -> None:
    conn = Connection(client=False, backend=backend.name)
    with pytest.raises(ValueError):
        conn.close(None, "a reason needs a code")
    assert conn.close(None) == b"\x88\x00"
    assert Connection(client=False, backend=backend.name).close() == b"\x88\x02\x03\xe8"


SENDS = [
    ("send_text", ("x",)),
    ("send_binary", (b"x",)),
    ("send", ("x",)),
    ("send_parts", ("x",)),
    ("send_parts", (b"x" * 70000,)),  # the scatter/gather path checks the state too
    ("send_fragment", (b"x",)),
    ("send_ping", (b"",)),
    ("send_pong", (b"",)),
    ("close", (1000,)),
]


@pytest.mark.parametrize("role", ROLES)
def test_send_parts(role: str, backend) -> None:
    """A large message that goes out unchanged is its header then the caller's bytes themselves;
    anything else is the one frame send() makes. Joined, the parts are always send()'s frame."""
    conn = Connection(client=role == "client", backend=backend.name)
    big = bytes(range(256)) * 256  # 64 KiB: the threshold
    text = "é" * 33000 + "x" * 33000  # 66,000 characters, 99,000 bytes of UTF-8
    for message in (b"x" * 65535, big, text, bytearray(big), memoryview(big), "small"):
        parts = conn.send_parts(message)
        frame = conn.send(message)
        if role == "server":
            assert b"".join(parts) == frame
        else:  # masked with a fresh key each time: the same frame but for the key and the masking
            check_written(b"".join(parts), role, [(TEXT if isinstance(message, str) else BINARY, bytes(
                message.encode() if isinstance(message, str) else message))])
        gathered = role == "server" and (message is big or message is text)
        assert len(parts) == (2 if gathered else 1)
        if gathered:
            assert parts[0] == frame[: len(frame) - len(parts[1])]
            if message is big:
                assert parts[1] is big  # not copied


@pytest.mark.parametrize("how", ["close-sent", "close-received", "failed", "eof"])
@pytest.mark.parametrize("role", ROLES)
def test_sending_after_close_raises(how: str, role: str, backend) -> None:
    conn = Connection(client=role == "client", backend=backend.name)
    if how == "close-sent":
        conn.close()
        assert conn.state is State.CLOSING
    elif how == "close-received":
        drive(conn, [wire([F(CLOSE)], role)[0]], eof=False)
        assert conn.state is State.CLOSED
    elif how == "failed":
        drive(conn, [wire([F(0x3)], role)[0]], eof=False)
        assert conn.close_code == 1002
    else:
        drive(conn, [], eof=True)
        assert conn.close_code == 1006
    for name, args in SENDS:
        with pytest.raises(InvalidState):
            getattr(conn, name)(*args)


@pytest.mark.parametrize("role", ROLES)
def test_cannot_send_while_connecting(role: str, backend) -> None:
    conn = (
        ServerConnection(backend=backend.name) if role == "server" else ClientConnection("h", backend=backend.name)
    )
    assert conn.state is State.CONNECTING
    for name, args in SENDS:
        with pytest.raises(InvalidState):
            getattr(conn, name)(*args)


@pytest.mark.parametrize("role", ROLES)
def test_we_close_first(role: str, backend) -> None:
    """Section 7.1.2 / 1.4: our close, data discarded, the peer's close completes the handshake."""
    conn = Connection(client=role == "client", backend=backend.name)
    check_written(conn.close(4002, "bye"), role, [(CLOSE, close_body(4002, b"bye"))])
    assert conn.state is State.CLOSING and not conn.should_close_transport
    data, _ = wire(
        [F(TEXT, b"dropped"), F(BINARY, b"a", fin=False), F(PING, b"still"), F(CONT, b"b"), F(PONG, b"p")], role
    )
    run = drive(conn, [data], eof=False)
    # Data frames after our close are discarded; pings are still answered (5.5.2: a Pong is
    # owed "unless it already received a Close frame").
    assert norm(run.events) == norm([Ping(b"still"), Pong(b"p")])
    check_written(run.written, role, [(PONG, b"still")])
    assert conn.state is State.CLOSING and conn.close_code is None
    run = drive(conn, [wire([F(CLOSE, close_body(1000, b"ok"))], role)[0]], eof=False)
    assert norm(run.events) == norm([CloseReceived(1000, "ok"), Closed(1000, "ok")])
    assert run.written == b""  # no second close frame
    assert conn.state is State.CLOSED and (conn.close_code, conn.close_reason) == (1000, "ok")
    # The server closes TCP first; the client waits for the server's EOF.
    assert conn.should_close_transport is (role == "server")
    drive(conn, [], eof=True)
    assert conn.should_close_transport
    assert (conn.close_code, conn.close_reason) == (1000, "ok")


@pytest.mark.parametrize("role", ROLES)
def test_peer_closes_first(role: str, backend) -> None:
    conn = Connection(client=role == "client", backend=backend.name)
    run = drive(conn, [wire([F(CLOSE, close_body(1001, b"going"))], role)[0]], eof=False)
    assert norm(run.events) == norm([CloseReceived(1001, "going"), Closed(1001, "going")])
    check_written(run.written, role, [(CLOSE, close_body(1001))])
    assert conn.state is State.CLOSED
    assert conn.should_close_transport is (role == "server")
    run = drive(conn, [b"garbage after close"], eof=True)
    assert run.events == [] and run.written == b""
    assert conn.should_close_transport and conn.close_code == 1001


@pytest.mark.parametrize("role", ROLES)
def test_failure_closes_transport_at_once(role: str, backend) -> None:
    conn = Connection(client=role == "client", backend=backend.name)
    run = drive(conn, [wire([F(CONT)], role)[0]], eof=False)
    assert conn.state is State.CLOSED and conn.close_code == 1002
    assert conn.should_close_transport  # both roles: a failed connection is closed by either side


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("state", ["open", "closing", "mid-frame", "mid-message"])
def test_eof_without_close_is_1006_and_never_sent(role: str, state: str, backend) -> None:
    conn = Connection(client=role == "client", backend=backend.name)
    written = b""
    if state == "closing":
        written = conn.close(1000)
    elif state == "mid-frame":
        drive(conn, [wire([F(TEXT, b"abcdef")], role)[0][:5]], eof=False)
    elif state == "mid-message":
        drive(conn, [wire([F(TEXT, b"abc", fin=False)], role)[0]], eof=False)
    run = drive(conn, [], eof=True)
    assert norm(run.events) == norm([Closed(1006, "")])
    assert run.written == b""
    check_written(written, role, [(CLOSE, close_body(1000))] if written else [])
    assert conn.state is State.CLOSED and conn.close_code == 1006
    assert conn.should_close_transport
    with pytest.raises(InvalidState):
        conn.close()


def test_receive_eof_same_as_empty_bytes(backend) -> None:
    conn = Connection(client=False, backend=backend.name)
    conn.receive_eof()
    assert norm(conn.events()) == norm([Closed(1006, "")])


def test_events_are_lazy_and_nothing_is_lost(backend) -> None:
    """A half-iterated events() leaves the rest queued; a fresh events() continues in order."""
    data, _ = wire([F(TEXT, b"1"), F(PING, b"2"), F(TEXT, b"3"), F(CLOSE)], "server")
    conn = Connection(client=False, backend=backend.name)
    conn.receive_data(data)
    it = conn.events()
    assert norm([next(it)]) == norm([TextMessage("1")])
    assert conn.data_to_send() == b""  # the ping was not processed yet
    rest = list(conn.events())
    assert norm(rest) == norm([Ping(b"2"), TextMessage("3"), CloseReceived(1005, ""), Closed(1005, "")])
    assert conn.data_to_send() == b"\x8a\x012\x88\x00"


def test_receive_data_accepts_reused_buffers(backend) -> None:
    data, _ = wire([F(TEXT, b"hello"), F(BINARY, b"world")], "server")
    buf = bytearray(data[:9])
    conn = Connection(client=False, backend=backend.name)
    conn.receive_data(buf)
    buf[:] = b"\x00" * len(buf)  # the application reuses its buffer before events() runs
    conn.receive_data(memoryview(data)[9:])
    assert norm(conn.events()) == norm([TextMessage("hello"), BinaryMessage(b"world")])


def test_event_kinds_never_compare_equal() -> None:
    assert Ping(b"x") != Pong(b"x")
    assert not Ping(b"x") == Pong(b"x")
    assert CloseReceived(1000, "") != Closed(1000, "")
    assert TextMessage("a") != ("a",) and ("a",) != TextMessage("a")
    assert TextMessage("a") == TextMessage("a") and hash(TextMessage("a")) == hash(TextMessage("a"))
    assert [Closed(1006, "")] == [Closed(1006, "")]


# --- the opening handshake at the connection level (section 4) --------------------------

KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def client_request(key: str = KEY, **kw) -> bytes:
    return hs.build_request("example.com", "/chat?room=1", key=key, **kw)


def server_response(request_bytes: bytes, subprotocol: Optional[str] = None) -> bytes:
    reader = hs.HeadReader()
    assert reader.feed(request_bytes)
    return hs.accept(hs.parse_request(reader), subprotocol).serialize()


@pytest.mark.parametrize("mode", ["whole", "bytes", "random"])
def test_server_keeps_frames_sent_with_the_request(mode: str, backend) -> None:
    frames, _ = wire([F(TEXT, b"early"), F(PING, b"e")], "server")
    data = client_request(subprotocols=["chat", "v2"]) + frames
    for chunks in chunkings(data, mode):
        conn = ServerConnection(subprotocols=["v2", "chat"], backend=backend.name)
        events = []
        for chunk in chunks:
            conn.receive_data(chunk)
            events += list(conn.events())
        assert [type(e) for e in events] == [Request]
        request = events[0].request
        assert (request.path, request.query, request.key) == ("/chat", "room=1", KEY)
        assert conn.state is State.CONNECTING and conn.data_to_send() == b""
        response = conn.accept()
        assert response == server_response(client_request(subprotocols=["chat", "v2"]), "v2")
        assert conn.state is State.OPEN and conn.subprotocol == "v2"
        run = drive(conn, [], eof=True)
        assert norm(run.events) == norm([TextMessage("early"), Ping(b"e"), Closed(1006, "")])
        assert run.written == b"\x8a\x01e"


@pytest.mark.parametrize("mode", ["whole", "bytes", "random"])
def test_client_keeps_frames_sent_with_the_response(mode: str, backend) -> None:
    frames, _ = wire([F(TEXT, b"welcome"), F(CLOSE, close_body(1000))], "client")
    for seed in range(1 if mode != "random" else 3):
        conn = ClientConnection("example.com", "/chat?room=1", subprotocols=["chat"], backend=backend.name)
        data = server_response(conn.handshake_request(), "chat") + frames
        chunks = chunkings(data, mode)[seed]
        run = drive(conn, chunks, eof=False)
        assert [type(e) for e in run.events] == [Accepted, TextMessage, CloseReceived, Closed]
        assert run.events[0].subprotocol == "chat" and run.events[0].response.status == 101
        assert norm(run.events[1:]) == norm([TextMessage("welcome"), CloseReceived(1000, ""), Closed(1000, "")])
        check_written(run.written, "client", [(CLOSE, close_body(1000))])
        assert conn.subprotocol == "chat" and not conn.should_close_transport
        drive(conn, [], eof=True)
        assert conn.should_close_transport


def _key_of(request: bytes) -> str:
    reader = hs.HeadReader()
    assert reader.feed(request)
    return hs.parse_request(reader).key


def test_client_request_is_valid_for_a_server(backend) -> None:
    client = ClientConnection("example.com:8080", "/a?b=c", origin="https://o.example", subprotocols=["x", "y"], backend=backend.name)
    server = ServerConnection(origins=["https://o.example"], subprotocols=["y"], backend=backend.name)
    server.receive_data(client.handshake_request())
    (event,) = server.events()
    assert isinstance(event, Request)
    assert event.request.host == "example.com:8080" and event.request.origin == "https://o.example"
    assert event.request.subprotocols == ["x", "y"]
    client.receive_data(server.accept())
    (event,) = client.events()
    assert isinstance(event, Accepted) and event.subprotocol == "y" and client.state is State.OPEN


def test_two_clients_use_different_keys(backend) -> None:
    a = ClientConnection("h", backend=backend.name).handshake_request()
    b = ClientConnection("h", backend=backend.name).handshake_request()
    assert _key_of(a) != _key_of(b)


SERVER_REJECTS = [
    ("post", client_request().replace(b"GET ", b"POST ", 1), 405, [b"Allow: GET"]),
    ("version", client_request().replace(b"Version: 13", b"Version: 8"), 426, [b"Sec-WebSocket-Version: 13"]),
    ("no-upgrade", client_request().replace(b"Upgrade: websocket\r\n", b""), 400, []),
    ("bad-key", client_request().replace(KEY.encode(), b"c2hvcnQ="), 400, []),
    ("http-1.0", client_request().replace(b"HTTP/1.1", b"HTTP/1.0"), 400, []),
    ("garbage", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400, []),
    ("line-too-long", b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n", 431, []),
]


@pytest.mark.parametrize("name,data,status,headers", SERVER_REJECTS, ids=[r[0] for r in SERVER_REJECTS])
@pytest.mark.parametrize("mode", ["whole", "random"])
def test_server_rejects_bad_requests_with_http(name, data, status, headers, mode: str, backend) -> None:
    frames, _ = wire([F(TEXT, b"never")], "server")
    for chunks in chunkings(data + frames, mode):
        conn = ServerConnection(backend=backend.name)
        run = drive(conn, chunks, eof=False)
        assert [type(e) for e in run.events] == [Rejected, Closed]
        assert run.events[0].status == status and run.events[0].reason
        assert run.events[1] == Closed(1006, run.events[0].reason)
        head, _, body = run.written.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 %d " % status)
        assert b"Connection: close" in head and b"Content-Length: %d" % len(body) in head
        assert body == run.events[0].reason.encode()
        for header in headers:
            assert header in head
        assert conn.state is State.CLOSED and conn.should_close_transport
        assert list(conn.events()) == []


def test_server_origin_not_allowed(backend) -> None:
    conn = ServerConnection(origins=["https://good.example"], backend=backend.name)
    conn.receive_data(client_request(origin="https://evil.example"))
    assert norm(conn.events()) == norm([Rejected(403, "origin not allowed"), Closed(1006, "origin not allowed")])
    assert conn.data_to_send().startswith(b"HTTP/1.1 403 Forbidden\r\n")


def test_server_reject_by_application(backend) -> None:
    conn = ServerConnection(backend=backend.name)
    conn.receive_data(client_request())
    (event,) = conn.events()
    assert isinstance(event, Request)
    data = conn.reject(404, "no such room")
    assert data.startswith(b"HTTP/1.1 404 Not Found\r\n") and data.endswith(b"\r\n\r\nno such room")
    assert conn.state is State.CLOSED and conn.should_close_transport
    assert norm(conn.events()) == norm([Closed(1006, "rejected with 404 Not Found")])
    assert (conn.close_code, conn.close_reason) == (1006, "rejected with 404 Not Found")
    with pytest.raises(InvalidState):
        conn.accept()


def test_server_eof_during_handshake(backend) -> None:
    conn = ServerConnection(backend=backend.name)
    run = drive(conn, [client_request()[:20]], eof=True)
    reason = "connection closed during the handshake"
    assert norm(run.events) == norm([Rejected(0, reason), Closed(1006, reason)]) and run.written == b""
    assert conn.state is State.CLOSED and conn.should_close_transport


def test_server_accept_with_extra_headers(backend) -> None:
    conn = ServerConnection(backend=backend.name)
    conn.receive_data(client_request())
    (event,) = conn.events()
    assert event.request.headers.get("sec-websocket-key") == KEY
    response = conn.accept(extra_headers=[("X-Served-By", "test")])
    assert response == (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nX-Served-By: test\r\n\r\n"
    )
    assert conn.state is State.OPEN and conn.subprotocol is None


@pytest.mark.parametrize("name", ["Sec-WebSocket-Accept", "sec-websocket-extensions", "SEC-WEBSOCKET-PROTOCOL",
                                  "upgrade", "Connection"])
def test_server_accept_refuses_reserved_extra_headers(name: str, backend) -> None:
    conn = ServerConnection(backend=backend.name)
    conn.receive_data(client_request())
    list(conn.events())
    with pytest.raises(ValueError):
        conn.accept(extra_headers=[(name, "x")])
    assert conn.state is State.CONNECTING  # still unanswered: accept() works after the mistake
    assert conn.accept().startswith(b"HTTP/1.1 101 ")


@pytest.mark.parametrize("name", ["Host", "upgrade", "CONNECTION", "Sec-WebSocket-Key", "sec-websocket-version",
                                  "Sec-WebSocket-Protocol", "Sec-WebSocket-Extensions"])
def test_client_refuses_reserved_extra_headers(name: str, backend) -> None:
    with pytest.raises(ValueError):
        ClientConnection("example.com", "/", extra_headers=[(name, "x")], backend=backend.name)


def test_server_accept_refuses_unoffered_subprotocol(backend) -> None:
    conn = ServerConnection(backend=backend.name)
    conn.receive_data(client_request(subprotocols=["a"]))
    list(conn.events())
    with pytest.raises(ValueError):
        conn.accept("b")
    assert conn.state is State.CONNECTING
    assert b"Sec-WebSocket-Protocol: a\r\n" in conn.accept("a")


CLIENT_REJECTS = [
    ("status-404", lambda req: b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", 404),
    ("bad-accept", lambda req: server_response(req).replace(b"Accept: ", b"Accept: x"), 0),
    ("no-upgrade", lambda req: server_response(req).replace(b"Upgrade: websocket\r\n", b""), 0),
    ("unoffered-subprotocol", lambda req: server_response(req)[:-2] + b"Sec-WebSocket-Protocol: zz\r\n\r\n", 0),
    ("garbage", lambda req: b"SSH-2.0-OpenSSH\r\n\r\n", 0),
]


@pytest.mark.parametrize("name,make,status", CLIENT_REJECTS, ids=[r[0] for r in CLIENT_REJECTS])
def test_client_rejects_bad_responses(name, make, status, backend) -> None:
    conn = ClientConnection("example.com", backend=backend.name)
    response = make(conn.handshake_request())
    run = drive(conn, [response + b"\x81\x01x"], eof=False)
    assert [type(e) for e in run.events] == [Rejected, Closed]
    assert run.events[0].status == status and run.events[0].reason
    assert run.events[1] == Closed(1006, run.events[0].reason)
    assert run.written == b"" and conn.state is State.CLOSED and conn.should_close_transport


def test_client_eof_during_handshake(backend) -> None:
    conn = ClientConnection("example.com", backend=backend.name)
    run = drive(conn, [b"HTTP/1.1 101 Switching"], eof=True)
    reason = "connection closed during the handshake"
    assert norm(run.events) == norm([Rejected(0, reason), Closed(1006, reason)])
    assert conn.should_close_transport


@pytest.mark.parametrize("call", [
    lambda c: c.send_text(b"bytes"),
    lambda c: c.close(1000, b"reason"),
    lambda c: c.close(1000.0),
    lambda c: c.close(True),
])
def test_wrong_argument_types_are_type_errors(backend, call) -> None:
    conn = Connection(backend=backend.name)
    with pytest.raises(TypeError):
        call(conn)
    assert conn.state is State.OPEN  # nothing was half-done


@pytest.mark.parametrize("option", ["max_message_size", "max_frame_size", "max_fragments"])
def test_negative_limits_are_refused(backend, option) -> None:
    with pytest.raises(ValueError):
        Connection(backend=backend.name, **{option: -5})


def test_fragment_limit_needs_at_least_one_frame(backend) -> None:
    with pytest.raises(ValueError):
        Connection(backend=backend.name, max_fragments=0)
    assert Connection(backend=backend.name, max_fragments=None).max_fragments is None


def _parsed(raw: bytes) -> hs.Request:
    reader = hs.HeadReader()
    assert reader.feed(raw)
    return hs.parse_request(reader)


def test_receive_request_takes_a_request_another_server_parsed(backend) -> None:
    client = ClientConnection("example.com", "/chat", subprotocols=["chat"], backend=backend.name)
    request = _parsed(client.handshake_request())
    assert request.wants_websocket
    server = ServerConnection(subprotocols=["chat"], backend=backend.name)
    server.receive_request(request)
    assert list(server.events()) == [Request(request)]
    with pytest.raises(InvalidState):
        server.receive_request(request)
    client.receive_data(server.accept())
    assert [type(e) for e in client.events()] == [Accepted]
    assert server.subprotocol == client.subprotocol == "chat"


def test_receive_request_checks_like_bytes_do(backend) -> None:
    request = _parsed(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
    assert request.wants_websocket  # asks for it, without a key: invalid
    server = ServerConnection(backend=backend.name)
    server.receive_request(request)
    events = list(server.events())
    assert [type(e) for e in events] == [Rejected, Closed] and events[0].status == 400
    assert server.data_to_send().startswith(b"HTTP/1.1 400 ")
    assert not _parsed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").wants_websocket


# --- take_messages(): messages in batches, everything else through events() ------------


def _masked(opcode: int, payload: bytes = b"", fin: bool = True) -> bytes:
    return raw_frame(opcode, payload, fin=fin, key=PEER_KEY)


def test_take_messages_stops_at_a_control_frame(backend) -> None:
    conn = Connection(backend=backend.name)
    conn.receive_data(_masked(TEXT, b"a") + _masked(BINARY, b"b") + _masked(PING, b"p") + _masked(TEXT, b"c"))
    assert conn.take_messages() == ["a", b"b"]
    assert conn.data_to_send() == b""  # the ping is not acted on yet: no pong before the answers to a and b
    assert conn.has_pending_input
    assert norm([next(conn.events())]) == norm([Ping(b"p")])
    check_written(conn.data_to_send(), "server", [(PONG, b"p")])
    assert conn.take_messages() == ["c"]
    assert conn.take_messages() == [] and not conn.has_pending_input


def test_take_messages_assembles_fragments_and_stops_at_a_ping_among_them(backend) -> None:
    conn = Connection(backend=backend.name)
    conn.receive_data(_masked(TEXT, b"he", fin=False) + _masked(PING) + _masked(CONT, b"llo") + _masked(BINARY, b"x"))
    assert conn.take_messages() == []  # the first fragment is taken; the ping comes before the message ends
    assert norm([next(conn.events())]) == norm([Ping(b"")])
    assert conn.take_messages() == ["hello", b"x"]


def test_take_messages_leaves_a_protocol_violation_for_events(backend) -> None:
    conn = Connection(backend=backend.name)
    conn.receive_data(_masked(TEXT, b"ok") + _masked(0x3, b"reserved opcode") + _masked(TEXT, b"never"))
    assert conn.take_messages() == ["ok"]
    assert conn.data_to_send() == b"" and conn.state is State.OPEN
    events = list(conn.events())
    assert [type(e) for e in events] == [Closed] and events[0].code == 1002
    assert [f.opcode for f in parse_frames(conn.data_to_send())] == [CLOSE]


def test_take_messages_is_empty_where_events_must_be_used(backend) -> None:
    server = ServerConnection(backend=backend.name)
    server.receive_data(hs.build_request("h", "/", key=hs.new_key()))
    assert server.take_messages() == []  # the handshake: a Request event first
    assert [type(e) for e in server.events()] == [Request]
    streaming = Connection(stream=True, backend=backend.name)
    streaming.receive_data(_masked(TEXT, b"a"))
    assert streaming.take_messages() == []
    assert norm(list(streaming.events())) == norm([Fragment("a", True, True)])
    closing = Connection(backend=backend.name)
    closing.close()
    closing.receive_data(_masked(TEXT, b"discarded") + _masked(CLOSE, close_body(1000)))
    assert closing.take_messages() == []
    assert norm(list(closing.events())) == norm([CloseReceived(1000, ""), Closed(1000, "")])
    waiting = Connection(backend=backend.name)
    waiting.receive_data(_masked(PONG) + _masked(TEXT, b"after"))
    assert next(waiting.events()) == Pong(b"")
    assert waiting.take_messages() == ["after"]


def test_has_events_says_when_events_would_yield_nothing(backend) -> None:
    conn = Connection(backend=backend.name)
    assert not conn.has_events
    conn.receive_data(_masked(TEXT, b"a")[:3])  # half a frame: nothing to report yet
    assert not conn.has_events and list(conn.events()) == []
    conn.receive_data(_masked(TEXT, b"a")[3:])
    assert conn.has_events
    assert conn.take_messages() == ["a"] and not conn.has_events
    conn.receive_data(_masked(0x3))  # a protocol error, not yet reported
    assert conn.has_events
    assert [type(e) for e in conn.events()] == [Closed]
    ended = Connection(backend=backend.name)
    ended.receive_eof()
    assert ended.has_events  # the EOF is still to be reported
    assert list(ended.events()) == [Closed(1006, "")]


def test_take_messages_takes_at_most_limit(backend) -> None:
    conn = Connection(backend=backend.name)
    conn.receive_data(b"".join(_masked(TEXT, str(i).encode()) for i in range(5))
                      + _masked(TEXT, b"5", fin=False) + _masked(CONT, b"!"))
    assert conn.take_messages(0) == []
    assert conn.take_messages(2) == ["0", "1"]
    assert conn.take_messages(1) == ["2"]
    assert conn.take_messages() == ["3", "4", "5!"]
    conn.receive_data(_masked(TEXT, b"a", fin=False) + _masked(CONT, b"b") + _masked(BINARY, b"c"))
    assert conn.take_messages(1) == ["ab"]
    assert conn.take_messages(1) == [b"c"]


def test_messages_keep_their_order_across_partial_takes_new_reads_and_events(backend) -> None:
    """Frames parsed but not yet taken wait in front of those a later read adds, whoever takes them."""
    conn = Connection(backend=backend.name)
    conn.receive_data(b"".join(_masked(TEXT, str(i).encode()) for i in range(4)))
    assert conn.take_messages(1) == ["0"]
    conn.receive_data(_masked(PING, b"p") + _masked(TEXT, b"4"))  # two still waiting in front of these
    assert conn.take_messages(1) == ["1"]
    assert [type(e) for e in [next(conn.events()), next(conn.events())]] == [TextMessage, TextMessage]
    conn.receive_data(_masked(TEXT, b"5", fin=False))
    assert norm([next(conn.events())]) == norm([Ping(b"p")])
    conn.receive_data(_masked(CONT, b"!") + _masked(BINARY, b"6"))
    assert conn.take_messages() == ["4", "5!", b"6"]
    assert not conn.has_pending_input and not conn.has_events


def test_a_failure_in_a_batch_discards_what_follows_it(backend) -> None:
    conn = Connection(backend=backend.name)
    bad = _masked(TEXT, b"\xce", fin=False) + _masked(CONT, b"\xff")  # invalid UTF-8 across two frames
    conn.receive_data(_masked(TEXT, b"ok") + bad + _masked(TEXT, b"never") + _masked(TEXT, b"nor this"))
    assert conn.take_messages() == ["ok"]
    events = list(conn.events())
    assert [type(e) for e in events] == [Closed] and events[0].code == 1007
    assert conn.take_messages() == [] and not conn.has_pending_input


@pytest.mark.parametrize("cls", [Connection, ServerConnection, ClientConnection])
def test_connections_have_no_instance_dict(cls) -> None:
    """Slots: an instance dict of over 30 attributes would cost 1.5 KiB per connection (issue 12)."""
    conn = cls("h") if cls is ClientConnection else cls()
    assert not hasattr(conn, "__dict__")
    with pytest.raises(AttributeError):
        conn.not_an_attribute = 1  # type: ignore[attr-defined]


@pytest.mark.parametrize("role", ROLES)
def test_payload_awaited(role: str, backend) -> None:
    """What a driver may read in one go: the rest of the payload in progress, and nothing between frames."""
    conn = Connection(client=role == "client", backend=backend.name)
    assert conn.payload_awaited == 0
    data, _ = wire([F(BINARY, b"p" * 200_000), F(TEXT, b"after")], role)
    head = len(data) - 200_000 - len(wire([F(TEXT, b"after")], role)[0])
    conn.receive_data(data[: head + 1000])
    assert conn.payload_awaited == 199_000
    conn.receive_data(data[head + 1000 : head + 150_000])
    assert conn.payload_awaited == 50_000
    conn.receive_data(data[head + 150_000 :])
    assert conn.payload_awaited == 0
    assert conn.take_messages() == [b"p" * 200_000, "after"]
