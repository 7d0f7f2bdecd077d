"""Interoperability: this core's client and server talk to each other in-process (every
backend pairing), and to the ``websockets`` library over real TCP sockets on 127.0.0.1 in
both directions, each side of ours driven by a small blocking socket loop written here.
"""

from __future__ import annotations

import os
import random
import socket
import threading
from typing import Any, Callable, List, Optional, Sequence

import pytest

websockets = pytest.importorskip("websockets")
from websockets.exceptions import ConnectionClosed, ConnectionClosedError  # noqa: E402
from websockets.sync.client import connect  # noqa: E402
from websockets.sync.server import serve  # noqa: E402

from wsframe.protocol import backend as _backend  # noqa: E402
from wsframe.protocol.connection import ClientConnection, ServerConnection, State  # noqa: E402
from wsframe.protocol.events import (  # noqa: E402
    Accepted,
    BinaryMessage,
    CloseReceived,
    Closed,
    Fragment,
    Ping,
    Pong,
    Request,
    TextMessage,
)

BACKENDS = _backend.available()
TIMEOUT = 10.0


def norm(events: Sequence[Any]) -> list:
    return [(type(e).__name__, tuple(e)) for e in events]


# --- in-process: our client <-> our server --------------------------------------------


class Pair:
    """A client and a server of this core, bytes carried between them in random pieces."""

    def __init__(self, client_backend: str, server_backend: str, seed: int, **server_options: Any) -> None:
        self.rng = random.Random(seed)
        self.client = ClientConnection("localhost:9", "/room?x=1", subprotocols=["v1", "v2"], backend=client_backend)
        self.server = ServerConnection(subprotocols=["v2"], backend=server_backend, **server_options)
        self.client_events: list = []
        self.server_events: list = []
        self.to_server = bytearray(self.client.handshake_request())
        self.to_client = bytearray()

    def _carry(self, buf: bytearray, conn: Any, sink: list, on_event: Optional[Callable] = None) -> None:
        while buf:
            n = self.rng.choice((1, 2, 7, 100, 5000, len(buf)))
            chunk, buf[:n] = bytes(buf[:n]), b""
            conn.receive_data(chunk)
            for event in conn.events():
                sink.append(event)
                if on_event is not None:
                    on_event(event)

    def pump(self) -> None:
        """Deliver everything in flight, both ways, until quiet."""

        def on_server_event(event: Any) -> None:
            if isinstance(event, Request):
                self.to_client.extend(self.server.accept())

        while self.to_server or self.to_client:
            self._carry(self.to_server, self.server, self.server_events, on_server_event)
            self.to_client.extend(self.server.data_to_send())
            self._carry(self.to_client, self.client, self.client_events)
            self.to_server.extend(self.client.data_to_send())

    def take(self) -> tuple:
        c, s = self.client_events, self.server_events
        self.client_events, self.server_events = [], []
        return c, s


pairings = pytest.mark.parametrize(
    "client_backend,server_backend", [(a, b) for a in BACKENDS for b in BACKENDS]
)


@pairings
@pytest.mark.parametrize("seed", range(3))
def test_in_process_conversation(client_backend: str, server_backend: str, seed: int) -> None:
    pair = Pair(client_backend, server_backend, seed)
    pair.pump()
    c, s = pair.take()
    assert [type(e) for e in s] == [Request] and s[0].request.path == "/room"
    assert [type(e) for e in c] == [Accepted] and c[0].subprotocol == "v2"
    assert pair.client.state is pair.server.state is State.OPEN
    assert pair.client.subprotocol == pair.server.subprotocol == "v2"

    rng = random.Random(seed)
    messages: List[Any] = ["", b"", "κόσμε 🙂", b"\x00\xff", "x" * 70000, bytes(rng.randrange(256) for _ in range(3000))]
    messages += [rng.choice(["t", b"b"]) * rng.randrange(300) for _ in range(20)]
    for m in messages:
        pair.to_server += pair.client.send(m)
        pair.to_client += pair.server.send(m)
    expect = [TextMessage(m) if isinstance(m, str) else BinaryMessage(m) for m in messages]
    pair.pump()
    c, s = pair.take()
    assert norm(c) == norm(expect) and norm(s) == norm(expect)

    # Fragmented messages with control frames in between, both directions.
    for conn, buf in ((pair.client, pair.to_server), (pair.server, pair.to_client)):
        buf += conn.send_fragment("é" * 10)
        buf += conn.send_ping(b"mid")
        buf += conn.send_fragment("è")
        buf += conn.send_pong(b"beat")
        buf += conn.send_fragment("", final=True)
        buf += conn.send_fragment(b"\x01")
        buf += conn.send_fragment(b"\x02", final=True)
    pair.pump()
    c, s = pair.take()
    # Each side: its own pings answered (Pong mid), the peer's ping (Ping mid), the unsolicited Pong beat.
    for events in (c, s):
        assert norm(e for e in events if not isinstance(e, Pong)) == norm(
            [Ping(b"mid"), TextMessage("é" * 10 + "è"), BinaryMessage(b"\x01\x02")]
        )
        assert sorted(e.payload for e in events if isinstance(e, Pong)) == [b"beat", b"mid"]


@pairings
@pytest.mark.parametrize("initiator", ["client", "server"])
def test_in_process_closing_handshake(client_backend: str, server_backend: str, initiator: str) -> None:
    pair = Pair(client_backend, server_backend, 7)
    pair.pump()
    pair.take()
    first = pair.client if initiator == "client" else pair.server
    out = pair.to_server if initiator == "client" else pair.to_client
    out += first.close(4321, "bye κ")
    assert first.state is State.CLOSING
    # Data already sent by the other side is discarded by the closing side.
    (pair.to_client if initiator == "client" else pair.to_server).extend(
        (pair.server if initiator == "client" else pair.client).send_text("late")
    )
    pair.pump()
    c, s = pair.take()
    closer, other = (c, s) if initiator == "client" else (s, c)
    assert norm(other) == norm([CloseReceived(4321, "bye κ"), Closed(4321, "bye κ")])
    assert norm(closer) == norm([CloseReceived(4321, ""), Closed(4321, "")])
    assert pair.client.state is pair.server.state is State.CLOSED
    # The server closes TCP; the client waits for that EOF.
    assert pair.server.should_close_transport and not pair.client.should_close_transport
    pair.client.receive_data(b"")
    assert list(pair.client.events()) == []
    assert pair.client.should_close_transport


@pairings
def test_in_process_limit_fails_with_1009(client_backend: str, server_backend: str) -> None:
    pair = Pair(client_backend, server_backend, 3, max_message_size=1000)
    pair.pump()
    pair.take()
    pair.to_server += pair.client.send_binary(b"a" * 1000) + pair.client.send_binary(b"a" * 1001)
    pair.pump()
    c, s = pair.take()
    assert norm(s[:1]) == norm([BinaryMessage(b"a" * 1000)])
    assert isinstance(s[1], Closed) and s[1].code == 1009 and len(s) == 2
    assert norm(c) == norm([CloseReceived(1009, s[1].reason), Closed(1009, s[1].reason)])
    assert pair.server.should_close_transport


@pairings
def test_in_process_stream_mode(client_backend: str, server_backend: str) -> None:
    pair = Pair(client_backend, server_backend, 11, stream=True, max_message_size=None)
    pair.pump()
    pair.take()
    text = "€" * 50000  # 150 KB, each fragment ending mid code point
    data = text.encode()
    pieces = [data[i : i + 1000] for i in range(0, len(data), 1000)]
    # The library splits str only at code points: build text fragments of raw UTF-8 split anywhere.
    backend = _backend.load(client_backend)
    for i, piece in enumerate(pieces):
        opcode = 1 if i == 0 else 0
        pair.to_server += backend.encode_frame(opcode, piece, i == len(pieces) - 1, 0, os.urandom(4))
    pair.pump()
    c, s = pair.take()
    assert all(isinstance(e, Fragment) for e in s) and len(s) == len(pieces)
    assert s[0].first and s[-1].last and not any(e.last for e in s[:-1])
    assert "".join(e.data for e in s) == text


# --- a blocking socket loop around our connections --------------------------------------


class Loop:
    """Drive one of our connections over a blocking socket: feed, collect events, flush."""

    def __init__(self, sock: socket.socket, conn: Any) -> None:
        self.sock = sock
        self.conn = conn
        self.events: list = []
        self.sock.settimeout(TIMEOUT)

    def send(self, data: bytes) -> None:
        if data:
            self.sock.sendall(data)

    def step(self, on_event: Optional[Callable[[Any], None]] = None) -> bool:
        """One recv and its events; False once the connection says to close the transport."""
        data = self.sock.recv(65536)
        self.conn.receive_data(data)
        for event in self.conn.events():
            self.events.append(event)
            if on_event is not None:
                on_event(event)
        self.send(self.conn.data_to_send())
        if self.conn.should_close_transport:
            self.close_transport()
            return False
        return True

    def close_transport(self) -> None:
        """Half-close, then read until the peer closes too: closing with unread bytes would
        reset the connection and could destroy the close frame we just wrote."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
            while self.sock.recv(65536):
                pass
        except OSError:
            pass
        self.sock.close()

    def until(self, predicate: Callable[[list], bool], on_event: Optional[Callable[[Any], None]] = None) -> list:
        while not predicate(self.events):
            if not self.step(on_event):
                break
        assert predicate(self.events), self.events
        return self.events


# --- our client against the websockets server ---------------------------------------------


def _ws_handler(ws: Any) -> None:
    path = ws.request.path
    try:
        if path == "/close":
            ws.send("closing")
            ws.close(4000, "bye")
            return
        if path == "/ping":
            pong = ws.ping(b"srv")
            ws.send("ponged" if pong.wait(TIMEOUT) else "no pong")
        if path == "/big":
            ws.send(b"x" * 5000)
        for message in ws:
            ws.send(message)
    except ConnectionClosed:
        pass
    finally:
        ws_server_results.append((path, ws.close_code, ws.close_reason))


ws_server_results: list = []


@pytest.fixture(scope="module")
def ws_server():
    with serve(_ws_handler, "127.0.0.1", 0, subprotocols=["chat"], ping_interval=None) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield server.socket.getsockname()[1]
        server.shutdown()
    thread.join(TIMEOUT)


def our_client(port: int, path: str, backend: str, **options: Any) -> Loop:
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    conn = ClientConnection(f"127.0.0.1:{port}", path, subprotocols=["chat"], backend=backend, **options)
    loop = Loop(sock, conn)
    loop.send(conn.handshake_request())
    event = loop.until(lambda ev: len(ev) >= 1)[0]
    assert isinstance(event, Accepted) and event.subprotocol == "chat", event
    assert event.response.headers.get("Sec-WebSocket-Accept")
    assert conn.state is not State.CONNECTING
    del loop.events[0]  # frames that came with the 101 stay
    return loop


def _n_messages(n: int) -> Callable[[list], bool]:
    return lambda ev: sum(isinstance(e, (TextMessage, BinaryMessage, Closed)) for e in ev) >= n


@pytest.mark.parametrize("backend", BACKENDS)
def test_our_client_with_websockets_server(ws_server: int, backend: str) -> None:
    loop = our_client(ws_server, "/echo", backend)
    conn = loop.conn
    messages: List[Any] = ["hello", b"\x00\x01\xff", "", b"", "κόσμε 🙂" * 1000, bytes(range(256)) * 1200]
    for m in messages:
        loop.send(conn.send(m))
    loop.until(_n_messages(len(messages)))
    assert norm(loop.events) == norm([TextMessage(m) if isinstance(m, str) else BinaryMessage(m) for m in messages])
    loop.events.clear()

    loop.send(conn.send_fragment("frag") + conn.send_ping(b"cli") + conn.send_fragment("ment", final=True))
    loop.send(conn.send_fragment(b"\x01") + conn.send_fragment(b"\x02", final=True))
    loop.until(_n_messages(2))
    assert norm(loop.events) == norm([Pong(b"cli"), TextMessage("fragment"), BinaryMessage(b"\x01\x02")])
    loop.events.clear()

    loop.send(conn.close(1000, "done"))
    assert conn.state is State.CLOSING
    loop.until(lambda ev: any(isinstance(e, Closed) for e in ev))
    # websockets echoes the whole close payload.
    assert norm(loop.events) == norm([CloseReceived(1000, "done"), Closed(1000, "done")])
    assert not conn.should_close_transport  # a client waits for the server to close TCP
    loop.until(lambda ev: conn.should_close_transport)  # ... which it does
    assert loop.sock.fileno() == -1
    _wait_result("/echo", 1000, "done")


def _wait_result(path: str, code: int, reason: str) -> None:
    for _ in range(200):
        if any(r[0] == path and r[1] == code for r in ws_server_results):
            break
        threading.Event().wait(0.02)
    assert (path, code, reason) in ws_server_results, ws_server_results


@pytest.mark.parametrize("backend", BACKENDS)
def test_websockets_server_closes_our_client(ws_server: int, backend: str) -> None:
    loop = our_client(ws_server, "/close", backend)
    loop.until(lambda ev: loop.conn.should_close_transport)
    assert norm(loop.events) == norm([TextMessage("closing"), CloseReceived(4000, "bye"), Closed(4000, "bye")])
    _wait_result("/close", 4000, "")  # our reply echoes the code only


@pytest.mark.parametrize("backend", BACKENDS)
def test_websockets_server_pings_our_client(ws_server: int, backend: str) -> None:
    loop = our_client(ws_server, "/ping", backend)
    loop.until(_n_messages(1))
    assert norm(loop.events) == norm([Ping(b"srv"), TextMessage("ponged")])
    loop.send(loop.conn.close())
    loop.until(lambda ev: loop.conn.should_close_transport)


@pytest.mark.parametrize("backend", BACKENDS)
def test_our_client_fails_websockets_server_with_1009(ws_server: int, backend: str) -> None:
    loop = our_client(ws_server, "/big", backend, max_message_size=4096)
    loop.until(lambda ev: any(isinstance(e, Closed) for e in ev))
    (event,) = loop.events
    assert isinstance(event, Closed) and event.code == 1009
    assert loop.conn.should_close_transport and loop.sock.fileno() == -1
    _wait_result("/big", 1009, event.reason)


# --- the websockets client against our server --------------------------------------------


class OurServer:
    """Our ServerConnection behind a listening socket, one thread per connection."""

    def __init__(self, backend: str, **options: Any) -> None:
        self.backend = backend
        self.options = options
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(TIMEOUT)
        self.port = self.listener.getsockname()[1]
        self.loops: list = []
        self.errors: list = []
        self.threads: list = []

    def serve_one(self) -> threading.Thread:
        thread = threading.Thread(target=self._serve, daemon=True)
        thread.start()
        self.threads.append(thread)
        return thread

    def _serve(self) -> None:
        try:
            sock, _ = self.listener.accept()
            conn = ServerConnection(subprotocols=["chat"], backend=self.backend, **self.options)
            loop = Loop(sock, conn)
            self.loops.append(loop)

            def on_event(event: Any) -> None:
                if isinstance(event, Request):
                    if event.request.path == "/hello":  # the 101 and a first frame in one packet
                        loop.send(conn.accept() + conn.send_text("hello"))
                        return
                    loop.send(conn.accept())
                    if event.request.path == "/ping":
                        loop.send(conn.send_ping(b"srv"))
                elif isinstance(event, TextMessage) and event.data == "close-me":
                    loop.send(conn.close(4000, "bye"))
                elif isinstance(event, (TextMessage, BinaryMessage)) and conn.state is State.OPEN:
                    loop.send(conn.send(event.data))

            while loop.step(on_event):
                pass
        except BaseException as exc:  # reported by the test
            self.errors.append(exc)

    def join(self) -> "OurServer":
        for thread in self.threads:
            thread.join(TIMEOUT)
            assert not thread.is_alive()
        assert self.errors == []
        return self

    def close(self) -> None:
        self.listener.close()


@pytest.fixture(params=BACKENDS)
def our_server(request):
    server = OurServer(request.param)
    yield server
    server.close()


def test_websockets_client_with_our_server(our_server: OurServer) -> None:
    our_server.serve_one()
    messages: List[Any] = ["hello", b"\x00\xff", "", b"", "κόσμε 🙂" * 1000, bytes(range(256)) * 2000]
    with connect(f"ws://127.0.0.1:{our_server.port}/chat?x=1", subprotocols=["chat"], open_timeout=TIMEOUT) as ws:
        assert ws.subprotocol == "chat"
        for m in messages:
            ws.send(m)
            assert ws.recv(TIMEOUT) == m
        ws.send(["frag", "ment", "é"])  # a fragmented message
        assert ws.recv(TIMEOUT) == "fragmenté"
        ws.send([b"\x01", b"", b"\x02"])
        assert ws.recv(TIMEOUT) == b"\x01\x02"
        assert ws.ping(b"cli").wait(TIMEOUT)  # our server's automatic pong
    assert ws.close_code == 1000
    (loop,) = our_server.join().loops
    events = loop.events
    assert isinstance(events[0], Request) and events[0].request.path == "/chat" and events[0].request.query == "x=1"
    # websockets offers permessage-deflate; it was declined, so no RSV bit was ever used.
    assert events[0].request.extensions and loop.conn.subprotocol == "chat"
    expected = [TextMessage(m) if isinstance(m, str) else BinaryMessage(m) for m in messages]
    expected += [TextMessage("fragmenté"), BinaryMessage(b"\x01\x02"), Ping(b"cli"), CloseReceived(1000, ""), Closed(1000, "")]
    assert norm(events[1:]) == norm(expected)
    assert loop.conn.should_close_transport


def test_our_server_closes_websockets_client(our_server: OurServer) -> None:
    our_server.serve_one()
    with connect(f"ws://127.0.0.1:{our_server.port}/", open_timeout=TIMEOUT) as ws:
        ws.send("close-me")
        with pytest.raises(ConnectionClosedError) as info:
            ws.recv(TIMEOUT)
    assert info.value.rcvd.code == 4000 and info.value.rcvd.reason == "bye"
    (loop,) = our_server.join().loops
    assert norm(loop.events[1:]) == norm(
        [TextMessage("close-me"), CloseReceived(4000, "bye"), Closed(4000, "bye")]  # websockets echoes the reason
    )


def test_our_server_pings_websockets_client(our_server: OurServer) -> None:
    our_server.serve_one()
    with connect(f"ws://127.0.0.1:{our_server.port}/ping", open_timeout=TIMEOUT) as ws:
        ws.send("sync")  # the echo comes after the ping and its pong
        assert ws.recv(TIMEOUT) == "sync"
        ws.send("sync2")
        assert ws.recv(TIMEOUT) == "sync2"
    (loop,) = our_server.join().loops
    assert norm(loop.events[1:]) == norm(
        [Pong(b"srv"), TextMessage("sync"), TextMessage("sync2"), CloseReceived(1000, ""), Closed(1000, "")]
    ) or norm(loop.events[1:]) == norm(
        [TextMessage("sync"), Pong(b"srv"), TextMessage("sync2"), CloseReceived(1000, ""), Closed(1000, "")]
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_our_server_fails_websockets_client_with_1009(backend: str) -> None:
    server = OurServer(backend, max_message_size=1000)
    try:
        server.serve_one()
        with connect(f"ws://127.0.0.1:{server.port}/", open_timeout=TIMEOUT) as ws:
            ws.send(b"a" * 1000)
            assert ws.recv(TIMEOUT) == b"a" * 1000
            ws.send(b"a" * 1001)
            with pytest.raises(ConnectionClosedError) as info:
                ws.recv(TIMEOUT)
        assert info.value.rcvd.code == 1009
        (loop,) = server.join().loops
        closed = loop.events[-1]
        assert isinstance(closed, Closed) and closed.code == 1009 and info.value.rcvd.reason == closed.reason
    finally:
        server.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_websockets_client_rejected_by_our_server(backend: str) -> None:
    server = OurServer(backend, origins=["https://allowed.example"])
    try:
        server.serve_one()
        with pytest.raises(websockets.exceptions.InvalidStatus) as info:
            connect(f"ws://127.0.0.1:{server.port}/", origin="https://other.example", open_timeout=TIMEOUT)
        assert info.value.response.status_code == 403
        assert info.value.response.body == b"origin not allowed"
        (loop,) = server.join().loops
        assert [type(e).__name__ for e in loop.events] == ["Rejected", "Closed"]
    finally:
        server.close()


def test_first_frames_in_the_same_packet_as_the_handshake(our_server: OurServer) -> None:
    """A raw client writes its request and two frames in one sendall; the server must see them."""
    our_server.serve_one()
    client = ClientConnection(f"127.0.0.1:{our_server.port}", "/", backend=our_server.backend)
    sock = socket.create_connection(("127.0.0.1", our_server.port), timeout=TIMEOUT)
    loop = Loop(sock, client)
    # Frames can only be made once open; build them with the key rules by hand (masked, client).
    backend = _backend.load(our_server.backend)
    frames = backend.encode_frame(1, b"early", True, 0, b"abcd") + backend.encode_frame(2, b"\x00", True, 0, b"efgh")
    loop.send(client.handshake_request() + frames)
    loop.until(_n_messages(2))
    assert [type(e) for e in loop.events] == [Accepted, TextMessage, BinaryMessage]
    assert norm(loop.events[1:]) == norm([TextMessage("early"), BinaryMessage(b"\x00")])
    loop.send(client.close())
    loop.until(lambda ev: client.should_close_transport)
    our_server.join()


def test_first_frame_in_the_same_packet_as_the_101(our_server: OurServer) -> None:
    our_server.serve_one()
    client = ClientConnection(f"127.0.0.1:{our_server.port}", "/hello", backend=our_server.backend)
    loop = Loop(socket.create_connection(("127.0.0.1", our_server.port), timeout=TIMEOUT), client)
    loop.send(client.handshake_request())
    loop.until(_n_messages(1))
    assert [type(e) for e in loop.events] == [Accepted, TextMessage] and loop.events[1] == TextMessage("hello")
    loop.send(client.close())
    loop.until(lambda ev: client.should_close_transport)
    our_server.join()
