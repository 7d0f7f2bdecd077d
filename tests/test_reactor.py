"""Event-style handlers on the reactor and on threads: the same behaviour, and what only the reactor has.

Shared tests run on both styles (``style`` fixture) and both backends.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import socket
import ssl
import threading
import time
from typing import Any, Iterator, List, Optional, Tuple

import pytest
from websockets.sync.client import connect as ws_connect

import wsframe
from support import read_to_the_end, wait_for
from wsframe import ClientConnection, EventHandler, serve
from wsframe.reactor import ReactorServer
from wsframe.reactor.loop import Loop


@pytest.fixture(params=["reactor", "threaded"])
def style(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@contextlib.contextmanager
def running(handler: type, backend: Any, style: str = "reactor", **options: Any) -> Iterator[Any]:
    server = serve(handler, "127.0.0.1", 0, backend=backend.name, threaded=style == "threaded", **options).start()
    try:
        yield server
    finally:
        server.shutdown(timeout=5)


class Echo(EventHandler):
    def on_message(self, message: Any) -> None:
        self.send(message)


def raw(port: int, backend: Any, rcvbuf: Optional[int] = None) -> Tuple[socket.socket, ClientConnection]:
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(5)
    sock.connect(("127.0.0.1", port))
    conn = ClientConnection(f"127.0.0.1:{port}", "/", auto_pong=False, backend=backend.name)
    sock.sendall(conn.handshake_request())
    while True:
        data = sock.recv(65536)
        assert data
        conn.receive_data(data)
        if list(conn.events()):
            return sock, conn


# -- shared by both styles ------------------------------------------------------------------------


def test_serve_picks_the_reactor_for_event_handlers(backend: Any) -> None:
    with running(Echo, backend) as server:
        assert isinstance(server, ReactorServer)
    with running(Echo, backend, "threaded") as server:
        assert isinstance(server, wsframe.Server)


def test_echo_every_size(backend: Any, style: str) -> None:
    with running(Echo, backend, style, max_message_size=4 * 2**20) as server:
        with wsframe.connect(f"ws://127.0.0.1:{server.port}/", proxy=None, max_message_size=None,
                             open_timeout=5) as ws:
            for message in ("", "hé", b"", b"x" * 125, b"y" * 70000, bytes(range(256)) * 4096, "z" * 300000):
                ws.send(message)
                assert ws.recv(timeout=10) == message
            ws.send_fragments([b"a", b"b", b"c"])
            assert ws.recv(timeout=5) == b"abc"


def test_callbacks_in_order_and_close_codes(backend: Any, style: str) -> None:
    log: List[Any] = []

    class Recorder(EventHandler):
        def on_connect(self) -> None:
            log.append(("connect", self.ws.path))
            self.send("welcome")

        def on_message(self, message: Any) -> None:
            log.append(("message", message))
            if message == "bye":
                self.close(4001, "asked")

        def on_close(self, code: Any, reason: str) -> None:
            log.append(("close", code))

    with running(Recorder, backend, style) as server:
        with ws_connect(f"ws://127.0.0.1:{server.port}/room", open_timeout=5, close_timeout=2) as ws:
            assert ws.recv(timeout=5) == "welcome"
            ws.send("one")
            ws.send("bye")
            with pytest.raises(Exception):
                ws.recv(timeout=5)
        assert wait_for(lambda: log and log[-1][0] == "close")
    assert log == [("connect", "/room"), ("message", "one"), ("message", "bye"), ("close", 4001)]


def test_a_callback_that_raises_closes_only_its_connection(backend: Any, style: str) -> None:
    class Fragile(EventHandler):
        def on_message(self, message: Any) -> None:
            if message == "fail":
                raise RuntimeError("on purpose")
            self.send(message)

    with running(Fragile, backend, style) as server:
        url = f"ws://127.0.0.1:{server.port}/"
        with ws_connect(url, open_timeout=5) as good, ws_connect(url, open_timeout=5) as bad:
            bad.send("fail")
            with pytest.raises(Exception) as info:
                bad.recv(timeout=5)
            assert "1011" in str(info.value)
            good.send("still here")
            assert good.recv(timeout=5) == "still here"


def test_broadcast_reaches_everyone(backend: Any, style: str) -> None:
    class Chat(EventHandler):
        def on_message(self, message: Any) -> None:
            self.broadcast(message)

    with running(Chat, backend, style) as server:
        url = f"ws://127.0.0.1:{server.port}/"
        clients = [ws_connect(url, open_timeout=5, legacy=True) for _ in range(5)]
        try:
            assert wait_for(lambda: len(server.connections) == 5)
            clients[0].send("to all")
            assert [c.recv(timeout=5) for c in clients] == ["to all"] * 5
        finally:
            for c in clients:
                c.close()


def test_tls(backend: Any, style: str, certificate: Any) -> None:
    cert, key = certificate
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    client_context = ssl.create_default_context(cafile=str(cert))
    with running(Echo, backend, style, ssl=server_context) as server:
        with wsframe.connect(f"wss://127.0.0.1:{server.port}/", ssl=client_context, proxy=None, open_timeout=5) as ws:
            for message in ("secret", b"\x00" * 200000):
                ws.send(message)
                assert ws.recv(timeout=10) == message


def test_run_in_thread_sends_the_result_back(backend: Any, style: str) -> None:
    class Worker(EventHandler):
        def on_message(self, message: Any) -> None:
            def slow(text: str) -> str:
                time.sleep(0.2)
                return text.upper()

            self.run_in_thread(slow, message, then=self.send)

    with running(Worker, backend, style) as server:
        with ws_connect(f"ws://127.0.0.1:{server.port}/", open_timeout=5) as ws:
            ws.send("work")
            assert ws.recv(timeout=5) == "WORK"


def test_keepalive_closes_a_silent_peer(backend: Any, style: str) -> None:
    closed: List[Any] = []

    class Quiet(EventHandler):
        def on_close(self, code: Any, reason: str) -> None:
            closed.append(code)

    with running(Quiet, backend, style, ping_interval=0.2, ping_timeout=0.2) as server:
        sock, conn = raw(server.port, backend)  # never answers pings
        assert wait_for(lambda: closed == [1011], 5.0), closed
        sock.close()


# -- the reactor only ------------------------------------------------------------------------------


def test_a_thousand_connections_on_one_thread(backend: Any) -> None:
    with running(Echo, backend) as server:
        before = threading.active_count()
        socks: List[Tuple[socket.socket, ClientConnection]] = []
        try:
            for _ in range(1000):
                socks.append(raw(server.port, backend))
            assert threading.active_count() <= before  # no thread per connection (an earlier test's may end meanwhile)
            for i, (sock, conn) in enumerate(socks):
                sock.sendall(conn.send_text(f"m{i}"))
            for i, (sock, conn) in enumerate(socks):
                got: List[Any] = []
                while not got:
                    conn.receive_data(sock.recv(65536))
                    got = list(conn.events())
                assert got[0].data == f"m{i}"
        finally:
            for sock, _ in socks:
                sock.close()


def test_a_slow_callback_is_logged_with_the_connection(backend: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="wsframe.reactor")

    class Slow(EventHandler):
        def on_message(self, message: Any) -> None:
            time.sleep(0.3)  # blocks every connection on the reactor
            self.send(message)

    with running(Slow, backend) as server:
        with ws_connect(f"ws://127.0.0.1:{server.port}/", open_timeout=5) as ws:
            ws.send("slow")
            assert ws.recv(timeout=5) == "slow"
    assert "on_message took" in caplog.text and "ws-r" in caplog.text


def test_a_garbage_collection_is_logged_as_itself_not_as_the_callback_it_interrupted(
        caplog: pytest.LogCaptureFixture) -> None:
    """A full collection walks every live object (0.1 s and more at 10,000 connections): the warning
    says so, and blames only the callbacks that blocked."""
    caplog.set_level(logging.WARNING, logger="wsframe.reactor")
    loop = Loop(slow_callback=0.025)
    keep = [[] for _ in range(2_000_000)]  # about 60 ms for a full collection to walk

    def collects() -> None:
        gc.collect()

    def blocks() -> None:
        time.sleep(0.1)

    for callback in (collects, blocks, loop.stop):
        loop.call_soon_threadsafe(callback)
    thread = threading.Thread(target=loop.run)
    thread.start()
    thread.join(30)
    loop.close()
    assert not thread.is_alive()
    warnings = [r.getMessage() for r in caplog.records]
    assert any("a garbage collection (generation 2" in w for w in warnings), warnings
    assert any("blocks took" in w for w in warnings), warnings
    assert not any("collects took" in w for w in warnings), warnings
    assert loop.gc_pauses._on_gc not in gc.callbacks
    del keep


def test_a_peer_that_never_reads_is_held_back_then_dropped(backend: Any) -> None:
    seen: List[Any] = []

    class Reply(EventHandler):
        def on_connect(self) -> None:
            seen.append(self.ws)

        def on_message(self, message: Any) -> None:
            self.send(b"r" * 4096)

    limit = 64 * 1024
    with running(Reply, backend, write_limit=limit, send_timeout=1.0, close_timeout=1.0) as server:
        sock, conn = raw(server.port, backend, rcvbuf=4096)
        frame = conn.send_binary(b"q")
        sock.setblocking(False)
        peak, deadline = 0, time.monotonic() + 6.0
        while time.monotonic() < deadline and not (seen and seen[0].close_code):
            with contextlib.suppress(BlockingIOError):
                sock.send(frame * 64)
            if seen:
                peak = max(peak, seen[0].buffered_amount)
            time.sleep(0.002)
        assert seen and wait_for(lambda: seen[0].close_code is not None, 5.0)
        sock.close()
    assert seen[0].close_code == 1008
    assert peak <= limit + 64 * 4096 * 2, peak  # stops reading past the limit: one read's replies at most


def test_messages_over_the_write_limit_wait_and_all_arrive_in_order(backend: Any, style: str) -> None:
    """Replies go over write_limit in the middle of one read's messages: the rest waits until the peer
    reads, then every message is answered, none lost or reordered."""
    class Numbered(EventHandler):
        def on_message(self, message: Any) -> None:
            self.send(message.encode() * 2000)  # 20 KB per reply

    count = 64
    with running(Numbered, backend, style, write_limit=64 * 1024, send_timeout=10.0) as server:
        sock, conn = raw(server.port, backend, rcvbuf=8192)
        sock.sendall(b"".join(conn.send_text(f"m{i:08d}") for i in range(count)))  # one write: one read
        time.sleep(0.3)  # the server fills its buffers and stops, over the limit
        got: List[bytes] = []
        deadline = time.monotonic() + 20
        while len(got) < count and time.monotonic() < deadline:
            conn.receive_data(sock.recv(65536))
            got += [e.data for e in conn.events() if hasattr(e, "data")]
        sock.close()
    assert got == [f"m{i:08d}".encode() * 2000 for i in range(count)]


def test_shutdown_with_connections_in_every_state(backend: Any) -> None:
    server = serve(Echo, "127.0.0.1", 0, backend=backend.name, close_timeout=1.0).start()
    half = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    half.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # mid-handshake
    idle = ws_connect(f"ws://127.0.0.1:{server.port}/", open_timeout=5, legacy=True)
    mute, _ = raw(server.port, backend)  # will not answer our close
    assert wait_for(lambda: len(server.connections) == 2)
    started = time.monotonic()
    server.shutdown()
    took = time.monotonic() - started
    assert took < 3.0
    with pytest.raises(Exception):
        idle.recv(timeout=2)
    for s in (half, mute):
        s.settimeout(2)
        with contextlib.suppress(ConnectionResetError):
            while s.recv(65536):
                pass
        s.close()
    idle.close()


def test_the_open_timeout_applies(backend: Any) -> None:
    with running(Echo, backend, open_timeout=0.3) as server:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        started = time.monotonic()
        assert sock.recv(1) == b""
        assert time.monotonic() - started < 2.0
        sock.close()


def test_a_pong_goes_out_before_the_reply_to_a_later_message(backend: Any, style: str) -> None:
    """Autobahn 5.6: fragment, ping, fragment: the pong comes before the echo of the message."""
    with running(Echo, backend, style) as server:
        sock, conn = raw(server.port, backend)
        sock.sendall(conn.send_fragment("frag1", False) + conn.send_ping(b"in between") + conn.send_fragment("frag2", True))
        got: List[Any] = []
        while len(got) < 2:
            conn.receive_data(sock.recv(65536))
            got.extend(e for e in conn.events() if type(e).__name__ in ("Pong", "TextMessage"))
        sock.close()
    assert [type(e).__name__ for e in got] == ["Pong", "TextMessage"]


def test_compression_per_message_and_the_agreed_extension(backend: Any, style: str) -> None:
    """send(compress=...) overrides the threshold, in both styles; the agreed parameters are visible."""
    from wsframe.protocol.deflate import ClientDeflateFactory, PerMessageDeflate

    seen: List[Any] = []

    class Sender(EventHandler):
        def on_connect(self) -> None:
            seen.append(self.ws.extensions)
            self.send("small but compressed", compress=True)
            self.send("large, sent plain " * 100, compress=False)
            self.send("large, compressed " * 100)

    with running(Sender, backend, style) as server:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        conn = ClientConnection(f"127.0.0.1:{server.port}", "/", extensions=[ClientDeflateFactory()],
                                backend=backend.name)
        sock.sendall(conn.handshake_request())
        reader = backend.FrameReader(require_mask=False, allowed_rsv=4, validate_utf8=False)
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(65536)
        frames = reader.feed(head.split(b"\r\n\r\n", 1)[1])
        while len(frames) < 3:
            data = sock.recv(65536)
            assert data
            frames += reader.feed(data)
        sock.close()
        assert [f.rsv for f in frames[:3]] == [4, 0, 4]
        assert frames[1].payload == b"large, sent plain " * 100
        assert wait_for(lambda: bool(seen))
        (agreed,) = seen[0]
        assert isinstance(agreed, PerMessageDeflate) and agreed.send_no_context and agreed.recv_bits == 12


def test_a_failed_connection_drains_before_closing(backend: Any, style: str) -> None:
    """A message, then a frame with a reserved opcode and 100 KB more behind it (Autobahn 4.1.5, made
    certain): the message is echoed, 1002 comes back, and the peer sees a FIN, not a reset over the
    unread bytes that could destroy both."""
    from frames_by_hand import raw_frame
    from wsframe.protocol.events import Accepted, CloseReceived, TextMessage

    with running(Echo, backend, style) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            conn = ClientConnection(f"127.0.0.1:{server.port}", "/", backend=backend.name)
            sock.sendall(conn.handshake_request())
            while not any(isinstance(e, Accepted) for e in conn.events()):
                conn.receive_data(sock.recv(65536))
            key = b"\x01\x02\x03\x04"
            sock.sendall(conn.send_text("hello") + raw_frame(7, b"bad", key=key)
                         + raw_frame(2, b"x" * 100_000, key=key))
            received, ended = read_to_the_end(sock, conn)
    assert ended == "FIN"
    assert [e.data for e in received if isinstance(e, TextMessage)] == ["hello"]
    assert any(isinstance(e, CloseReceived) and e.code == 1002 for e in received)
