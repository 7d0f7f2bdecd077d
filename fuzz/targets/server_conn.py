#!/usr/bin/env python3
"""Fuzz target: ServerConnection (sans-I/O server role), compiled vs pure, chunked vs whole.

The input picks the connection's options (message and frame limits, stream
mode, auto_pong, subprotocols), the extra headers of a valid upgrade request
built here (Origin, Sec-WebSocket-Protocol), how to answer it (accept, accept
with a subprotocol, reject), and then a script of received bytes (raw or
frames built from fuzzer-chosen fields), EOFs, event drains and application
calls. See _conn.py for what is compared and checked.
"""

from __future__ import annotations

import atheris

import _conn
from _common import finding, run
import wsframe

KEY = "dGhlIHNhbXBsZSBub25jZQ=="
PROTOCOLS = ((), ("chat",), ("chat", "superchat"))


def build_request(fdp: atheris.FuzzedDataProvider, protocols) -> bytes:
    lines = ["GET /chat?room=1 HTTP/1.1", "Host: example.com", "Upgrade: websocket",
             "Connection: Upgrade", f"Sec-WebSocket-Key: {KEY}", "Sec-WebSocket-Version: 13"]
    if fdp.ConsumeBool():
        lines.append("Origin: http://example.com")
    offered = fdp.PickValueInList(["", "chat", "superchat, chat", "other"])
    if offered:
        lines.append(f"Sec-WebSocket-Protocol: {offered}")
    if fdp.ConsumeIntInRange(0, 3) == 0:
        lines.append("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def TestOneInput(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    options = _conn.consume_options(fdp)
    protocols = PROTOCOLS[fdp.ConsumeIntInRange(0, len(PROTOCOLS) - 1)]
    origins = fdp.PickValueInList([None, None, ["http://example.com"], [None, "http://example.com"]])
    answer = fdp.ConsumeIntInRange(0, 7)
    request = build_request(fdp, protocols)
    ops = _conn.consume_script(fdp, client=False)
    if ops and ops[0][0] == "data" and answer & 1:
        ops[0] = ("data", request + ops[0][1])  # frames in the same read as the request
    else:
        ops.insert(0, ("data", request))

    def make(backend_name: str):
        return wsframe.ServerConnection(backend=backend_name, subprotocols=protocols, origins=origins, **options)

    def reply(conn) -> bytes:
        if answer == 7:
            return conn.reject(403, "no")
        if answer == 6 and "chat" in conn.request.subprotocols:
            return conn.accept("chat")
        return conn.accept()

    def written(run) -> bytes:
        if any(e[0] == "Rejected" for e in run.events):
            return b""  # data_to_send() holds the HTTP error response, not frames
        return bytes(run.auto)

    runs = _conn.differential(make, ops, client=False, handshake_reply=reply, urandom_seed=1, head_len=written)
    events = runs["python"].events
    if origins is None or None in origins or b"Origin:" in request:
        if events and events[0][0] != "Request":
            finding("server.valid-request-refused", f"a valid request gave {events[0]!r}")


if __name__ == "__main__":
    run(TestOneInput)
