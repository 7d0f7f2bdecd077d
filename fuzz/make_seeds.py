"""Write the seed corpora in fuzz/corpus/<target>/ (run: python3 fuzz/make_seeds.py).

The targets read their input through atheris.FuzzedDataProvider, which takes
integers from the END of the input and bytes and booleans from the FRONT.
:class:`Enc` builds inputs the same way, so each seed below says, in the
order the target asks, exactly which options, chunking and bytes it means.
The order of the calls here mirrors the targets' code: keep them in step.

Needs nothing but the standard library (frames and handshakes are built by
hand here, not by wsframe). Existing seeds are replaced; crash reproducers
saved by hand (files named ``finding-*``) are kept.
"""

from __future__ import annotations

import base64
import hashlib
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"

# Must match the tuples in targets/frame_reader.py and targets/_conn.py.
LIMITS = (-1, 0, 1, 2, 125, 126, 127, 200, 65535, 65536, 70000, 2**31, 2**62)
OPCODES_READER = (0x0, 0x1, 0x2, 0x8, 0x9, 0xA, 0x3, 0xB, 0xF)
CONN_OPCODES = (0x1, 0x2, 0x0, 0x9, 0xA, 0x8, 0x3, 0xB)
MAX_MESSAGE = (None, 0, 1, 10, 125, 126, 1000, 70000, 2**20)
MAX_FRAME = (None, None, None, 0, 5, 125, 126, 1000)
CLOSE_CODES = (None, 1000, 1001, 1002, 1003, 1004, 1005, 1006, 1011, 1015, 999, 2999, 3000, 4999, 5000)


class Enc:
    """An input for atheris.FuzzedDataProvider, built call by call."""

    def __init__(self) -> None:
        self.front = bytearray()
        self.tail = bytearray()  # integer bytes in the order they are consumed (from the end)

    def int(self, lo: int, hi: int, value: int) -> "Enc":
        assert lo <= value <= hi, (lo, value, hi)
        delta = hi - lo
        nbytes = (delta.bit_length() + 7) // 8
        self.tail += (value - lo).to_bytes(nbytes, "big") if nbytes else b""
        return self

    def pick(self, size: int, index: int) -> "Enc":
        return self.int(0, size - 1, index)

    def bool(self, value: bool) -> "Enc":
        self.front.append(1 if value else 0)
        return self

    def raw(self, data: bytes) -> "Enc":
        self.front += data
        return self

    def data(self) -> bytes:
        return bytes(self.front) + bytes(reversed(self.tail))


# --- frames and heads, by hand --------------------------------------------------------------


def frame(opcode: int, payload: bytes = b"", fin: bool = True, rsv: int = 0, key=None, form: int = 0) -> bytes:
    n = len(payload)
    mbit = 0x80 if key is not None else 0
    out = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    if form == 0 and n < 126:
        out += bytes([mbit | n])
    elif form <= 1 and n < 65536:
        out += bytes([mbit | 126]) + n.to_bytes(2, "big")
    else:
        out += bytes([mbit | 127]) + n.to_bytes(8, "big")
    if key is not None:
        out += key
        payload = bytes(b ^ key[i & 3] for i, b in enumerate(payload))
    return out + payload


K = b"\x37\xfa\x21\x3d"
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def accept_of(key: str) -> str:
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def head(*lines: str) -> bytes:
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


REQUEST_LINES = ["GET /chat HTTP/1.1", "Host: example.com", "Upgrade: websocket", "Connection: Upgrade",
                 f"Sec-WebSocket-Key: {KEY}", "Sec-WebSocket-Version: 13"]


def request(*extra: str, drop: str = "", first: str = "") -> bytes:
    lines = [first or REQUEST_LINES[0]] + [l for l in REQUEST_LINES[1:] if not (drop and l.startswith(drop))]
    return head(*lines, *extra)


# --- frame_reader ---------------------------------------------------------------------------------


def reader_seed(stream: bytes, require_mask=None, max_frame=-1, max_message=-1, allowed_rsv=0,
                utf8=True, chunks=("whole",), kind=0) -> bytes:
    e = Enc()
    e.int(0, 2, (None, True, False).index(require_mask))
    e.int(0, len(LIMITS) - 1, LIMITS.index(max_frame))
    e.int(0, len(LIMITS) - 1, LIMITS.index(max_message))
    if allowed_rsv:
        e.int(0, 3, 0).int(0, 7, allowed_rsv)
    else:
        e.int(0, 3, 1)
    e.int(0, 7, 1 if utf8 else 0)
    e.int(0, 1, 0)  # mode: raw
    chunking(e, chunks)
    e.int(0, 3, kind)
    e.raw(stream)
    return e.data()


def chunking(e: Enc, plan) -> None:
    if plan[0] == "cuts":
        e.int(0, 3, 0).int(0, 8, len(plan[1]))
        for c in plan[1]:
            e.int(0, 0xFFFF, c)
    elif plan[0] == "every" and plan[1] == 1:
        e.int(0, 3, 1)
    elif plan[0] == "every":
        e.int(0, 3, 2).int(2, 17, plan[1])
    else:
        e.int(0, 3, 3)


def reader_encode_seed(frames, require_mask=None, chunks=("whole",)) -> bytes:
    """Mode 1: frames (opcode, fin, rsv, key, length, pattern) encoded by both backends."""
    e = Enc()
    e.int(0, 2, (None, True, False).index(require_mask))
    e.int(0, len(LIMITS) - 1, 0).int(0, len(LIMITS) - 1, 0)
    e.int(0, 3, 1).int(0, 7, 1)
    e.int(0, 1, 1)  # mode: encode
    chunking(e, chunks)
    e.int(0, 3, 0)
    e.int(0, 6, len(frames))
    for opcode, fin, rsv, key, length, pattern in frames:
        e.int(0, len(OPCODES_READER) - 1, OPCODES_READER.index(opcode))
        e.bool(fin)
        if rsv:
            e.int(0, 7, 0).int(0, 7, rsv)
        else:
            e.int(0, 7, 1)
        e.bool(key is not None)
        if key is not None:
            e.raw(key)
        e.int(0, 7, 0).int(0, 70000, length)
        e.int(1, 64, len(pattern)).raw(pattern)
    e.int(0, 32, 0)
    return e.data()


def frame_reader_seeds() -> dict:
    hello = "Hello, wörld €😀".encode()
    s = {}
    s["text-unmasked"] = reader_seed(frame(0x1, b"Hello"), require_mask=False)
    s["text-masked-rfc"] = reader_seed(bytes.fromhex("818537fa213d7f9f4d5158"), require_mask=True)
    s["binary-masked"] = reader_seed(frame(0x2, bytes(range(40)), key=K), require_mask=True, kind=1)
    s["text-utf8-bytewise"] = reader_seed(frame(0x1, hello, key=K), require_mask=True, chunks=("every", 1))
    s["len16"] = reader_seed(frame(0x2, b"x" * 300, key=K), require_mask=True, chunks=("cuts", [1, 3, 7, 100]))
    s["len16-nonminimal"] = reader_seed(frame(0x2, b"abc", form=1), kind=2)
    s["len64-nonminimal"] = reader_seed(frame(0x1, b"abcdef", form=2, key=K), chunks=("every", 3))
    s["len64-topbit"] = reader_seed(bytes([0x82, 0xFF, 0x80]) + bytes(7) + K)
    s["fragmented-text"] = reader_seed(
        frame(0x1, hello[:8], fin=False, key=K) + frame(0x9, b"ping", key=K)
        + frame(0x0, hello[8:13], fin=False, key=K) + frame(0x0, hello[13:], key=K),
        require_mask=True, chunks=("cuts", [5, 17, 30]))
    s["fragmented-binary"] = reader_seed(frame(0x2, b"ab", fin=False) + frame(0x0, b"", fin=False) + frame(0x0, b"cd"),
                                         require_mask=False, chunks=("every", 2))
    s["close-code-reason"] = reader_seed(frame(0x8, (1000).to_bytes(2, "big") + b"bye", key=K), require_mask=True)
    s["close-empty"] = reader_seed(frame(0x8, b""), require_mask=False)
    s["ping-pong"] = reader_seed(frame(0x9, b"p" * 125, key=K) + frame(0xA, b"", key=K), require_mask=True)
    s["control-too-long"] = reader_seed(frame(0x9, b"p" * 126))
    s["control-fragmented"] = reader_seed(frame(0x9, b"p", fin=False))
    s["reserved-opcode"] = reader_seed(frame(0x3, b"x") + frame(0xB, b""))
    s["rsv-bits"] = reader_seed(frame(0x1, b"x", rsv=4) + frame(0x0, b"y", rsv=4), allowed_rsv=4)
    s["rsv-unnegotiated"] = reader_seed(frame(0x2, b"x", rsv=2))
    s["bad-utf8"] = reader_seed(frame(0x1, b"ok\xed\xa0\x80", key=K), require_mask=True, chunks=("every", 1))
    s["bad-utf8-split"] = reader_seed(frame(0x1, b"\xe0", fin=False) + frame(0x0, b"\x80\x80"))
    s["incomplete-utf8-end"] = reader_seed(frame(0x1, b"\xf0\x9f\x98"))
    s["utf8-off"] = reader_seed(frame(0x1, b"\xff"), utf8=False)
    s["unmasked-to-server"] = reader_seed(frame(0x1, b"x"), require_mask=True)
    s["masked-to-client"] = reader_seed(frame(0x1, b"x", key=K), require_mask=False)
    s["too-big-frame"] = reader_seed(frame(0x2, b"y" * 130), max_frame=126)
    s["too-big-message"] = reader_seed(frame(0x2, b"y" * 100, fin=False) + frame(0x0, b"y" * 100), max_message=127)
    s["continuation-alone"] = reader_seed(frame(0x0, b"x"))
    s["new-message-in-fragmented"] = reader_seed(frame(0x1, b"a", fin=False) + frame(0x2, b"b"))
    s["partial-header"] = reader_seed(frame(0x2, b"z" * 200, key=K)[:3], require_mask=True)
    s["partial-payload"] = reader_seed(frame(0x1, hello, key=K)[:12], require_mask=True, chunks=("every", 5))
    s["encode-mixed"] = reader_encode_seed([(0x1, False, 0, K, 300, b"ab"), (0x9, True, 0, K, 5, b"p"),
                                            (0x0, True, 0, K, 70000, b"0123456789abcdef")], require_mask=True,
                                           chunks=("cuts", [2, 9, 4000, 65000]))
    s["encode-unmasked-64k"] = reader_encode_seed([(0x2, True, 0, None, 65536, bytes(range(0, 256, 4)))],
                                                  require_mask=False, chunks=("every", 17))
    s["encode-invalid"] = reader_encode_seed([(0x9, True, 0, None, 126, b"x"), (0x3, True, 0, None, 1, b"x"),
                                              (0x1, True, 4, K, 3, b"abc")])
    return s


# --- handshake -------------------------------------------------------------------------------------


def handshake_server_seed(data: bytes, limits=0, origins=0, protocols=0, eof=False, chunks=("whole",)) -> bytes:
    e = Enc().int(0, 1, 0)
    e.pick(6, limits).pick(4, origins).pick(3, protocols).bool(eof)
    chunking(e, chunks)
    return e.raw(data).data()


def handshake_client_seed(data: bytes, protocols=0, eof=False, chunks=("whole",)) -> bytes:
    e = Enc().int(0, 1, 1)
    e.pick(3, protocols).bool(eof)
    chunking(e, chunks)
    return e.raw(data).data()


def handshake_seeds() -> dict:
    s = {}
    s["srv-valid"] = handshake_server_seed(request())
    s["srv-valid-bytewise"] = handshake_server_seed(request("Origin: http://example.com"), origins=2, chunks=("every", 1))
    s["srv-valid-frames-after"] = handshake_server_seed(request() + frame(0x1, b"hi", key=K), chunks=("cuts", [50, 150]))
    s["srv-subprotocols"] = handshake_server_seed(request("Sec-WebSocket-Protocol: chat, superchat",
                                                          "Sec-WebSocket-Protocol: other"), protocols=2)
    s["srv-extensions"] = handshake_server_seed(
        request('Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits; x="10", foo'))
    s["srv-bad-extensions"] = handshake_server_seed(request("Sec-WebSocket-Extensions: a; b=\"c d\""))
    s["srv-absolute-target"] = handshake_server_seed(request(first="GET ws://example.com:80/chat?x=1 HTTP/1.1"))
    s["srv-http10"] = handshake_server_seed(request(first="GET / HTTP/1.0"))
    s["srv-post"] = handshake_server_seed(request(first="POST / HTTP/1.1"))
    s["srv-no-key"] = handshake_server_seed(request(drop="Sec-WebSocket-Key"))
    s["srv-bad-key"] = handshake_server_seed(request("Sec-WebSocket-Key: AAAA", drop="Sec-WebSocket-Key"))
    s["srv-version-8"] = handshake_server_seed(request("Sec-WebSocket-Version: 8", drop="Sec-WebSocket-Version"))
    s["srv-two-hosts"] = handshake_server_seed(request("Host: other.example"))
    s["srv-no-upgrade"] = handshake_server_seed(request(drop="Upgrade"))
    s["srv-connection-list"] = handshake_server_seed(request("Connection: keep-alive, Upgrade", drop="Connection"))
    s["srv-origin-refused"] = handshake_server_seed(request("Origin: http://evil.example"), origins=2)
    s["srv-origin-missing"] = handshake_server_seed(request(), origins=2)
    s["srv-folding"] = handshake_server_seed(request("X-A: 1", " folded"))
    s["srv-bare-lf"] = handshake_server_seed(request().replace(b"\r\n", b"\n"), chunks=("every", 3))
    s["srv-leading-crlf"] = handshake_server_seed(b"\r\n\r\n" + request())
    s["srv-control-char"] = handshake_server_seed(request("X-A: a\x01b"))
    s["srv-long-line"] = handshake_server_seed(request("X-Long: " + "a" * 60), limits=2, chunks=("every", 7))
    s["srv-many-headers"] = handshake_server_seed(request("A: 1", "B: 2"), limits=3)
    s["srv-head-too-large"] = handshake_server_seed(request("X-Pad: " + "p" * 40), limits=4, chunks=("cuts", [100, 140]))
    s["srv-truncated-eof"] = handshake_server_seed(request()[:60], eof=True)
    s["srv-garbage"] = handshake_server_seed(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
    accept = "@ACCEPT@"
    resp = ["HTTP/1.1 101 Switching Protocols", "Upgrade: websocket", "Connection: Upgrade",
            f"Sec-WebSocket-Accept: {accept}"]
    s["cli-valid"] = handshake_client_seed(head(*resp))
    s["cli-valid-bytewise-frame"] = handshake_client_seed(head(*resp) + frame(0x1, b"hello"), chunks=("every", 1))
    s["cli-subprotocol"] = handshake_client_seed(head(*resp, "Sec-WebSocket-Protocol: chat"), protocols=1)
    s["cli-subprotocol-unoffered"] = handshake_client_seed(head(*resp, "Sec-WebSocket-Protocol: chat"))
    s["cli-extension-unoffered"] = handshake_client_seed(head(*resp, "Sec-WebSocket-Extensions: permessage-deflate"))
    s["cli-wrong-accept"] = handshake_client_seed(head(*resp[:3], "Sec-WebSocket-Accept: " + accept_of(KEY)))
    s["cli-two-accepts"] = handshake_client_seed(head(*resp, f"Sec-WebSocket-Accept: {accept}"))
    s["cli-no-upgrade"] = handshake_client_seed(head(resp[0], resp[2], resp[3]))
    s["cli-403"] = handshake_client_seed(head("HTTP/1.1 403 Forbidden", "Content-Length: 2") + b"no")
    s["cli-bad-status"] = handshake_client_seed(head("HTTP/1.1 1O1 Switching"), chunks=("every", 4))
    s["cli-no-reason"] = handshake_client_seed(head("HTTP/1.1 101", *resp[1:]))
    s["cli-eof"] = handshake_client_seed(head(*resp)[:30], eof=True)
    s["cli-bare-lf"] = handshake_client_seed(head(*resp).replace(b"\r\n", b"\n"), chunks=("cuts", [10, 40]))
    return s


# --- connections -------------------------------------------------------------------------------------


class Script:
    """The operations of targets/_conn.py consume_script, in its consumption order."""

    def __init__(self, e: Enc, client: bool) -> None:
        self.e = e
        self.client = client

    def data(self, raw: bytes) -> "Script":
        self.e.int(0, 15, 0).int(0, 200, len(raw)).raw(raw)
        return self

    def frame(self, opcode: int, payload: bytes = b"", fin: bool = True, rsv: int = 0, wrong_mask=False,
              key=K, form=0, close_code=None) -> "Script":
        e = self.e
        e.int(0, 15, 3).int(0, len(CONN_OPCODES) - 1, CONN_OPCODES.index(opcode))
        e.int(0, 3, 1 if fin else 0)
        if rsv:
            e.int(0, 15, 0).int(1, 7, rsv)
        else:
            e.int(0, 15, 1)
        e.int(0, 15, 0 if wrong_mask else 1)
        masked = (not self.client) != wrong_mask
        if masked:
            e.raw(key)
        if close_code is not None:
            e.int(0, 5, 1).int(1, len(CLOSE_CODES) - 1, CLOSE_CODES.index(close_code))
            e.int(0, 10, len(payload)).raw(payload)
        else:
            e.int(0, 5, 3).int(0, 130, len(payload)).raw(payload)
        if form:
            e.int(0, 7, 0).int(0, 2, form)
        else:
            e.int(0, 7, 1)
        return self

    def events(self) -> "Script":
        self.e.int(0, 15, 8)
        return self

    def eof(self) -> "Script":
        self.e.int(0, 15, 9)
        return self

    def flush(self) -> "Script":
        self.e.int(0, 15, 10)
        return self

    def send(self, what: str, data: bytes) -> "Script":
        e = self.e.int(0, 15, 11).pick(5, ["text", "binary", "send", "ping", "pong"].index(what))
        if what in ("text", "send"):
            e.bool(False)
        e.int(0, 130, len(data)).raw(data)
        return self

    def close(self, code) -> "Script":
        self.e.int(0, 15, 13).int(0, len(CLOSE_CODES) - 1, CLOSE_CODES.index(code)).bool(False)
        return self


def conn_options(e: Enc, max_message=2**20, max_frame=None, stream=False, auto_pong=True) -> None:
    e.int(0, len(MAX_MESSAGE) - 1, MAX_MESSAGE.index(max_message))
    e.int(0, len(MAX_FRAME) - 1, MAX_FRAME.index(max_frame))
    e.int(0, 3, 0 if stream else 1)
    e.int(0, 7, 1 if auto_pong else 0)


def server_seed(build, protocols=0, origins=0, answer=0, origin=False, offered=0, **options) -> bytes:
    e = Enc()
    conn_options(e, **options)
    e.int(0, 2, protocols).pick(4, origins).int(0, 7, answer)
    e.bool(origin).pick(4, offered).int(0, 3, 1)
    build(Script(e, client=False))
    return e.data()


def client_seed(build, protocols=0, seed=1, chosen=0, glue=False, **options) -> bytes:
    e = Enc()
    conn_options(e, **options)
    e.int(0, 2, protocols).int(0, 3, seed).pick(3, chosen).bool(glue)
    build(Script(e, client=True))
    return e.data()


def conn_scripts():
    """(name, build function, options) shared by the two roles."""
    hello = "héllo €".encode()
    return {
        "text-events": (lambda s: s.frame(0x1, b"Hello").events().flush(), {}),
        "binary-fragmented": (lambda s: s.frame(0x2, b"ab", fin=False).frame(0x9, b"hb").frame(0x0, b"cd")
                              .events().flush(), {}),
        "text-fragmented-utf8": (lambda s: s.frame(0x1, hello[:2], fin=False).frame(0x0, hello[2:]).events(),
                                 {"stream": True}),
        "ping-auto-pong": (lambda s: s.frame(0x9, b"ping!").events().flush().frame(0xA, b"pong").events(), {}),
        "close-handshake": (lambda s: s.frame(0x8, b"bye", close_code=1000).events().flush(), {}),
        "we-close-first": (lambda s: s.close(1000).frame(0x1, b"late").frame(0x8, b"", close_code=1000).events()
                           .flush(), {}),
        "sends": (lambda s: s.send("text", b"hi").send("binary", b"\x00\x01").send("ping", b"p").send("pong", b"")
                  .frame(0x1, b"x").events().close(4999).flush(), {}),
        "too-big": (lambda s: s.frame(0x2, b"y" * 20).events().flush(), {"max_message": 10}),
        "bad-utf8": (lambda s: s.frame(0x1, b"\xc3\x28").events().flush(), {}),
        "bad-close-code": (lambda s: s.frame(0x8, b"", close_code=1005).events().flush(), {}),
        "wrong-mask": (lambda s: s.frame(0x1, b"x", wrong_mask=True).events().flush(), {}),
        "reserved-opcode": (lambda s: s.frame(0x3, b"x").events().flush(), {}),
        "rsv1": (lambda s: s.frame(0x1, b"x", rsv=4).events().flush(), {}),
        "eof-mid-frame": (lambda s: s.data(b"\x81\x85\x00").eof().events().flush(), {}),
        "len16-form": (lambda s: s.frame(0x2, b"z" * 130, form=1).events(), {"max_frame": 1000}),
        "raw-bytes": (lambda s: s.data(b"\x89\x00\x8a\x00").events().flush(), {}),
    }


def server_seeds() -> dict:
    s = {}
    for name, (build, opts) in conn_scripts().items():
        s[name] = server_seed(build, **opts)
    s["subprotocol-origin"] = server_seed(lambda sc: sc.frame(0x1, b"x").events(), protocols=1, origins=3,
                                          answer=6, origin=True, offered=2)
    s["reject"] = server_seed(lambda sc: sc.events().flush(), answer=7)
    s["glued"] = server_seed(lambda sc: sc.frame(0x1, b"glued").events(), answer=1)
    return s


def client_seeds() -> dict:
    s = {}
    for name, (build, opts) in conn_scripts().items():
        s[name] = client_seed(build, **opts)
    s["subprotocol"] = client_seed(lambda sc: sc.frame(0x1, b"x").events(), protocols=2, chosen=1)
    s["zero-mask-keys"] = client_seed(lambda sc: sc.send("binary", b"abc").frame(0x9, b"").events().flush(), seed=0)
    s["glued"] = client_seed(lambda sc: sc.frame(0x1, b"glued").events(), glue=True)
    return s


def finding_seeds() -> dict:
    """Minimal inputs of the findings in docs/fuzzing.md, kept as seeds (F1, F2: UBSan; F3, F4: handshake)."""
    return {
        # F2: a frame whose mask key starts with a byte >= 0x80, read by the compiled FrameReader.
        "frame_reader": {"F2-mask-key-shift": reader_seed(b"\x81\x81\x80\x00\x00\x00x")},
        # F1: encode_frame with such a mask key (mode 1: encode); the reader then hits F2.
        "frame_reader/enc": {"F1-encode-mask-key-shift": reader_encode_seed([(0x1, True, 0, b"\x80\0\0\0", 1, b"x")])},
        # F3: a client reports a malformed status code ("001") as HTTP status 1.
        "handshake": {
            "F3-client-status-001": handshake_client_seed(b"HTTP/1.1 001 X\r\n\r\n"),
            # F4: a 431's reason (and body) depends on where the reads are cut.
            "F4-431-reason-by-chunking": handshake_server_seed(
                b"GET / HTTP/1.1\r\nA: 1234567890123\r\nB: 1234567890123\r\nX: " + b"a" * 40 + b"\r\n\r\n",
                limits=5, chunks=("cuts", [61])),
        },
        # F1: a client's first send (deterministic mask keys, seed 1: the first key starts with 0xd6).
        "client_conn": {"F1-client-send": client_seed(lambda sc: sc.events().send("binary", b"x"))},
    }


def main() -> None:
    for target, seeds in (("frame_reader", frame_reader_seeds()), ("handshake", handshake_seeds()),
                          ("server_conn", server_seeds()), ("client_conn", client_seeds())):
        d = CORPUS / target
        d.mkdir(parents=True, exist_ok=True)
        for old in d.glob("seed-*"):
            old.unlink()
        for name, data in seeds.items():
            (d / f"seed-{name}").write_bytes(data)
        print(f"{target}: {len(seeds)} seeds in {d.relative_to(HERE.parent)}")
    for target, seeds in finding_seeds().items():
        d = CORPUS / target.split("/")[0]
        for name, data in seeds.items():
            (d / f"finding-{name}").write_bytes(data)
            print(f"{target.split('/')[0]}: finding-{name}")


if __name__ == "__main__":
    main()
