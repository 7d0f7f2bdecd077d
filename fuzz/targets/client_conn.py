#!/usr/bin/env python3
"""Fuzz target: ClientConnection (sans-I/O client role), compiled vs pure, chunked vs whole.

os.urandom is replaced by a deterministic generator (seeded from the input:
seed 0 gives all-zero mask keys), so the Sec-WebSocket-Key, hence the
Sec-WebSocket-Accept of the valid 101 response built here, and every mask key
are the same for both backends. After the 101 (in its own read or glued to
the first frames), the script of server frames, raw bytes, EOFs, drains and
application calls runs as in _conn.py, which says what is compared and checked.
"""

from __future__ import annotations

import re

import atheris

import _conn
from _common import URANDOM, accept_value, finding, patch_urandom, run
import wsframe

patch_urandom()
PROTOCOLS = ((), ("chat",), ("chat", "superchat"))


def TestOneInput(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    options = _conn.consume_options(fdp)
    protocols = PROTOCOLS[fdp.ConsumeIntInRange(0, len(PROTOCOLS) - 1)]
    seed = fdp.ConsumeIntInRange(0, 3)
    chosen = fdp.PickValueInList([None, "chat", "superchat"])
    glue = fdp.ConsumeBool()

    def make(backend_name: str):
        return wsframe.ClientConnection("example.com:8080", "/chat?room=1", subprotocols=protocols,
                                        backend=backend_name, **options)

    URANDOM.reset(seed)
    request = make("python").handshake_request()
    key = re.search(rb"\r\nSec-WebSocket-Key: ([^\r]*)\r\n", request, re.I).group(1).decode()
    head = ["HTTP/1.1 101 Switching Protocols", "Upgrade: websocket", "Connection: Upgrade",
            f"Sec-WebSocket-Accept: {accept_value(key)}"]
    if chosen is not None and chosen in protocols:
        head.append(f"Sec-WebSocket-Protocol: {chosen}")
    response = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")

    ops = _conn.consume_script(fdp, client=True)
    if ops and ops[0][0] == "data" and glue:
        ops[0] = ("data", response + ops[0][1])
    else:
        ops.insert(0, ("data", response))

    def written(run) -> bytes:
        return bytes(run.auto)

    runs = _conn.differential(make, ops, client=True, handshake_reply=None, urandom_seed=seed, head_len=written)
    events = runs["python"].events
    if events and events[0][0] != "Accepted":
        finding("client.valid-101-refused", f"a valid 101 response gave {events[0]!r}")


if __name__ == "__main__":
    run(TestOneInput)
