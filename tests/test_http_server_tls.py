"""``upgrade()`` under ``http.server`` when the server terminates TLS itself (an ``ssl.SSLSocket``).

A ``ThreadingHTTPServer`` whose listening socket is wrapped with
``context.wrap_socket(..., server_side=True)`` and a certificate made in the
test; the framing backend is the ``backend`` fixture's, passed as an option.
Clients: wsframe's own client, the ``websockets`` sync client, and raw TLS
sockets (early frames in the request's own write, a refused upgrade, what
the server sends after the close). Real sockets on 127.0.0.1; every wait is
bounded; every server is stopped.
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import os
import socket
import ssl
import threading
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pytest
from websockets.exceptions import ConnectionClosed as WSClosed
from websockets.sync.client import connect as ws_connect

import wsframe
from support import wait_for
from wsframe import upgrade
from wsframe.protocol.connection import ClientConnection
from wsframe.protocol.events import Accepted, BinaryMessage, CloseReceived, Closed, TextMessage

TIMEOUT = 10.0
BIG = 2**20  # ~1 MiB messages: more than a TLS record, the relay's buffers and a socket buffer


@pytest.fixture(autouse=True, params=["dontwait", "portable"])
def write_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test twice, as in test_server.py: writes with MSG_DONTWAIT, and the path of platforms without it."""
    if request.param == "portable":
        from wsframe.sync import transport

        monkeypatch.setattr(transport, "MSG_DONTWAIT", 0)
    return str(request.param)


class Record:
    """What the server's handlers saw, for the test to check."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.closed: List[Tuple[str, Optional[int], str]] = []  # (path, close code, close reason)
        self.refused: List[Tuple[int, str]] = []
        self.handler_threads: List[threading.Thread] = []
        self.errors: List[BaseException] = []


@contextlib.contextmanager
def tls_http_server(backend: Any, server_ctx: ssl.SSLContext) -> Iterator[Tuple[int, Record]]:
    """A ThreadingHTTPServer on a TLS-wrapped socket, serving HTTP and WebSockets on one port."""
    record = Record()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            if not self.path.startswith("/ws"):
                body = b"plain HTTPS"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            with record.lock:
                record.handler_threads.append(threading.current_thread())
            try:
                origins = ["https://allowed.example"] if self.path.startswith("/ws-strict") else None
                ws = upgrade(self, backend=backend.name, max_message_size=2 * BIG, close_timeout=5, origins=origins)
            except wsframe.HandshakeError as exc:
                with record.lock:
                    record.refused.append((exc.status, exc.reason))
                return
            try:
                with ws:
                    for message in ws:
                        if message == "close from the server":
                            ws.close(4002, "server says bye")
                            break
                        ws.send(message)
            except BaseException as exc:  # pragma: no cover - shown by the test
                record.errors.append(exc)
                raise
            finally:
                with record.lock:
                    record.closed.append((self.path, ws.close_code, ws.close_reason))

        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.socket = server_ctx.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1], record
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(TIMEOUT)
    assert not record.errors, record.errors


def relay_threads() -> List[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("wsframe-") and t.name.endswith("-tls")]


def freed(record: Record, count: int) -> None:
    """``count`` WebSockets ended: their handlers returned, their server threads and relays are gone."""
    assert wait_for(lambda: len(record.closed) >= count, TIMEOUT), record.closed
    assert wait_for(lambda: not any(t.is_alive() for t in record.handler_threads), TIMEOUT), record.handler_threads
    assert wait_for(lambda: not relay_threads(), TIMEOUT), relay_threads()


# -- raw TLS clients ---------------------------------------------------------------------


def raw_handshake(port: int, client_ctx: ssl.SSLContext, path: str = "/ws", after: bytes = b"",
                  request: Optional[bytes] = None) -> Tuple[ssl.SSLSocket, ClientConnection]:
    """A raw TLS client: sends the request head and ``after`` (early frames) in one write."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    sock = client_ctx.wrap_socket(raw, server_hostname="localhost")
    conn = ClientConnection(f"127.0.0.1:{port}", path)
    head = conn.handshake_request() if request is None else request
    sock.sendall(head + after)
    return sock, conn


def masked(opcode: int, payload: bytes) -> bytes:
    return wsframe.encode_frame(opcode, payload, mask_key=b"\x01\x02\x03\x04")


def read_events(sock: ssl.SSLSocket, conn: ClientConnection, until: Callable[[List[Any]], bool]) -> List[Any]:
    events: List[Any] = []
    deadline = time.monotonic() + TIMEOUT
    while not until(events):
        assert time.monotonic() < deadline, events
        try:
            data = sock.recv(65536)
        except (ssl.SSLEOFError, ssl.SSLZeroReturnError):
            data = b""
        conn.receive_data(data)
        events.extend(conn.events())
        if not data:
            break
    return events


def read_to_end(sock: ssl.SSLSocket) -> bytes:
    """Everything the server sends until it closes the connection (bounded)."""
    rest = b""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        try:
            data = sock.recv(65536)
        except (ssl.SSLEOFError, ssl.SSLZeroReturnError):
            return rest
        if not data:
            return rest
        rest += data
    pytest.fail("the server did not close the connection")


def https_get(port: int, client_ctx: ssl.SSLContext, path: str = "/") -> Tuple[int, bytes]:
    c = http.client.HTTPSConnection("127.0.0.1", port, timeout=TIMEOUT, context=client_ctx)
    try:
        c.request("GET", path)
        response = c.getresponse()
        return response.status, response.read()
    finally:
        c.close()


# -- the tests ---------------------------------------------------------------------------


def test_echo_with_wsframe_client(backend: Any, tls_contexts: Tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    server_ctx, client_ctx = tls_contexts
    big_text = "é" * (BIG // 2)
    big_binary = os.urandom(BIG)
    with tls_http_server(backend, server_ctx) as (port, record):
        assert https_get(port, client_ctx) == (200, b"plain HTTPS")
        with wsframe.connect(f"wss://127.0.0.1:{port}/ws", ssl=client_ctx, proxy=None, open_timeout=TIMEOUT,
                             max_message_size=2 * BIG) as ws:
            for message in ["héllo over TLS", b"\x00\x01\x02", big_text, big_binary, "", b""]:
                ws.send(message)
                assert ws.recv(timeout=TIMEOUT) == message
            for _ in range(3):  # several big messages in flight at once: backpressure through the relay
                ws.send(big_binary)
            assert [ws.recv(timeout=TIMEOUT) for _ in range(3)] == [big_binary] * 3
        assert ws.close_code == 1000
        freed(record, 1)
        assert record.closed == [("/ws", 1000, "")]
        assert https_get(port, client_ctx) == (200, b"plain HTTPS")  # still serving HTTPS on the port


def test_echo_with_websockets_client(backend: Any, tls_contexts: Tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    server_ctx, client_ctx = tls_contexts
    big_binary = os.urandom(BIG)
    with tls_http_server(backend, server_ctx) as (port, record):
        with ws_connect(f"wss://127.0.0.1:{port}/ws", ssl=client_ctx, open_timeout=TIMEOUT, close_timeout=TIMEOUT,
                        max_size=2 * BIG) as client:
            for message in ["from websockets", b"\xff" * 10, "x" * BIG, big_binary]:
                client.send(message)
                assert client.recv(timeout=TIMEOUT) == message
        freed(record, 1)
        assert record.closed == [("/ws", 1000, "")]


def test_close_codes_and_reasons_both_ways(backend: Any, tls_contexts: Tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    server_ctx, client_ctx = tls_contexts
    with tls_http_server(backend, server_ctx) as (port, record):
        # The client closes: the server's handler sees the code and reason.
        with wsframe.connect(f"wss://127.0.0.1:{port}/ws/a", ssl=client_ctx, proxy=None,
                             open_timeout=TIMEOUT) as ws:
            ws.send("ping")
            assert ws.recv(timeout=TIMEOUT) == "ping"
            ws.close(4001, "client says bye")
        assert ws.close_code == 4001  # the server's echo: the peer's code (its reason is the handler's, below)
        freed(record, 1)
        assert record.closed == [("/ws/a", 4001, "client says bye")]
        # The server closes: both clients see its code and reason.
        with wsframe.connect(f"wss://127.0.0.1:{port}/ws/b", ssl=client_ctx, proxy=None,
                             open_timeout=TIMEOUT) as ws:
            ws.send("close from the server")
            with pytest.raises(wsframe.ConnectionClosed):
                ws.recv(timeout=TIMEOUT)
        assert (ws.close_code, ws.close_reason) == (4002, "server says bye")
        freed(record, 2)
        with ws_connect(f"wss://127.0.0.1:{port}/ws/c", ssl=client_ctx, open_timeout=TIMEOUT,
                        close_timeout=TIMEOUT) as client:
            client.send("close from the server")
            with pytest.raises(WSClosed) as info:
                client.recv(timeout=TIMEOUT)
        assert info.value.rcvd is not None
        assert (info.value.rcvd.code, info.value.rcvd.reason) == (4002, "server says bye")
        freed(record, 3)
        with ws_connect(f"wss://127.0.0.1:{port}/ws/d", ssl=client_ctx, open_timeout=TIMEOUT,
                        close_timeout=TIMEOUT) as client:
            client.close(4003, "websockets says bye")
        freed(record, 4)
        # The client's code and reason when it closed; the client's echo of ours when we did (wsframe's
        # client echoes the code only, websockets' the reason too: theirs to choose).
        assert sorted((path, code) for path, code, _ in record.closed) == [
            ("/ws/a", 4001), ("/ws/b", 4002), ("/ws/c", 4002), ("/ws/d", 4003)]
        assert ("/ws/d", 4003, "websockets says bye") in record.closed


def test_early_frames_in_the_request_write(backend: Any, tls_contexts: Tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    """Frames sent with the request head are not lost: neither those in http.server's rfile buffer, nor
    those OpenSSL decrypted already (pending in the SSLSocket), nor those still in the kernel."""
    server_ctx, client_ctx = tls_contexts
    with tls_http_server(backend, server_ctx) as (port, record):
        # Small: the head and two frames in one TLS record, read by http.server's rfile in one read.
        sock, conn = raw_handshake(port, client_ctx, after=masked(0x1, b"early one") + masked(0x1, b"early two"))
        with sock:
            events = read_events(sock, conn, lambda ev: sum(isinstance(e, TextMessage) for e in ev) >= 2)
            assert isinstance(events[0], Accepted)
            assert [e.data for e in events if isinstance(e, TextMessage)] == ["early one", "early two"]
            sock.sendall(conn.close(1000, ""))
            read_events(sock, conn, lambda ev: any(isinstance(e, Closed) for e in ev))
        # Big: a 200 KiB frame right behind the head spans the rfile buffer, OpenSSL's and the kernel's.
        payload = os.urandom(200 * 1024)
        sock, conn = raw_handshake(port, client_ctx, after=masked(0x2, payload) + masked(0x1, b"after"))
        with sock:
            events = read_events(sock, conn, lambda ev: any(isinstance(e, TextMessage) for e in ev))
            assert isinstance(events[0], Accepted)
            assert [e.data for e in events if isinstance(e, (BinaryMessage, TextMessage))] == [payload, "after"]
            sock.sendall(conn.close(1000, ""))
            read_events(sock, conn, lambda ev: any(isinstance(e, Closed) for e in ev))
        freed(record, 2)
        assert [code for _, code, _ in record.closed] == [1000, 1000]


def test_the_connection_is_finished_after_the_close(backend: Any,
                                                    tls_contexts: Tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    """After the closing handshake: exactly the close frame, then TLS close and EOF; the threads are freed."""
    server_ctx, client_ctx = tls_contexts
    before = set(threading.enumerate())
    with tls_http_server(backend, server_ctx) as (port, record):
        sock, conn = raw_handshake(port, client_ctx)
        with sock:
            read_events(sock, conn, lambda ev: any(isinstance(e, Accepted) for e in ev))
            sock.sendall(conn.close(4000, "done"))
            rest = read_to_end(sock)
            # The server's close frame echoes the code; nothing after it (no HTTP response).
            assert rest[:1] == b"\x88" and len(rest) == 2 + rest[1] and rest[2:4] == (4000).to_bytes(2, "big"), rest
            with contextlib.suppress(OSError):  # a second request on the connection goes nowhere
                sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                assert read_to_end(sock) == b""
        freed(record, 1)
        assert record.closed == [("/ws", 4000, "done")]
        conn.receive_data(rest)
        assert any(isinstance(e, CloseReceived) for e in conn.events())
    # The server's own threads, the handlers' and the relays' are all gone (the maintenance thread may stay).
    left = [t for t in set(threading.enumerate()) - before if t.is_alive() and "maintenance" not in t.name]
    assert wait_for(lambda: not [t for t in left if t.is_alive()], TIMEOUT), left


def test_refused_upgrade_gets_its_http_error_over_tls(backend: Any,
                                                      tls_contexts: Tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    server_ctx, client_ctx = tls_contexts
    with tls_http_server(backend, server_ctx) as (port, record):
        bad = b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"  # no key
        sock, _ = raw_handshake(port, client_ctx, request=bad)
        with sock:
            answer = read_to_end(sock)
        assert answer.startswith(b"HTTP/1.1 400 "), answer
        assert wait_for(lambda: len(record.refused) == 1, TIMEOUT)
        assert record.refused[0][0] == 400
        with pytest.raises(wsframe.InvalidStatus) as info:  # a refused Origin: wsframe's client sees the 403
            wsframe.connect(f"wss://127.0.0.1:{port}/ws-strict", ssl=client_ctx, proxy=None, open_timeout=TIMEOUT,
                            origin="https://elsewhere.example")
        assert info.value.response.status == 403
        assert wait_for(lambda: len(record.refused) == 2, TIMEOUT)
        assert record.refused[1][0] == 403
        with wsframe.connect(f"wss://127.0.0.1:{port}/ws-strict", ssl=client_ctx, proxy=None, open_timeout=TIMEOUT,
                             origin="https://allowed.example") as ws:  # the same endpoint, an allowed Origin
            ws.send("allowed")
            assert ws.recv(timeout=TIMEOUT) == "allowed"
        freed(record, 1)
        assert https_get(port, client_ctx) == (200, b"plain HTTPS")
        assert record.closed == [("/ws-strict", 1000, "")]
