"""Driving a sans-I/O connection with a script read from the fuzz input (server and client targets).

A script is a list of operations: bytes received (raw fuzzer bytes, or a frame
built here from fuzzer-chosen fields, valid or not), EOF, draining events,
draining ``data_to_send()``, and the application's calls (send_text,
send_binary, send_fragment, send_ping, send_pong, close). The same script runs
on each backend; every call's result (bytes or exception), every event and
every byte written must be identical.

Then the receive-only part of the script runs twice more: the received bytes
in one read with the events drained once at the end, and in the script's reads
with the script's drains. Both must give the same events and the same bytes.

Invariants on every run:
- receive_data(), events(), data_to_send() never raise; the application calls
  raise nothing but InvalidState and ValueError;
- ``Closed`` comes at most once and last; a failure's code is 1002, 1007 or 1009;
  a close handshake reports the peer's code;
- what the connection writes on its own (``data_to_send``) is whole frames,
  masked iff client, final, RSV 0, control frames only: a pong echoing each
  ping in order (while auto_pong), and at most one close frame in the whole
  life of the connection, with a sendable code;
- what a send returns decodes (independently) to the frame asked for.
"""

from __future__ import annotations

import atheris

from _common import (
    BACKENDS,
    URANDOM,
    InvalidState,
    check_equal,
    finding,
    norm_event,
    parse_written,
    sendable_close_code,
    split,
)

OPCODES = (0x1, 0x2, 0x0, 0x9, 0xA, 0x8, 0x3, 0xB)
MAX_MESSAGE = (None, 0, 1, 10, 125, 126, 1000, 70000, 2**20)
MAX_FRAME = (None, None, None, 0, 5, 125, 126, 1000)
CLOSE_CODES = (None, 1000, 1001, 1002, 1003, 1004, 1005, 1006, 1011, 1015, 999, 2999, 3000, 4999, 5000)


def raw_frame(opcode: int, payload: bytes, fin: bool = True, rsv: int = 0, key=None, length_form: int = 0) -> bytes:
    """A frame built by hand: any field values, any of the three length encodings."""
    n = len(payload)
    mbit = 0x80 if key is not None else 0
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    if length_form == 0 and n < 126:
        head += bytes([mbit | n])
    elif length_form <= 1 and n < 65536:
        head += bytes([mbit | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([mbit | 127]) + n.to_bytes(8, "big")
    if key is not None:
        head += key
        payload = bytes(b ^ key[i & 3] for i, b in enumerate(payload))
    return head + payload


def consume_options(fdp: atheris.FuzzedDataProvider) -> dict:
    return {
        "max_message_size": MAX_MESSAGE[fdp.ConsumeIntInRange(0, len(MAX_MESSAGE) - 1)],
        "max_frame_size": MAX_FRAME[fdp.ConsumeIntInRange(0, len(MAX_FRAME) - 1)],
        "stream": fdp.ConsumeIntInRange(0, 3) == 0,
        "auto_pong": fdp.ConsumeIntInRange(0, 7) != 0,
    }


def consume_script(fdp: atheris.FuzzedDataProvider, client: bool) -> list:
    """Operations for the connection; frames sent by the peer are masked iff we are the server."""
    ops = []
    while fdp.remaining_bytes() and len(ops) < 48:
        op = fdp.ConsumeIntInRange(0, 15)
        if op <= 2:
            ops.append(("data", fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 200))))
        elif op <= 7:
            opcode = OPCODES[fdp.ConsumeIntInRange(0, len(OPCODES) - 1)]
            fin = fdp.ConsumeIntInRange(0, 3) != 0
            rsv = fdp.ConsumeIntInRange(1, 7) if fdp.ConsumeIntInRange(0, 15) == 0 else 0
            masked = (not client) != (fdp.ConsumeIntInRange(0, 15) == 0)
            key = (fdp.ConsumeBytes(4).ljust(4, b"\x00")) if masked else None
            kind = fdp.ConsumeIntInRange(0, 5)
            if kind == 0:
                payload = fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 40)).encode("utf-8")
            elif kind == 1 and opcode == 0x8:  # a close payload: code + reason
                code = CLOSE_CODES[fdp.ConsumeIntInRange(1, len(CLOSE_CODES) - 1)]
                payload = code.to_bytes(2, "big") + fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 10))
            elif kind == 2:
                pattern = fdp.ConsumeBytes(fdp.ConsumeIntInRange(1, 8)) or b"x"
                n = fdp.PickValueInList([0, 1, 125, 126, 200, 1001, 65536, 70001])
                payload = (pattern * (n // len(pattern) + 1))[:n]
            else:
                payload = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 130))
            form = fdp.ConsumeIntInRange(0, 2) if fdp.ConsumeIntInRange(0, 7) == 0 else 0
            ops.append(("data", raw_frame(opcode, payload, fin, rsv, key, form)))
        elif op == 8:
            ops.append(("events",))
        elif op == 9:
            ops.append(("eof",))
        elif op == 10:
            ops.append(("flush",))
        elif op == 11:
            what = fdp.PickValueInList(["text", "binary", "send", "ping", "pong"])
            if what in ("text", "send") and fdp.ConsumeBool():
                data = fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 40))
            else:
                data = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 130))
                if what == "text":
                    data = data.decode("latin-1")
            ops.append(("send", what, data))
        elif op == 12:
            text = fdp.ConsumeBool()
            data = fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 20))
            ops.append(("fragment", data if text else data.encode("utf-8"), fdp.ConsumeBool()))
        elif op == 13:
            code = CLOSE_CODES[fdp.ConsumeIntInRange(0, len(CLOSE_CODES) - 1)]
            reason = fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 4) * 40) if fdp.ConsumeBool() else ""
            ops.append(("close", code, reason))
        else:
            ops.append(("events",))
    return ops


class Run:
    """One connection driven through a script; records everything observable."""

    def __init__(self, make, backend_name: str, backend, handshake_reply) -> None:
        self.name = backend_name
        self.conn = make(backend_name)
        self.handshake_reply = handshake_reply  # server: called with the Request event, returns bytes
        self.record: list = []
        self.events: list = []
        self.auto: bytearray = bytearray()  # data_to_send(), all of it
        self.sent: list = []  # (what we asked, bytes returned)

    def drain(self) -> None:
        try:
            for event in self.conn.events():
                ev = norm_event(event)
                self.events.append(ev)
                self.record.append(("event", ev))
                if ev[0] == "Request" and self.handshake_reply is not None:
                    out = self.handshake_reply(self.conn)
                    self.record.append(("answer", out))
        except Exception as exc:  # noqa: BLE001 - events() must never raise
            finding("conn.raises", f"{self.name}: events() raised {exc!r}")

    def flush(self) -> None:
        try:
            out = self.conn.data_to_send()
        except Exception as exc:  # noqa: BLE001
            finding("conn.raises", f"{self.name}: data_to_send() raised {exc!r}")
            return
        self.auto += out
        self.record.append(("auto", out))

    def app(self, op) -> None:
        conn = self.conn
        try:
            if op[0] == "send":
                _, what, data = op
                method = {"text": conn.send_text, "binary": conn.send_binary, "send": conn.send,
                          "ping": conn.send_ping, "pong": conn.send_pong}[what]
                out = method(data)
            elif op[0] == "fragment":
                out = conn.send_fragment(op[1], final=op[2])
            else:
                out = conn.close(op[1], op[2])
        except (InvalidState, ValueError, TypeError) as exc:
            self.record.append(("app", op[0], type(exc).__name__, str(exc)))
            return
        except Exception as exc:  # noqa: BLE001
            finding("conn.app-raises", f"{self.name}: {op[0]} raised {exc!r}")
            return
        self.record.append(("app", op[0], out))
        self.sent.append((op, out))

    def step(self, op) -> None:
        kind = op[0]
        try:
            if kind == "data":
                if op[1]:
                    self.conn.receive_data(op[1])
                return
            if kind == "eof":
                self.conn.receive_data(b"")
                return
        except Exception as exc:  # noqa: BLE001 - receive_data() must never raise
            finding("conn.raises", f"{self.name}: receive_data raised {exc!r}")
            return
        if kind == "events":
            self.drain()
        elif kind == "flush":
            self.flush()
        else:
            self.app(op)

    def finish(self) -> tuple:
        self.drain()
        self.flush()
        c = self.conn
        return (tuple(self.record), c.state.name, c.close_code, c.close_reason, c.should_close_transport)


def check_run(run: Run, client: bool, written_after_handshake: bytes) -> None:
    """Invariants on one run's events and on what it wrote."""
    events = run.events
    closed = [i for i, e in enumerate(events) if e[0] == "Closed"]
    if len(closed) > 1 or (closed and closed[0] != len(events) - 1):
        finding("conn.closed-order", f"{run.name}: Closed not once and last: {events!r:.400}")
    received = [e for e in events if e[0] == "CloseReceived"]
    if closed and received and events[closed[0]][1] != received[0][1]:
        finding("conn.close-code", f"{run.name}: CloseReceived {received[0]} then {events[closed[0]]}")
    if closed and not received:
        code = events[closed[0]][1]
        if code not in (1002, 1007, 1009, 1006):
            finding("conn.close-code", f"{run.name}: Closed({code}) without a close frame")

    frames = parse_written(written_after_handshake, masked=client)
    closes = [f for f in frames if f[2] == 0x8]
    app_closes = [out for op, out in run.sent if op[0] == "close"]
    if len(closes) + len(app_closes) > 1:
        finding("conn.two-closes", f"{run.name}: {len(closes)} close frames written on its own, {len(app_closes)} by close()")
    pings = [e[1] for e in events if e[0] == "Ping"]
    pongs = [f[3] for f in frames if f[2] == 0xA]
    if not all(p == q for p, q in zip(pongs, pings)) or len(pongs) > len(pings):
        finding("conn.pongs", f"{run.name}: pongs {pongs!r:.200} do not echo pings {pings!r:.200}")
    for fin, rsv, opcode, payload in frames:
        if not fin or rsv or opcode not in (0x8, 0xA):
            finding("conn.auto-frame", f"{run.name}: wrote ({fin}, {rsv}, {opcode:#x}, {payload!r:.60}) on its own")
        if opcode == 0x8 and payload:
            code = int.from_bytes(payload[:2], "big")
            if len(payload) == 1 or not sendable_close_code(code):
                finding("conn.close-frame", f"{run.name}: wrote a close frame with payload {payload!r}")
            try:
                payload[2:].decode("utf-8")
            except UnicodeDecodeError:
                finding("conn.close-frame", f"{run.name}: close reason not UTF-8: {payload!r}")
    for op, out in run.sent:
        got = parse_written(out, masked=client)
        if len(got) != 1:
            finding("conn.send-frames", f"{run.name}: {op[0]} wrote {len(got)} frames")
            continue
        payload = got[0][3]
        if op[0] in ("send", "fragment"):
            data = op[2] if op[0] == "send" else op[1]
            want = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        elif op[0] == "close":
            want = b"" if op[1] is None else op[1].to_bytes(2, "big") + op[2].encode("utf-8")
        else:
            want = op[2].encode("utf-8") if isinstance(op[2], str) else bytes(op[2])
        if payload != want:
            finding("conn.send-payload", f"{run.name}: {op[0]} wrote payload {payload!r:.80}, asked {want!r:.80}")


def differential(make, ops: list, client: bool, handshake_reply, urandom_seed: int, head_len) -> None:
    """Run ``ops`` on every backend, compare, check invariants, then compare chunkings."""
    results = {}
    runs = {}
    for name, backend in BACKENDS:
        URANDOM.reset(urandom_seed)
        run = Run(make, name, backend, handshake_reply)
        for op in ops:
            run.step(op)
        results[name] = run.finish()
        runs[name] = run
    check_equal("conn.backends", "connection records", results)
    for name, run in runs.items():
        check_run(run, client, head_len(run))

    # Receive only: one read and one drain, versus the script's reads and drains.
    received = [op for op in ops if op[0] == "data" and op[1]]
    eof = any(op[0] == "eof" for op in ops)
    whole = b"".join(op[1] for op in received)
    chunked = [op for op in ops if (op[0] == "data" and op[1]) or op[0] == "events"]
    variants = {}
    for label, script in (("whole", [("data", whole)]), ("chunked", chunked)):
        for name, backend in BACKENDS:
            URANDOM.reset(urandom_seed)
            run = Run(make, name, backend, handshake_reply)
            for op in script + ([("eof",)] if eof else []):
                run.step(op)
            run.finish()
            answers = b"".join(r[1] for r in run.record if r[0] == "answer")
            variants[f"{name}/{label}"] = (run.events, answers, bytes(run.auto))
    check_equal("conn.chunking", "receive-only outcomes", variants)
    return runs
