#!/usr/bin/env python3
"""Fuzz target: the opening-handshake parsers, server reading a request and client reading a response.

Both go through the public connections (``ServerConnection``,
``ClientConnection``) so the head reader, the request/response parsers and
the checks run exactly as in use, on both backends, with the head delivered
whole and in fuzzer-chosen pieces (and optionally followed by EOF).

Server mode: the bytes are the request (limits on line length, header count
and head size, Origin allow-list and subprotocols chosen by the input).
Client mode: the bytes are the response; ``@ACCEPT@`` in them is replaced by
the Sec-WebSocket-Accept the (deterministic) key calls for, so mutations of a
valid response get past the key check.

Checked: the four runs (two backends x whole / chunked) give the same events,
the same bytes to send and the same final state; nothing raises; a refusal is
a well-formed HTTP response with a documented status (400, 403, 405, 426,
431) and a matching Content-Length; an accepted request passes independent
checks (GET, HTTP/1.1+, one Host, one canonical 16-byte key, version 13) and
``accept()`` returns a 101 with the right Sec-WebSocket-Accept; handing the
parsed request to ``receive_request`` gives the same event; a client accepts
only a 101 carrying the right accept value exactly once.
"""

from __future__ import annotations

import base64
import re

import atheris

from _common import URANDOM, accept_value, check_equal, consume_chunking, finding, norm_event, patch_urandom, run, split
import wsframe

patch_urandom()
SERVER_STATUSES = (400, 403, 405, 426, 431)


def drive(conn, pieces, eof: bool, on_request):
    record = []
    auto = bytearray()
    try:
        for piece in pieces:
            conn.receive_data(piece)
            auto += conn.data_to_send()
        if eof:
            conn.receive_data(b"")
        for event in conn.events():
            ev = norm_event(event)
            record.append(("event", ev))
            if ev[0] == "Request" and on_request is not None:
                record.append(("answer", on_request(conn)))
        auto += conn.data_to_send()
        record.append(("auto", bytes(auto)))
    except wsframe.WebSocketError as exc:
        finding("handshake.raises", f"{type(exc).__name__}: {exc}")
    except Exception as exc:  # noqa: BLE001
        finding("handshake.raises", f"{exc!r}")
    return tuple(record), conn.state.name, conn.should_close_transport


def check_http_error(out: bytes, status: int) -> None:
    head, sep, body = out.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    if not sep or not lines[0].startswith(b"HTTP/1.1 %d " % status):
        finding("handshake.server.error-response", f"refusal {status} answered with {out!r:.200}")
        return
    fields = {}
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not re.fullmatch(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+", name):
            finding("handshake.server.error-response", f"bad header line {line!r} in {out!r:.200}")
        fields.setdefault(name.lower(), []).append(value.strip())
    if fields.get(b"content-length") != [str(len(body)).encode()]:
        finding("handshake.server.error-response", f"Content-Length vs a {len(body)}-byte body: {out!r:.200}")


def check_accepted_request(ev: tuple, answer: bytes) -> None:
    _, method, target, version, headers = ev
    low = {}
    for name, value in headers:
        low.setdefault(name.lower(), []).append(value)
    problems = []
    if method != "GET":
        problems.append("method")
    m = re.fullmatch(r"HTTP/(\d)\.(\d)", version)
    if not m or (int(m[1]), int(m[2])) < (1, 1):
        problems.append("version")
    if len(low.get("host", [])) != 1 or not low["host"][0]:
        problems.append("host")
    keys = low.get("sec-websocket-key", [])
    try:
        ok = len(keys) == 1 and len(base64.b64decode(keys[0], validate=True)) == 16 \
            and base64.b64encode(base64.b64decode(keys[0])).decode() == keys[0]
    except Exception:  # noqa: BLE001
        ok = False
    if not ok:
        problems.append("key")
    if low.get("sec-websocket-version") != ["13"]:
        problems.append("ws-version")
    if not target.startswith("/") and "://" not in target:
        problems.append("target")
    if problems:
        finding("handshake.server.accepted-invalid", f"accepted a request with bad {problems}: {ev!r:.300}")
        return
    want = b"\r\nSec-WebSocket-Accept: " + accept_value(keys[0]).encode() + b"\r\n"
    if not answer.startswith(b"HTTP/1.1 101 ") or want not in answer:
        finding("handshake.server.accept-response", f"accept() gave {answer!r:.300}")


def server_mode(fdp: atheris.FuzzedDataProvider) -> None:
    limits = fdp.PickValueInList([(8190, 128, 65536), (8190, 128, 65536), (40, 128, 65536), (8190, 4, 65536),
                                  (8190, 128, 150), (16, 3, 60)])
    origins = fdp.PickValueInList([None, None, ["http://example.com"], [None, "http://example.com"]])
    protocols = fdp.PickValueInList([(), ("chat",), ("superchat", "chat")])
    eof = fdp.ConsumeBool()
    plan = consume_chunking(fdp)
    data = fdp.ConsumeBytes(fdp.remaining_bytes())

    def make(name):
        return wsframe.ServerConnection(backend=name, origins=origins, subprotocols=protocols,
                                        max_request_line=limits[0], max_request_headers=limits[1],
                                        max_request_size=limits[2])

    def on_request(conn):
        try:
            return conn.accept()
        except Exception as exc:  # noqa: BLE001
            finding("handshake.server.accept-raises", f"accept() raised {exc!r}")
            return b""

    results = {}
    for name in ("python", "cython"):
        results[f"{name}/whole"] = drive(make(name), [data] if data else [], eof, on_request)
        results[f"{name}/chunked"] = drive(make(name), split(data, plan), eof, on_request)
    check_equal("handshake.server.backends", "server handshake outcomes",
                {k: v for k, v in results.items() if k.endswith("/whole")})
    check_equal("handshake.server.chunking", "server handshake outcomes", results)

    record = results["python/whole"][0]
    events = [r[1] for r in record if r[0] == "event"]
    if not events:
        return
    first = events[0]
    if first[0] == "Rejected":
        status = first[1]
        auto = b"".join(r[1] for r in record if r[0] == "auto")
        if status == 0:
            if auto:
                finding("handshake.server.error-response", f"Rejected(0) but wrote {auto!r:.200}")
        elif status not in SERVER_STATUSES:
            finding("handshake.server.status", f"undocumented status {first!r}")
        else:
            check_http_error(auto, status)
    elif first[0] == "Request":
        answer = next(r[1] for r in record if r[0] == "answer")
        check_accepted_request(first, answer)
        # The same request, parsed by "another server", must give the same event.
        conn = make("python")
        parsed = None
        probe = make("python")
        probe.receive_data(data)
        for event in probe.events():
            if type(event).__name__ == "Request":
                parsed = event.request
                break
        conn.receive_request(parsed)
        again = [norm_event(e) for e in conn.events()]
        if again[:1] != [first]:
            finding("handshake.server.receive-request", f"receive_request gave {again!r:.200}, bytes gave {first!r:.200}")
    else:
        finding("handshake.server.first-event", f"first event {first!r:.200}")


def client_mode(fdp: atheris.FuzzedDataProvider) -> None:
    protocols = fdp.PickValueInList([(), ("chat",), ("chat", "superchat")])
    eof = fdp.ConsumeBool()
    plan = consume_chunking(fdp)
    data = fdp.ConsumeBytes(fdp.remaining_bytes())

    def make(name):
        URANDOM.reset(7)
        return wsframe.ClientConnection("example.com", "/chat", subprotocols=protocols, backend=name)

    request = make("python").handshake_request()
    key = re.search(rb"\r\nSec-WebSocket-Key: ([^\r]*)\r\n", request).group(1).decode()
    accept = accept_value(key).encode()
    data = data.replace(b"@ACCEPT@", accept)

    results = {}
    for name in ("python", "cython"):
        results[f"{name}/whole"] = drive(make(name), [data] if data else [], eof, None)
        results[f"{name}/chunked"] = drive(make(name), split(data, plan), eof, None)
    check_equal("handshake.client.backends", "client handshake outcomes",
                {k: v for k, v in results.items() if k.endswith("/whole")})
    check_equal("handshake.client.chunking", "client handshake outcomes", results)

    record = results["python/whole"][0]
    auto = b"".join(r[1] for r in record if r[0] == "auto")
    events = [r[1] for r in record if r[0] == "event"]
    if not events:
        return
    first = events[0]
    if first[0] == "Accepted":
        _, chosen, status, reason, headers, body = first
        values = [v for n, v in headers if n.lower() == "sec-websocket-accept"]
        if status != 101 or values != [accept.decode()] or accept not in data:
            finding("handshake.client.accepted-invalid", f"accepted {first!r:.300}")
        if chosen is not None and chosen not in protocols:
            finding("handshake.client.accepted-invalid", f"subprotocol {chosen!r} was not offered")
    elif first[0] == "Rejected":
        if first[1] == 101 or not (first[1] == 0 or 100 <= first[1] <= 999):
            finding("handshake.client.status", f"Rejected with status {first[1]}: {first!r:.200}")
        # The state machine ends every refusal with Closed(1006, the same reason), and nothing else.
        if events[1:] != [("Closed", 1006, first[2])]:
            finding("handshake.client.after-reject", f"events after Rejected: {events!r:.300}")
    else:
        finding("handshake.client.first-event", f"first event {first!r:.200}")
    if first[0] == "Rejected" and auto:
        finding("handshake.client.wrote", f"the client wrote {auto!r:.200} on its own during the handshake")


def TestOneInput(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    if fdp.ConsumeIntInRange(0, 1) == 0:
        server_mode(fdp)
    else:
        client_mode(fdp)


if __name__ == "__main__":
    run(TestOneInput)
