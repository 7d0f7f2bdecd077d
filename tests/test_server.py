"""The threaded server over real sockets on 127.0.0.1, against both backends.

Clients: the ``websockets`` library's sync client, and a raw client built on
the sans-I/O core (``RawClient``) for peers that misbehave on purpose (never
read, never answer pings, never answer a close). Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import logging
import os
import selectors
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from pathlib import Path
from typing import Any, Deque, Dict, Iterator, List, Optional, Tuple

import pytest
from websockets.exceptions import ConnectionClosed as WSClosed
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from wsframe.protocol import handshake as hs
from wsframe.protocol.connection import ClientConnection
from wsframe.protocol.events import Accepted, CloseReceived, Closed, Ping, TextMessage
from wsframe.protocol.errors import ConnectionClosed
from wsframe import Accept, EventHandler, Refuse, Server, WebSocket, serve, upgrade
from support import read_to_the_end, wait_for
from wsframe.sync.connection import CLOSE_SLOW_CONSUMER

SRC = Path(__file__).resolve().parent.parent / "src"


@pytest.fixture(autouse=True, params=["dontwait", "portable"])
def write_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every server test twice: writes with MSG_DONTWAIT (POSIX), and the path of platforms without it.

    Without it (Windows) sockets are non-blocking and reads wait in poll/select first.
    """
    if request.param == "portable":
        from wsframe.sync import transport

        monkeypatch.setattr(transport, "MSG_DONTWAIT", 0)
    return str(request.param)


# -- helpers -----------------------------------------------------------------------------


@contextlib.contextmanager
def running(handler: Any, backend: Any, **options: Any) -> Iterator[Server]:
    server = serve(handler, "127.0.0.1", 0, backend=backend.name, **options).start()
    try:
        yield server
    finally:
        server.shutdown(timeout=5)


def ws_url(server: Server, path: str = "/", scheme: str = "ws") -> str:
    return f"{scheme}://127.0.0.1:{server.port}{path}"


def client(server: Server, path: str = "/", **kwargs: Any) -> Any:
    kwargs.setdefault("open_timeout", 5)
    kwargs.setdefault("close_timeout", 2)
    return connect(ws_url(server, path), **kwargs)


def echo(ws: WebSocket) -> None:
    for message in ws:
        ws.send(message)


class RawClient:
    """A client on the core's ClientConnection that answers nothing on its own (no pongs, no close reply)."""

    def __init__(self, port: int, backend: Any, path: str = "/", rcvbuf: Optional[int] = None) -> None:
        self.sock = socket.socket()
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(5)
        self.sock.connect(("127.0.0.1", port))
        self.conn = ClientConnection(f"127.0.0.1:{port}", path, auto_pong=False, backend=backend.name)
        self.events: Deque[Any] = deque()
        self.eof = False
        self.sock.sendall(self.conn.handshake_request())
        assert isinstance(self.next_event(5), Accepted)

    def next_event(self, timeout: float = 5.0) -> Any:
        deadline = time.monotonic() + timeout
        while not self.events:
            if self.eof:
                return None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no event")
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                data = b""
            if not data:
                self.eof = True
            self.conn.receive_data(data)
            self.events.extend(self.conn.events())
        return self.events.popleft()

    def send(self, message: Any) -> None:
        self.sock.sendall(self.conn.send(message))

    def close(self) -> None:
        self.sock.close()


def read_eof(sock: socket.socket, timeout: float) -> float:
    """Read and discard until EOF; return when it came (monotonic)."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no EOF")
        sock.settimeout(remaining)
        try:
            if not sock.recv(65536):
                return time.monotonic()
        except (ConnectionResetError, BrokenPipeError):
            return time.monotonic()


def http_get(port: int, path: str = "/", scheme: str = "http", context: Any = None) -> Any:
    try:
        with urllib.request.urlopen(f"{scheme}://127.0.0.1:{port}{path}", timeout=5, context=context) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


# -- basic echo --------------------------------------------------------------------------


def test_echo_text_binary_empty_large_fragmented(backend: Any) -> None:
    with running(echo, backend) as server:
        assert server.port > 0 and server.server_address[0] == "127.0.0.1"
        assert server.backend == backend.name
        with client(server, max_size=2**21) as ws:
            for message in ["hello", "", "héllo wörld ✓", b"\x00\x01\xff", b"", os.urandom(2**20), "x" * 70000]:
                ws.send(message)
                assert ws.recv(timeout=5) == message
            ws.send(["frag", "mented ", "text"])
            assert ws.recv(timeout=5) == "fragmented text"
            ws.send([b"ab", b"", b"cd"])
            assert ws.recv(timeout=5) == b"abcd"


def test_server_sends_fragments_and_ping(backend: Any) -> None:
    results: Dict[str, Any] = {}

    def handler(ws: WebSocket) -> None:
        ws.send_fragments(["one ", "two ", "three"])
        ws.send_fragments([b"\x01", b"\x02"])
        ws.send_fragments([])  # nothing
        pong = ws.ping(b"are you there")
        with contextlib.suppress(TimeoutError):
            ws.recv(timeout=1)  # reads the pong, then times out
        results["pong"] = pong.is_set()
        ws.send("done")

    with running(handler, backend) as server, client(server) as ws:
        assert ws.recv(timeout=5) == "one two three"
        assert ws.recv(timeout=5) == b"\x01\x02"
        assert ws.recv(timeout=5) == "done"
    assert results["pong"] is True


def test_path_headers_subprotocol_address(backend: Any) -> None:
    def handler(ws: WebSocket) -> None:
        ws.send(json.dumps({
            "path": ws.path, "query": ws.query, "header": ws.request_headers["X-Test"],
            "subprotocol": ws.subprotocol, "remote": list(ws.remote_address), "id": ws.id,
        }))
        ws.recv()

    with running(handler, backend, subprotocols=["superchat", "chat"]) as server:
        with client(server, "/room/1?x=y", subprotocols=["chat", "superchat"],
                    additional_headers={"X-Test": "42"}) as ws:
            info = json.loads(ws.recv(timeout=5))
            assert ws.subprotocol == "superchat"
    assert info["path"] == "/room/1" and info["query"] == "x=y" and info["header"] == "42"
    assert info["subprotocol"] == "superchat"
    assert info["remote"][0] == "127.0.0.1" and info["id"].startswith("ws-")


def test_plain_get_gets_426_and_process_request_hook(backend: Any) -> None:
    with running(echo, backend) as server:
        status, headers, body = http_get(server.port)
        assert status == 426 and headers["Upgrade"] == "websocket" and b"WebSocket" in body

    def hook(request: hs.Request) -> Any:
        if request.path == "/health":
            return 200, {"Content-Type": "text/plain"}, "ok"
        return None

    with running(echo, backend, process_request=hook) as server:
        assert http_get(server.port, "/health")[::2] == (200, b"ok")
        assert http_get(server.port, "/other")[0] == 426
        with client(server) as ws:  # upgrades still work
            ws.send("x")
            assert ws.recv(timeout=5) == "x"


def test_invalid_upgrade_and_oversized_head(backend: Any) -> None:
    with running(echo, backend) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
            assert sock.recv(4096).startswith(b"HTTP/1.1 400 ")
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 10000 + b"\r\n\r\n")
            assert sock.recv(4096).startswith(b"HTTP/1.1 431 ")


# -- load --------------------------------------------------------------------------------


def test_200_concurrent_clients_in_order(backend: Any) -> None:
    clients, per_client, window = 200, 40, 10
    failures: List[str] = []

    def run(n: int, server: Server) -> None:
        try:
            with client(server, f"/c{n}") as ws:
                sent = received = 0
                while received < per_client:
                    while sent < per_client and sent - received < window:  # pipelined
                        ws.send(f"{n}:{sent}" if sent % 2 else f"{n}:{sent}".encode())
                        sent += 1
                    message = ws.recv(timeout=20)
                    expected = f"{n}:{received}"
                    if message != (expected if received % 2 else expected.encode()):
                        failures.append(f"client {n}: got {message!r}, expected {expected}")
                        return
                    received += 1
        except Exception as exc:  # reported below
            failures.append(f"client {n}: {exc!r}")

    with running(echo, backend) as server:
        threads = [threading.Thread(target=run, args=(n, server)) for n in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not any(t.is_alive() for t in threads)
    assert failures == []


def test_broadcast_survives_a_client_that_never_reads(backend: Any) -> None:
    write_limit, size, total = 64 * 1024, 16 * 1024, 600
    handlers: Dict[str, WebSocket] = {}
    ended: Dict[str, Any] = {}

    def handler(ws: WebSocket) -> None:
        handlers[ws.path] = ws  # type: ignore[index]
        for _ in ws:
            pass
        ended[ws.path] = (ws.close_code, ws.close_reason)  # type: ignore[index]

    with running(handler, backend, write_limit=write_limit, close_timeout=1, ping_interval=None) as server:
        stuck = RawClient(server.port, backend, "/stuck", rcvbuf=4096)
        readers = [RawClient(server.port, backend, f"/r{i}") for i in range(99)]
        assert wait_for(lambda: len(server.connections) == 100)
        frame_len = len(backend.encode_frame(2, b"x" * size))
        received = {r.sock: 0 for r in readers}
        selector = selectors.DefaultSelector()
        for r in readers:
            r.sock.setblocking(False)
            selector.register(r.sock, selectors.EVENT_READ)
        stop = threading.Event()

        def drain() -> None:  # the 99 good clients read everything, as fast as they can
            while not stop.is_set():
                for key, _ in selector.select(0.05):
                    try:
                        received[key.fileobj] += len(key.fileobj.recv(1 << 20))  # type: ignore[union-attr]
                    except BlockingIOError:
                        pass

        drainer = threading.Thread(target=drain)
        drainer.start()
        peak = 0
        try:
            message = b"x" * size
            for i in range(total):
                server.broadcast(message)
                peak = max([peak] + [ws.buffered_amount for ws in handlers.values()])
                if i % 10 == 9:  # pace: the readers stay within 20 messages
                    target = (i - 19) * frame_len
                    assert wait_for(lambda: min(received.values()) >= target, 10)
            assert wait_for(lambda: min(received.values()) == total * frame_len, 15)
        finally:
            stop.set()
            drainer.join(5)
            selector.close()
        # The stuck client was dropped with 1008; memory stayed bounded; nobody else suffered.
        assert wait_for(lambda: "/stuck" in ended, 5)
        assert ended["/stuck"][0] == CLOSE_SLOW_CONSUMER
        assert handlers["/stuck"].buffered_amount == 0
        assert peak <= write_limit + frame_len
        assert all(v == total * frame_len for v in received.values())
        assert len(server.connections) == 99
        for r in readers + [stuck]:
            r.close()


def test_send_blocks_then_times_out_on_a_client_that_never_reads(backend: Any) -> None:
    outcome: Dict[str, Any] = {}

    def handler(ws: WebSocket) -> None:
        chunk = b"y" * 65536
        start = time.monotonic()
        try:
            for _ in range(2000):
                ws.send(chunk)
                outcome["peak"] = max(outcome.get("peak", 0), ws.buffered_amount)
        except TimeoutError:
            outcome["error"] = "timeout"
        outcome["elapsed"] = time.monotonic() - start
        with contextlib.suppress(Exception):
            ws.recv(timeout=3)
        outcome["code"] = ws.close_code

    with running(handler, backend, write_limit=128 * 1024, send_timeout=0.5, close_timeout=0.5) as server:
        stuck = RawClient(server.port, backend, rcvbuf=4096)
        assert wait_for(lambda: "code" in outcome, 10)
        stuck.close()
    assert outcome["error"] == "timeout"
    assert outcome["code"] == CLOSE_SLOW_CONSUMER
    assert outcome["peak"] <= 128 * 1024 + 65536 + 16
    assert outcome["elapsed"] < 8


def test_send_from_another_thread_while_handler_echoes(backend: Any) -> None:
    count = 200

    def handler(ws: WebSocket) -> None:
        def tick() -> None:
            for i in range(count):
                ws.send(f"tick {i}")

        ticker = threading.Thread(target=tick)
        ticker.start()
        try:
            for message in ws:
                ws.send(message)
        finally:
            ticker.join(10)

    with running(handler, backend) as server, client(server, max_queue=None) as ws:
        for i in range(count):
            ws.send(f"echo {i}")
        got = [ws.recv(timeout=10) for _ in range(2 * count)]
    assert [m for m in got if m.startswith("tick")] == [f"tick {i}" for i in range(count)]
    assert [m for m in got if m.startswith("echo")] == [f"echo {i}" for i in range(count)]


def test_concurrent_senders_over_the_write_limit(backend: Any) -> None:
    def handler(ws: WebSocket) -> None:
        def blast(tag: int) -> None:
            for i in range(20):
                ws.send(bytes([tag, i]) + bytes([tag]) * 65534)

        senders = [threading.Thread(target=blast, args=(tag,)) for tag in range(3)]
        for thread in senders:
            thread.start()
        for thread in senders:
            thread.join(20)
        ws.recv()

    with running(handler, backend, write_limit=16 * 1024) as server, client(server, max_queue=4) as ws:
        seen: Dict[int, List[int]] = {0: [], 1: [], 2: []}
        for _ in range(60):
            message = ws.recv(timeout=10)
            tag, index = message[0], message[1]
            assert len(message) == 65536 and message[2:] == bytes([tag]) * 65534
            seen[tag].append(index)
            time.sleep(0.002)  # a slow reader: the senders hit the limit
    assert all(indexes == list(range(20)) for indexes in seen.values())


def test_close_from_another_thread_while_the_handler_reads(backend: Any) -> None:
    seen: Dict[str, Any] = {}

    def handler(ws: WebSocket) -> None:
        closer = threading.Timer(0.2, lambda: ws.close(4000, "from elsewhere"))
        closer.start()
        try:
            ws.recv(timeout=5)
        except Exception as exc:
            seen["error"] = exc
        closer.join(5)
        seen["code"] = (ws.close_code, ws.close_reason)
        with pytest.raises(ConnectionClosed):
            ws.send("too late")
        ws.close()  # idempotent

    with running(handler, backend) as server, client(server) as ws:
        with pytest.raises(WSClosed) as info:
            ws.recv(timeout=5)
        assert info.value.rcvd is not None and info.value.rcvd.code == 4000
        assert wait_for(lambda: "code" in seen)
    assert isinstance(seen["error"], ConnectionClosed) and seen["code"] == (4000, "from elsewhere")


@pytest.mark.parametrize("batch", [True, False])
def test_write_batching_keeps_order_and_can_be_turned_off(backend: Any, batch: bool) -> None:
    def handler(ws: WebSocket) -> None:
        for message in ws:
            ws.send(message.upper())
            if message == "slow":
                time.sleep(0.5)

    with running(handler, backend, batch_writes=batch) as server:
        raw = RawClient(server.port, backend)
        raw.sock.sendall(b"".join(raw.conn.send(m) for m in ["a", "slow", "c", "d"]))  # one TCP write
        arrivals = []
        start = time.monotonic()
        for _ in range(4):
            event = raw.next_event(5)
            arrivals.append((event, time.monotonic() - start))
        raw.close()
    assert [event for event, _ in arrivals] == [TextMessage(m) for m in ["A", "SLOW", "C", "D"]]
    if not batch:
        assert arrivals[0][1] < 0.4  # written at once
    # with batching, "A" may wait while the handler works on messages that came with it (documented)


# -- timeouts ----------------------------------------------------------------------------


def test_open_timeout_closes_a_slowloris(backend: Any) -> None:
    with running(echo, backend, open_timeout=0.5) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            start = time.monotonic()
            sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgr")
            end = read_eof(sock, 5)
        assert 0.4 <= end - start < 3
        with client(server) as ws:  # the server is fine
            ws.send("ok")
            assert ws.recv(timeout=5) == "ok"


def test_keepalive_closes_a_dead_peer_with_1011(backend: Any) -> None:
    seen: Dict[str, Any] = {}

    def handler(ws: WebSocket) -> None:
        for _ in ws:
            pass
        seen["code"] = (ws.close_code, ws.close_reason)

    with running(handler, backend, ping_interval=0.3, ping_timeout=0.3) as server:
        raw = RawClient(server.port, backend)
        start = time.monotonic()
        events = []
        while True:
            event = raw.next_event(5)
            events.append(event)
            if event is None or isinstance(event, Closed):
                break
        elapsed = time.monotonic() - start
        raw.close()
        assert wait_for(lambda: "code" in seen)
    assert isinstance(events[0], Ping)  # it was pinged, did not answer ...
    assert CloseReceived(1011, "keepalive ping timeout") in events  # ... and was told why
    assert 0.5 <= elapsed < 3
    assert seen["code"] == (1011, "keepalive ping timeout")


def test_keepalive_spares_a_live_peer_while_the_handler_is_busy(backend: Any) -> None:
    def handler(ws: WebSocket) -> None:
        time.sleep(1.2)  # not reading: pongs arrive meanwhile
        for message in ws:
            ws.send(message)

    with running(handler, backend, ping_interval=0.2, ping_timeout=0.2) as server, client(server) as ws:
        ws.send("early")  # queued while the handler sleeps
        time.sleep(1.4)
        ws.send("late")
        assert ws.recv(timeout=5) == "early"
        assert ws.recv(timeout=5) == "late"


def test_close_timeout_when_the_peer_never_answers(backend: Any) -> None:
    seen: Dict[str, Any] = {}

    def handler(ws: WebSocket) -> None:
        start = time.monotonic()
        ws.close(1000, "bye")
        seen["close_took"] = time.monotonic() - start
        seen["code"] = ws.close_code

    with running(handler, backend, close_timeout=0.5) as server:
        raw = RawClient(server.port, backend)
        assert raw.next_event(5) == CloseReceived(1000, "bye")  # and we never answer
        start = time.monotonic()
        end = read_eof(raw.sock, 5)
        raw.close()
        assert wait_for(lambda: "code" in seen)
    assert 0.3 <= end - start < 3
    assert 0.4 <= seen["close_took"] < 3
    assert seen["code"] == 1006


# -- limits and failures -----------------------------------------------------------------


def test_max_connections_refuses_with_503(backend: Any) -> None:
    with running(echo, backend, max_connections=2) as server, contextlib.ExitStack() as stack:
        first = stack.enter_context(client(server))
        stack.enter_context(client(server))
        with pytest.raises(InvalidStatus) as info:
            client(server)
        assert info.value.response.status_code == 503
        assert b"too many connections" in info.value.response.body
        first.close()

        def third_gets_in() -> bool:
            try:
                with client(server):
                    return True
            except InvalidStatus:
                return False

        assert wait_for(third_gets_in, 5, 0.05)


def test_oversized_message_closes_with_1009(backend: Any) -> None:
    with running(echo, backend, max_message_size=1000) as server, client(server) as ws:
        ws.send("x" * 1000)
        assert ws.recv(timeout=5) == "x" * 1000
        ws.send("x" * 1001)
        with pytest.raises(WSClosed) as info:
            ws.recv(timeout=5)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1009


def test_handler_exception_closes_with_1011_and_server_goes_on(backend: Any, caplog: Any) -> None:
    ids: List[str] = []

    def handler(ws: WebSocket) -> None:
        ids.append(ws.id)
        for message in ws:
            if message == "boom":
                raise ValueError("boom")
            ws.send(message)

    caplog.set_level(logging.INFO, logger="wsframe.sync.server")
    with running(handler, backend) as server:
        with client(server) as ws:
            ws.send("boom")
            with pytest.raises(WSClosed) as info:
                ws.recv(timeout=5)
            assert info.value.rcvd is not None and info.value.rcvd.code == 1011
        with client(server) as ws:
            ws.send("still here")
            assert ws.recv(timeout=5) == "still here"
    failed = [r for r in caplog.records if "handler failed" in r.getMessage()]
    assert len(failed) == 1 and failed[0].getMessage().startswith(ids[0] + " ")
    assert failed[0].exc_info is not None


def test_graceful_shutdown_1001_and_no_thread_left(backend: Any) -> None:
    before = set(threading.enumerate())
    server = serve(echo, "127.0.0.1", 0, backend=backend.name).start()
    stack = contextlib.ExitStack()
    clients = [stack.enter_context(client(server)) for _ in range(5)]
    for ws in clients:
        ws.send("hi")
        assert ws.recv(timeout=5) == "hi"
    assert len(server.connections) == 5
    start = time.monotonic()
    server.shutdown()
    assert time.monotonic() - start < 3
    for ws in clients:
        with pytest.raises(WSClosed) as info:
            ws.recv(timeout=5)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1001
    stack.close()
    assert wait_for(lambda: not (set(threading.enumerate()) - before), 5), set(threading.enumerate()) - before
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=2).close()
    server.shutdown()  # idempotent


def test_shutdown_without_serving_and_as_context_manager(backend: Any) -> None:
    before = set(threading.enumerate())
    with serve(echo, "127.0.0.1", 0, backend=backend.name) as server:
        assert server.port > 0
    assert wait_for(lambda: not (set(threading.enumerate()) - before), 5)


# -- TLS ---------------------------------------------------------------------------------


def test_tls_wss(backend: Any, certificate: Any) -> None:
    cert, key = certificate
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    client_context = ssl.create_default_context(cafile=str(cert))
    with running(echo, backend, ssl=server_context) as server:
        with connect(ws_url(server, scheme="wss"), ssl=client_context, open_timeout=5, close_timeout=2) as ws:
            for message in ["secret", os.urandom(300_000), ""]:
                ws.send(message)
                assert ws.recv(timeout=5) == message
        assert http_get(server.port, scheme="https", context=client_context)[0] == 426
        with pytest.raises(ssl.SSLError):  # a client that does not trust the certificate
            connect(ws_url(server, scheme="wss"), ssl=ssl.create_default_context(), open_timeout=5)


# -- event style and http.server ---------------------------------------------------------


def test_event_handler_adapter(backend: Any) -> None:
    closed: List[Any] = []

    class Shout(EventHandler):
        def on_connect(self) -> None:
            self.send(f"welcome {self.ws.path}")

        def on_message(self, message: Any) -> None:
            if message == "fail":
                raise RuntimeError("on purpose")
            self.send(message.upper())

        def on_close(self, code: Any, reason: str) -> None:
            closed.append((code, reason))

    with running(Shout, backend) as server:
        with client(server, "/e") as ws:
            assert ws.recv(timeout=5) == "welcome /e"
            ws.send("hi")
            assert ws.recv(timeout=5) == "HI"
        assert wait_for(lambda: len(closed) == 1)
        with client(server) as ws:
            ws.recv(timeout=5)
            ws.send("fail")
            with pytest.raises(WSClosed):
                ws.recv(timeout=5)
        assert wait_for(lambda: len(closed) == 2)
    assert closed == [(1000, ""), (1011, "internal error")]


def test_upgrade_from_http_server_on_the_same_port(backend: Any) -> None:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/ws":
                with upgrade(self, backend=backend.name, subprotocols=["chat"]) as ws:
                    for message in ws:
                        ws.send(message)
                return
            body = b"plain HTTP"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever)
    thread.start()
    try:
        port = httpd.server_address[1]
        status, _, body = http_get(port, "/")
        assert (status, body) == (200, b"plain HTTP")
        with connect(f"ws://127.0.0.1:{port}/ws", subprotocols=["chat"], open_timeout=5, close_timeout=2) as ws:
            assert ws.subprotocol == "chat"
            for message in ["over http.server", b"\x00" * 100_000]:
                ws.send(message)
                assert ws.recv(timeout=5) == message
        assert http_get(port, "/")[2] == b"plain HTTP"  # still serving HTTP
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:  # a bad upgrade gets a 400
            sock.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
            assert sock.recv(4096).startswith(b"HTTP/1.1 400 ")
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@contextlib.contextmanager
def http_server_upgrading(backend: Any, **options: Any) -> Iterator[Tuple[int, List[hs.HandshakeError]]]:
    """A ThreadingHTTPServer on 127.0.0.1 whose do_GET echoes over upgrade(self, **options).

    Yields (port, refusals): the HandshakeErrors upgrade() raised, for the test to check.
    """
    refusals: List[hs.HandshakeError] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            try:
                ws = upgrade(self, backend=backend.name, close_timeout=2, **options)
            except hs.HandshakeError as exc:
                refusals.append(exc)
                return
            with ws:
                for message in ws:
                    ws.send(message)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1], refusals
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def test_upgrade_from_http_server_runs_process_upgrade(backend: Any) -> None:
    """process_upgrade decides for upgrade() as for serve(): a refusal with its status, headers and body;
    an acceptance with its extra headers (and the permessage-deflate answer serve() gives)."""
    seen: List[str] = []

    def process_upgrade(request: hs.Request) -> Any:
        seen.append(request.target)
        if request.target == "/ws/private":
            return Refuse(401, [("WWW-Authenticate", 'Bearer realm="ws"')], "log in first\n")
        return Accept([("X-Upgrade-Hook", "accepted")])

    with http_server_upgrading(backend, process_upgrade=process_upgrade) as (port, refusals):
        with pytest.raises(InvalidStatus) as info:
            connect(f"ws://127.0.0.1:{port}/ws/private", open_timeout=5, close_timeout=2)
        response = info.value.response
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="ws"'
        assert response.body == b"log in first\n"
        assert wait_for(lambda: len(refusals) == 1)
        assert (refusals[0].status, refusals[0].reason) == (401, "log in first")  # what upgrade() raised
        assert refusals[0].headers == [("WWW-Authenticate", 'Bearer realm="ws"')]
        with connect(f"ws://127.0.0.1:{port}/ws/open", open_timeout=5, close_timeout=2) as ws:
            assert ws.response is not None
            assert ws.response.headers["X-Upgrade-Hook"] == "accepted"
            upgraded_extensions = ws.response.headers["Sec-WebSocket-Extensions"]
            ws.send("hooked")
            assert ws.recv(timeout=5) == "hooked"
        assert seen == ["/ws/private", "/ws/open"]
    with running(echo, backend) as server, client(server) as ws:  # the same answer as serve()'s
        assert ws.response is not None
        assert ws.response.headers["Sec-WebSocket-Extensions"] == upgraded_extensions
    assert "permessage-deflate" in upgraded_extensions


def test_upgrade_from_http_server_runs_select_subprotocol(backend: Any) -> None:
    offers: List[List[str]] = []

    def select_subprotocol(request: hs.Request, offered: List[str]) -> Optional[str]:
        offers.append(list(offered))
        return "second" if "second" in offered else None

    # Without the hook upgrade() would choose "first" (the first of subprotocols the client offers).
    with http_server_upgrading(backend, subprotocols=["first"], select_subprotocol=select_subprotocol) as (port, _):
        with connect(f"ws://127.0.0.1:{port}/ws", subprotocols=["first", "second"], open_timeout=5,
                     close_timeout=2) as ws:
            assert ws.subprotocol == "second"
            ws.send("chosen")
            assert ws.recv(timeout=5) == "chosen"
        assert offers == [["first", "second"]]


def test_upgrade_from_http_server_drains_before_closing(backend: Any) -> None:
    """Bytes the peer sent after its close frame, which nobody will read, are drained before the socket is
    closed: the peer sees our close frame and a FIN, not a reset that could destroy the close frame."""
    with http_server_upgrading(backend) as (port, _):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            conn = ClientConnection(f"127.0.0.1:{port}", "/ws", backend=backend.name)
            sock.sendall(conn.handshake_request())
            while not any(isinstance(e, Accepted) for e in conn.events()):
                conn.receive_data(sock.recv(65536))
            # The close frame, then 60 KB after it (within the kernel buffers) that the server, done reading,
            # never looks at.
            sock.sendall(conn.close(1000, "bye") + conn._frame(0x2, b"x" * 60_000))
            received, ended = read_to_the_end(sock, conn)
    assert ended == "FIN"
    assert any(isinstance(e, CloseReceived) and e.code == 1000 for e in received)


# -- the CLI -----------------------------------------------------------------------------


def test_cli_serves_page_and_echo_and_stops_on_sigterm(backend: Any) -> None:
    env = dict(os.environ)  # the installed wsframe, however it was installed (never src/ directly)
    process = subprocess.Popen(
        [sys.executable, "-m", "wsframe", "serve", "--port", "0", "--backend", backend.name, "--log-level", "warning"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True,
    )
    try:
        banner = read_banner(process)
        assert f"backend {backend.name}" in banner
        port = int(banner.split("ws://127.0.0.1:")[1].split("/")[0])
        status, headers, body = http_get(port, "/")
        assert status == 200 and headers["Content-Type"].startswith("text/html") and b"new WebSocket" in body
        with connect(f"ws://127.0.0.1:{port}/", open_timeout=5, close_timeout=2) as ws:
            ws.send("cli")
            assert ws.recv(timeout=5) == "cli"
            process.send_signal(signal.SIGTERM)
            with pytest.raises(WSClosed) as info:
                ws.recv(timeout=10)
            assert info.value.rcvd is not None and info.value.rcvd.code == 1001
        assert process.wait(10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)
        process.stdout.close()  # type: ignore[union-attr]


def read_banner(process: subprocess.Popen) -> str:
    lines: List[str] = []
    done = threading.Event()

    def read() -> None:
        for line in process.stdout:  # type: ignore[union-attr]
            lines.append(line)
            if "websocket" in line:
                break
        done.set()

    threading.Thread(target=read, daemon=True).start()
    assert done.wait(15), "".join(lines)
    return "".join(lines)


# -- found in review ------------------------------------------------------------------


def test_shutdown_from_a_handler_thread_ends_everything(backend: Any) -> None:
    before = set(threading.enumerate())
    done = threading.Event()

    def handler(ws: WebSocket) -> None:
        for message in ws:
            if message == "stop":
                server.shutdown(timeout=3)  # from the connection's own thread
                done.set()

    server = serve(handler, "127.0.0.1", 0, backend=backend.name)
    server.start()
    with client(server) as ws:
        ws.send("stop")
        with pytest.raises(WSClosed) as info:
            ws.recv(timeout=10)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1001
    assert done.wait(10), "shutdown() raised in the handler instead of returning"
    assert wait_for(lambda: set(threading.enumerate()) <= before, timeout=10), (
        set(threading.enumerate()) - before
    )


def test_recv_from_several_threads_delivers_each_message_once(backend: Any) -> None:
    count = 3000
    got: List[str] = []
    errors: List[BaseException] = []
    lock = threading.Lock()

    def handler(ws: WebSocket) -> None:
        def consume() -> None:
            try:
                while True:
                    message = ws.recv(timeout=10)
                    with lock:
                        got.append(message)
                        if len(got) == count:
                            ws.send("done")
            except ConnectionClosed:
                pass
            except BaseException as exc:  # noqa: BLE001 - recorded for the assertion
                errors.append(exc)

        threads = [threading.Thread(target=consume) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)

    with running(handler, backend) as server:
        with client(server) as ws:
            for i in range(count):
                ws.send(str(i))
            assert ws.recv(timeout=20) == "done"
    assert errors == []
    assert sorted(got, key=int) == [str(i) for i in range(count)]


def test_ping_waiters_are_released_when_the_connection_ends(backend: Any) -> None:
    results: Dict[str, Any] = {}

    checked = threading.Event()

    def handler(ws: WebSocket) -> None:
        first = ws.ping(b"x")
        with pytest.raises(ValueError):
            ws.ping(b"x")  # the same payload is still waiting
        checked.set()
        for _ in ws:
            pass
        results["set"] = first.wait(5)
        results["open"] = ws.open

    with running(handler, backend) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            conn = ClientConnection(f"127.0.0.1:{server.port}", "/", auto_pong=False)
            sock.sendall(conn.handshake_request())
            sock.settimeout(5)
            seen: List[Any] = []
            while not any(isinstance(e, Ping) for e in seen):  # open, and the ping is here
                data = sock.recv(65536)
                assert data, "the server closed before pinging"
                conn.receive_data(data)
                seen.extend(conn.events())
            assert conn.data_to_send() == b""  # auto_pong=False: no answer
            assert checked.wait(5)  # (the maintenance thread reads our close at once while a ping waits)
            sock.sendall(conn.close(1000))  # close without answering the ping
            sock.settimeout(5)
            while sock.recv(65536):
                pass
        assert wait_for(lambda: "set" in results)
    assert results == {"set": True, "open": False}


def test_a_broken_process_request_hook_answers_500(backend: Any) -> None:
    with running(echo, backend, process_request=lambda request: (200, "too short")) as server:
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"http://127.0.0.1:{server.port}/", timeout=5)
        assert info.value.code == 500
    with running(echo, backend, process_request=lambda request: (200, [], 42)) as server:
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"http://127.0.0.1:{server.port}/", timeout=5)
        assert info.value.code == 500
