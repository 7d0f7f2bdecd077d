"""permessage-deflate (RFC 7692) against other implementations, over real sockets on 127.0.0.1.

- wsframe's server (``wsframe.serve``: a plain handler on threads, and an
  ``EventHandler`` on the reactor) against the ``websockets`` sync client
  (its default ``compression="deflate"``), Node's ``ws`` client with
  ``perMessageDeflate: true`` (``tests/node/deflate_client.js``) and aiohttp's
  client (``ws_connect(compress=15)``);
- wsframe's client (``wsframe.connect``) against the ``websockets`` sync server,
  Node's ``ws`` server with ``perMessageDeflate: true`` (``tests/node/echo_server.js
  --deflate on``) and aiohttp's server (``WebSocketResponse``, whose ``compress``
  is True by default), all echo servers;
- each with every wsframe setting ("deflate", "stateless", "context"), on both
  backends; and compression=None on our side while the peer offers or accepts
  deflate: nothing is negotiated, messages still echo, uncompressed;
- the limit on a compressed message from websockets' client (1009 past
  ``max_message_size`` once inflated), and ``broadcast()`` to websockets clients
  that negotiated differently (deflate, none, a 2**10 window).

Every connection goes through :class:`Relay`, a TCP relay that records the bytes
each way. From them the tests read the offer and the answer
(``Sec-WebSocket-Extensions`` of the request and of the 101, compared with the
client's own view where its API has one) and the frames: that large messages
are compressed (RSV1, and far fewer bytes) in both directions, that wsframe
leaves messages under its 1024-byte threshold uncompressed, and that wsframe
keeps its compression context across messages exactly when the setting and the
answer say so (identical payloads for an identical message otherwise).

The conversation (:data:`STEPS`): small text, 16 KiB of JSON, 200 KiB of
repetitive text, 300 KiB of random bytes, empty text and binary, bursts of
messages sent in a row (identical 2 KiB ones, where context takeover shows),
and fragmented messages where the peer's API can send them (not aiohttp's).

Skips: websockets or aiohttp not installed; ``node`` missing or
``tests/node/node_modules/ws`` missing (``cd tests/node && npm ci``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import inspect
import json
import queue
import random
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

import pytest

pytest.importorskip("websockets")
from websockets.sync.client import connect as websockets_connect  # noqa: E402
from websockets.sync.server import serve as websockets_serve  # noqa: E402

import wsframe  # noqa: E402
from support import stop_process, wait_for  # noqa: E402
from test_client_interop import NODE_DIR, aiohttp_server, node_server  # noqa: E402

TIMEOUT = 10.0
MAX_SIZE = 4 * 2**20
THRESHOLD = 1024  # wsframe's: every named setting has it
SETTINGS = ["deflate", "stateless", "context"]
Data = Union[str, bytes]


# -- the conversation ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    name: str
    data: Data
    parts: Optional[Tuple[Data, ...]] = None  # sent as one frame per part, when the sender can

    @property
    def first_frame_size(self) -> int:
        """What wsframe's threshold looks at: the first frame's bytes."""
        return len(_bytes(self.parts[0] if self.parts else self.data))


def _build_steps() -> List[List[Message]]:
    rng = random.Random(7692)
    json_16k = json.dumps([{"id": i, "user": f"user-{i:04d}", "score": rng.randrange(10**6), "tags": ["a", "bc"]}
                           for i in range(250)])[: 16 * 1024]
    line = "the quick brown fox jumps over the lazy dog, again and again\n"
    repetitive = (line * (200 * 1024 // len(line) + 1))[: 200 * 1024]
    similar = json.dumps([{"id": i, "name": f"item {i}", "ok": i % 3 == 0} for i in range(50)])  # ~2 KiB
    assert len(similar) > THRESHOLD
    fragmented_binary = bytes(range(256)) * 256  # 64 KiB, its first fragment above the threshold
    return [
        [Message("small text", "hello, permessage-deflate é")],
        [Message("16 KiB JSON", json_16k)],
        [Message("200 KiB repetitive", repetitive)],
        [Message("300 KiB random", rng.randbytes(300 * 1024))],
        [Message("empty text", "")],
        [Message("empty binary", b"")],
        # Sent in a row, then read: context takeover carries over between these.
        [Message(f"similar {i}", similar) for i in range(6)],
        [Message(f"burst {i}", f"message {i} " * (i * 20) if i % 2 else bytes([i]) * (i * 100)) for i in range(16)],
        # A small first fragment: wsframe decides on it, so this message is sent uncompressed by wsframe.
        [Message("fragmented text", "frag" + "mented " * 300 + "é", ("frag", "mented " * 300, "é"))],
        [Message("fragmented binary", fragmented_binary,
                 (fragmented_binary[:40000], fragmented_binary[40000:40001], fragmented_binary[40001:]))],
        [Message("small text again", "bye")],
    ]


def _bytes(data: Data) -> bytes:
    return data.encode() if isinstance(data, str) else data


STEPS = _build_steps()
MESSAGES = [m for step in STEPS for m in step]


SIMILAR = sum(m.name.startswith("similar") for m in MESSAGES)


def index(name: str) -> int:
    return next(i for i, m in enumerate(MESSAGES) if m.name == name)


# -- the relay and what it saw --------------------------------------------------------------------


@dataclass
class WireMessage:
    """One data message as it crossed the relay."""

    opcode: int
    compressed: bool  # RSV1 on its first frame
    frames: int
    wire: int  # bytes of its frames, headers included
    payload: bytes  # unmasked, as sent (compressed or not)


class Relay:
    """A TCP relay on 127.0.0.1 in front of ``port``, for one connection: records every byte both ways."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)  # accept() polls: close() must not wait when nobody came
        self._stop = threading.Event()
        self.port = self.listener.getsockname()[1]
        self.up = bytearray()  # client to server
        self.down = bytearray()  # server to client
        self._sockets: List[socket.socket] = []
        self._pumps: List[threading.Thread] = []
        self._accepter = threading.Thread(target=self._accept, name="relay-accept", daemon=True)
        self._accepter.start()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/echo"

    def _accept(self) -> None:
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                client, _ = self.listener.accept()
                break
            except socket.timeout:
                if self._stop.is_set() or time.monotonic() > deadline:
                    return
            except OSError:
                return
        try:
            server = socket.create_connection(("127.0.0.1", self.target), timeout=TIMEOUT)
        except OSError:
            client.close()
            return
        self._sockets += [client, server]
        for src, dst, record in ((client, server, self.up), (server, client, self.down)):
            src.settimeout(3 * TIMEOUT)  # a forgotten connection ends on its own
            pump = threading.Thread(target=self._pump, args=(src, dst, record), name="relay-pump", daemon=True)
            self._pumps.append(pump)
            pump.start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket, record: bytearray) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                record += data  # before forwarding: what a peer received is already recorded
                dst.sendall(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        """Wait (bounded) for both directions to end, then close everything."""
        self._stop.set()
        self._accepter.join(TIMEOUT)
        for pump in self._pumps:
            pump.join(TIMEOUT)
        for sock in self._sockets + [self.listener]:
            sock.close()

    def __enter__(self) -> "Relay":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- reading the record --

    def heads(self) -> Tuple[str, str]:
        """The HTTP heads of the request and of the response."""
        return _head(bytes(self.up))[0], _head(bytes(self.down))[0]

    def extensions(self) -> Tuple[Optional[str], Optional[str]]:
        """Sec-WebSocket-Extensions of the request (the offer) and of the 101 (the answer)."""
        request, response = self.heads()
        return _header(request, "sec-websocket-extensions"), _header(response, "sec-websocket-extensions")

    def messages(self) -> Tuple[List[WireMessage], List[WireMessage]]:
        """The data messages each way: client to server, server to client."""
        return _messages(_head(bytes(self.up))[1]), _messages(_head(bytes(self.down))[1])


def _head(data: bytes) -> Tuple[str, bytes]:
    end = data.find(b"\r\n\r\n")
    assert end >= 0, f"no HTTP head in {data[:200]!r}"
    return data[:end].decode("latin-1"), data[end + 4:]


def _header(head: str, name: str) -> Optional[str]:
    values = [line.split(":", 1)[1].strip() for line in head.split("\r\n")[1:] if line.split(":", 1)[0].lower() == name]
    return ", ".join(values) if values else None


def _unmask(payload: bytes, key: bytes) -> bytes:
    n = len(payload)
    keys = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(keys, "big")).to_bytes(n, "big")


def _messages(data: bytes) -> List[WireMessage]:
    """Data messages of a frame stream (RFC 6455 5.2), written here rather than with wsframe's reader."""
    out: List[WireMessage] = []
    current: Optional[WireMessage] = None
    pos = 0
    while pos + 2 <= len(data):
        b0, b1 = data[pos], data[pos + 1]
        start, pos = pos, pos + 2
        length = b1 & 0x7F
        if length == 126:
            length, pos = int.from_bytes(data[pos:pos + 2], "big"), pos + 2
        elif length == 127:
            length, pos = int.from_bytes(data[pos:pos + 8], "big"), pos + 8
        key = b""
        if b1 & 0x80:
            key, pos = data[pos:pos + 4], pos + 4
        payload, pos = data[pos:pos + length], pos + length
        if len(payload) < length:
            break  # cut off by the end of the record
        if key:
            payload = _unmask(payload, key)
        opcode, fin = b0 & 0x0F, bool(b0 & 0x80)
        if opcode >= 8:
            continue  # control frames are never compressed
        if opcode != 0:
            assert current is None, "a new message inside a fragmented one"
            current = WireMessage(opcode, bool(b0 & 0x40), 0, 0, b"")
        else:
            assert current is not None and not b0 & 0x40, "RSV1 on a continuation frame, or one without a message"
        current.frames += 1
        current.wire += pos - start
        current.payload += payload
        if fin:
            out.append(current)
            current = None
    return out


def params(header: Optional[str]) -> Optional[frozenset]:
    """One permessage-deflate answer as a set of its parameters, ``{"server_max_window_bits=12", ...}``."""
    if header is None:
        return None
    name, *rest = [p.strip() for p in header.split(";")]
    assert name == "permessage-deflate" and "," not in header, header
    return frozenset(p.replace(" ", "") for p in rest)


# -- the clients, behind one interface ------------------------------------------------------------


class Client:
    """A connected client that echoes are checked through."""

    can_fragment = True
    #: The 101's Sec-WebSocket-Extensions as the client's API reports it.
    extensions: Optional[str] = None

    @property
    def deflating(self) -> bool:
        """The client's own view: permessage-deflate was negotiated."""
        return self.extensions is not None and "permessage-deflate" in self.extensions

    def send(self, message: Message) -> None:
        raise NotImplementedError

    def recv(self) -> Data:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


# websockets >= 15 reads proxy settings from the environment unless told not to.
NO_PROXY: Dict[str, Any] = {"proxy": None} if "proxy" in inspect.signature(websockets_connect).parameters else {}


class WebsocketsClient(Client):
    def __init__(self, url: str) -> None:
        self.stack = contextlib.ExitStack()  # websockets >= 17 wants connect() used as a context manager
        self.ws = self.stack.enter_context(websockets_connect(
            url, compression="deflate", max_size=MAX_SIZE, open_timeout=TIMEOUT, close_timeout=TIMEOUT,
            ping_interval=None, **NO_PROXY))
        assert self.ws.response is not None
        self.extensions = self.ws.response.headers.get("Sec-WebSocket-Extensions")

    def send(self, message: Message) -> None:
        self.ws.send(list(message.parts) if message.parts else message.data)

    def recv(self) -> Data:
        return self.ws.recv(timeout=TIMEOUT)

    def close(self) -> None:
        with self.stack:
            self.ws.close()
        assert self.ws.close_code == 1000


class WsframeClient(Client):
    def __init__(self, url: str, backend: Any, compression: Optional[str]) -> None:
        self.ws = wsframe.connect(url, proxy=None, compression=compression, backend=backend.name,
                                  max_message_size=MAX_SIZE, open_timeout=TIMEOUT, close_timeout=TIMEOUT)
        assert self.ws.response_headers is not None
        self.extensions = self.ws.response_headers.get("Sec-WebSocket-Extensions")

    def send(self, message: Message) -> None:
        if message.parts:
            self.ws.send_fragments(message.parts)
        else:
            self.ws.send(message.data)

    def recv(self) -> Data:
        return self.ws.recv(timeout=TIMEOUT)

    def close(self) -> None:
        self.ws.close()
        assert self.ws.close_code == 1000


class NodeClient(Client):
    """tests/node/deflate_client.js, one process per connection, driven by JSON lines."""

    def __init__(self, url: str) -> None:
        node = shutil.which("node")
        if node is None:
            pytest.skip("node is not installed")
        if not (NODE_DIR / "node_modules" / "ws").is_dir():
            pytest.skip("Node's ws is not installed: cd tests/node && npm ci")
        self.process = subprocess.Popen(
            [node, str(NODE_DIR / "deflate_client.js"), url], cwd=str(NODE_DIR),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8",
        )
        self.events: "queue.Queue[Any]" = queue.Queue()
        self.reader = threading.Thread(target=self._read, name="node-client", daemon=True)
        self.reader.start()
        opened = self._next()
        if opened.get("event") != "open":
            self._stop()
            raise AssertionError(f"the node client did not open: {opened}")
        self.extensions = opened["extensions"]

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.events.put(json.loads(line))
        self.events.put({"event": "eof"})

    def _next(self) -> Any:
        try:
            return self.events.get(timeout=TIMEOUT)
        except queue.Empty:
            raise AssertionError("the node client said nothing in time") from None

    def _command(self, **cmd: Any) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(cmd) + "\n")
        self.process.stdin.flush()

    @staticmethod
    def _b64(data: Data) -> str:
        return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()

    def send(self, message: Message) -> None:
        binary = isinstance(message.data, bytes)
        if message.parts:
            self._command(op="fragments", parts=[self._b64(p) for p in message.parts], binary=binary)
        else:
            self._command(op="send", data=self._b64(message.data), binary=binary)

    def recv(self) -> Data:
        event = self._next()
        assert event.get("event") == "message", event
        data = base64.b64decode(event["data"])
        return data if event["binary"] else data.decode()

    def close(self) -> None:
        try:
            self._command(op="close", code=1000, reason="")
            event = self._next()
            assert event == {"event": "close", "code": 1000, "reason": ""}, event
        finally:
            self._stop()

    def _stop(self) -> None:
        stop_process(self.process)
        self.reader.join(TIMEOUT)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


class AiohttpClient(Client):
    """aiohttp's client in an event loop of its own thread. It cannot send fragments, and its API does
    not give the 101's headers (so :attr:`extensions` stays None)."""

    can_fragment = False

    def __init__(self, url: str, loop: asyncio.AbstractEventLoop) -> None:
        import aiohttp

        self.loop = loop

        async def open_() -> Tuple[Any, Any]:
            session = aiohttp.ClientSession()
            try:
                ws = await session.ws_connect(url, compress=15, max_msg_size=MAX_SIZE, autoping=True)
            except BaseException:
                await session.close()
                raise
            return session, ws

        self.session, self.ws = self._run(open_())

    @property
    def deflating(self) -> bool:
        return bool(self.ws.compress)  # the window it agreed to, 0 for none

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(asyncio.wait_for(coro, TIMEOUT), self.loop).result(TIMEOUT + 1)

    def send(self, message: Message) -> None:
        data = message.data
        self._run(self.ws.send_str(data) if isinstance(data, str) else self.ws.send_bytes(data))

    def recv(self) -> Data:
        import aiohttp

        msg = self._run(self.ws.receive())
        assert msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY), msg
        return msg.data  # type: ignore[no-any-return]

    def close(self) -> None:
        async def close_() -> None:
            try:
                await self.ws.close()
            finally:
                await self.session.close()

        self._run(close_())
        assert self.ws.close_code == 1000


@pytest.fixture(scope="module")
def aio_loop() -> Iterator[asyncio.AbstractEventLoop]:
    pytest.importorskip("aiohttp")
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="aiohttp-client", daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(TIMEOUT)
    if not thread.is_alive():
        loop.close()


CLIENTS = ["websockets", "node-ws", "aiohttp"]


def open_client(name: str, url: str, request: pytest.FixtureRequest) -> Client:
    if name == "websockets":
        return WebsocketsClient(url)
    if name == "node-ws":
        return NodeClient(url)
    return AiohttpClient(url, request.getfixturevalue("aio_loop"))


# -- the servers -----------------------------------------------------------------------------------


def echo(ws: Any) -> None:
    for message in ws:
        ws.send(message)


class Echo(wsframe.EventHandler):
    def on_message(self, message: Data) -> None:
        self.send(message)


@contextlib.contextmanager
def wsframe_server(backend: Any, style: str, compression: Optional[str]) -> Iterator[int]:
    handler = echo if style == "threaded" else Echo  # an EventHandler runs on the reactor
    server = wsframe.serve(handler, "127.0.0.1", 0, backend=backend.name, compression=compression,
                           max_message_size=MAX_SIZE).start()
    try:
        yield server.port
    finally:
        server.shutdown(timeout=5)


@contextlib.contextmanager
def websockets_server() -> Iterator[int]:
    def handler(ws: Any) -> None:
        with contextlib.suppress(Exception):
            for message in ws:
                ws.send(message)

    with websockets_serve(handler, "127.0.0.1", 0, compression="deflate", max_size=MAX_SIZE,
                          ping_interval=None) as server:
        thread = threading.Thread(target=server.serve_forever, name="websockets-server", daemon=True)
        thread.start()
        try:
            yield server.socket.getsockname()[1]
        finally:
            server.shutdown()
            thread.join(TIMEOUT)


SERVERS = ["websockets", "node-ws", "aiohttp"]


@pytest.fixture(scope="module", params=SERVERS)
def peer_server(request: pytest.FixtureRequest) -> Iterator[Tuple[str, int]]:
    """A peer's echo server with deflate on (shared by the tests of the module): its name and port."""
    name = request.param
    if name == "websockets":
        with websockets_server() as port:
            yield name, port
        return
    with (node_server("on") if name == "node-ws" else aiohttp_server()) as peer:
        yield name, int(peer.url.rsplit(":", 1)[1])


# -- the checks ------------------------------------------------------------------------------------


def converse(client: Client) -> None:
    """Every step of :data:`STEPS`: its messages sent in a row, then their echoes read, in order."""
    for step in STEPS:
        for message in step:
            client.send(message if client.can_fragment else Message(message.name, message.data))
        for message in step:
            got = client.recv()
            assert type(got) is type(message.data), message.name
            assert got == message.data, message.name


@contextlib.contextmanager
def closing(client: Client) -> Iterator[Client]:
    """Close cleanly (checked by each client's close) after the block; quietly if the block failed."""
    try:
        yield client
    except BaseException:
        with contextlib.suppress(Exception):
            client.close()
        raise
    client.close()


def check_wire(relay: Relay, ours: str, keeps_context: bool, theirs_keep_context: bool, can_fragment: bool) -> None:
    """What the relay saw of :func:`converse`; ``ours`` is the direction wsframe sent: "up" or "down"."""
    up, down = relay.messages()
    assert len(up) == len(down) == len(MESSAGES)
    if can_fragment:  # the client sent fragmented messages as such (websockets adds an empty last frame)
        for message, wire in zip(MESSAGES, up):
            assert (wire.frames >= len(message.parts)) if message.parts else (wire.frames == 1), message.name
    mine, theirs = (up, down) if ours == "up" else (down, up)
    for message, wire in zip(MESSAGES, mine):
        assert wire.opcode == (1 if isinstance(message.data, str) else 2), message.name
        # wsframe compresses exactly the messages whose first frame reaches its threshold
        # (as a server it echoes every message in one frame).
        size = message.first_frame_size if ours == "up" else len(_bytes(message.data))
        assert wire.compressed == (size >= THRESHOLD), message.name
    # Compression happened, both ways: 200 KiB of repetitive text takes a few KiB at most.
    big = index("200 KiB repetitive")
    for direction in (mine, theirs):
        assert direction[big].compressed and direction[big].wire < 10 * 1024, direction[big].wire
    assert theirs[index("16 KiB JSON")].compressed
    if can_fragment and ours == "down":  # a compressed message in several frames, into wsframe's server
        fragmented = up[index("fragmented binary")]
        assert fragmented.compressed and fragmented.frames >= 3
    # Context takeover, seen on identical messages sent in a row: later ones refer to the first
    # (wsframe's to a few bytes; aiohttp's compressor finds less), or, without it, all are alike.
    first = index("similar 0")
    for direction, keeps, ratio in ((mine, keeps_context, 0.25), (theirs, theirs_keep_context, 0.75)):
        similar = direction[first:first + SIMILAR]
        assert all(w.compressed for w in similar)
        sizes = [len(w.payload) for w in similar]
        if keeps:
            assert all(n < sizes[0] * ratio for n in sizes[1:]), sizes
        else:
            assert all(w.payload == similar[0].payload for w in similar[1:]), sizes


def check_uncompressed(relay: Relay) -> None:
    up, down = relay.messages()
    assert len(up) == len(down) == len(MESSAGES)
    assert not any(w.compressed for w in up + down)
    big = index("200 KiB repetitive")
    assert up[big].wire > 200 * 1024 and down[big].wire > 200 * 1024


# The peers' offers as clients (all alike), and wsframe's answer to them, by setting.
PEER_OFFER = {
    "websockets": {"client_max_window_bits"},
    "node-ws": {"client_max_window_bits"},
    "aiohttp": {"client_max_window_bits"},
}
WSFRAME_ANSWER = {
    "deflate": {"server_no_context_takeover", "client_max_window_bits=12"},
    "stateless": {"server_no_context_takeover", "client_no_context_takeover", "client_max_window_bits=15"},
    "context": {"client_max_window_bits=12"},  # its own window of 12 is not announced unasked
}


@pytest.mark.parametrize("setting", SETTINGS)
@pytest.mark.parametrize("style", ["threaded", "reactor"])
@pytest.mark.parametrize("peer", CLIENTS)
def test_wsframe_server(peer: str, style: str, setting: str, backend: Any, request: pytest.FixtureRequest) -> None:
    with wsframe_server(backend, style, setting) as port, Relay(port) as relay:
        with closing(open_client(peer, relay.url, request)) as client:
            converse(client)
        offer, answer = relay.extensions()
        assert params(offer) == PEER_OFFER[peer]
        assert params(answer) == WSFRAME_ANSWER[setting]
        assert client.deflating
        if client.extensions is not None:
            assert params(client.extensions) == params(answer)
        check_wire(relay, "down", keeps_context=setting == "context",
                   theirs_keep_context="client_no_context_takeover" not in WSFRAME_ANSWER[setting],
                   can_fragment=client.can_fragment)


# wsframe's offers as a client, and the peers' answers, by setting.
WSFRAME_OFFER = {
    "deflate": {"client_no_context_takeover", "server_max_window_bits=12", "client_max_window_bits"},
    "stateless": {"server_no_context_takeover", "client_no_context_takeover", "client_max_window_bits"},
    "context": {"server_max_window_bits=12", "client_max_window_bits=12"},
}
PEER_ANSWER = {
    ("websockets", "deflate"): {"client_no_context_takeover", "server_max_window_bits=12", "client_max_window_bits=12"},
    # RFC 7692 7.1.2.1: server_max_window_bits may be in the answer when the offer has none.
    ("websockets", "stateless"): {"server_no_context_takeover", "client_no_context_takeover",
                                  "server_max_window_bits=12", "client_max_window_bits=12"},
    ("websockets", "context"): {"server_max_window_bits=12", "client_max_window_bits=12"},
    ("node-ws", "deflate"): {"client_no_context_takeover", "server_max_window_bits=12"},
    ("node-ws", "stateless"): {"server_no_context_takeover", "client_no_context_takeover"},
    ("node-ws", "context"): {"server_max_window_bits=12", "client_max_window_bits=12"},
    # aiohttp repeats no client_no_context_takeover (the client's own promise, it needs no answer).
    ("aiohttp", "deflate"): {"server_max_window_bits=12"},
    ("aiohttp", "stateless"): {"server_no_context_takeover"},
    ("aiohttp", "context"): {"server_max_window_bits=12"},
}


@pytest.mark.parametrize("setting", SETTINGS)
def test_wsframe_client(peer_server: Tuple[str, int], setting: str, backend: Any) -> None:
    peer, port = peer_server
    with Relay(port) as relay:
        with closing(WsframeClient(relay.url, backend, setting)) as client:
            converse(client)
        offer, answer = relay.extensions()
        assert params(offer) == WSFRAME_OFFER[setting]
        assert params(answer) == PEER_ANSWER[peer, setting]
        assert params(client.extensions) == params(answer)
        check_wire(relay, "up", keeps_context=setting == "context",
                   theirs_keep_context="server_no_context_takeover" not in PEER_ANSWER[peer, setting],
                   can_fragment=True)


@pytest.mark.parametrize("peer", CLIENTS)
def test_wsframe_server_without_compression(peer: str, backend: Any, request: pytest.FixtureRequest) -> None:
    with wsframe_server(backend, "threaded", None) as port, Relay(port) as relay:
        with closing(open_client(peer, relay.url, request)) as client:
            converse(client)
        offer, answer = relay.extensions()
        assert params(offer) == PEER_OFFER[peer]  # offered, and declined
        assert answer is None and not client.deflating
        check_uncompressed(relay)


def test_wsframe_client_without_compression(peer_server: Tuple[str, int], backend: Any) -> None:
    _, port = peer_server
    with Relay(port) as relay:
        with closing(WsframeClient(relay.url, backend, None)) as client:
            converse(client)
        offer, answer = relay.extensions()
        assert offer is None and answer is None and not client.deflating
        check_uncompressed(relay)


@pytest.mark.parametrize("style", ["threaded", "reactor"])
def test_compressed_message_past_the_limit_fails_with_1009(style: str, backend: Any) -> None:
    """The limit is on the inflated size: 1001 bytes that compress to a few still fail the connection."""
    from websockets.exceptions import ConnectionClosed

    server = wsframe.serve(echo if style == "threaded" else Echo, "127.0.0.1", 0, backend=backend.name,
                           compression="deflate", max_message_size=1000).start()
    try:
        with websockets_connect(f"ws://127.0.0.1:{server.port}/", open_timeout=TIMEOUT, **NO_PROXY) as ws:
            ws.send("a" * 1000)
            assert ws.recv(timeout=TIMEOUT) == "a" * 1000  # at the limit
            ws.send("a" * 1001)
            with pytest.raises(ConnectionClosed) as info:
                ws.recv(timeout=TIMEOUT)
            assert info.value.rcvd is not None and info.value.rcvd.code == 1009
    finally:
        server.shutdown(timeout=5)


class Broadcast(wsframe.EventHandler):
    def on_message(self, message: Data) -> None:
        self.broadcast(message)


@pytest.mark.parametrize("setting", SETTINGS)
@pytest.mark.parametrize("style", ["threaded", "reactor"])
def test_broadcast_to_peers_that_negotiated_differently(style: str, setting: str, backend: Any) -> None:
    """broadcast() encodes once per group of connections that can share a frame: each peer still gets
    what it can read (compressed with its own window, or plain)."""
    from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

    server = wsframe.serve(Broadcast, "127.0.0.1", 0, backend=backend.name, compression=setting,
                           threaded=style == "threaded").start()
    url = f"ws://127.0.0.1:{server.port}/"
    small_window = ClientPerMessageDeflateFactory(server_max_window_bits=10, client_max_window_bits=True)
    options: List[Dict[str, Any]] = [{}, {"compression": None}, {"compression": None, "extensions": [small_window]}]
    try:
        with contextlib.ExitStack() as stack:
            clients = [stack.enter_context(websockets_connect(url, open_timeout=TIMEOUT, **NO_PROXY, **o))
                       for o in options]
            assert wait_for(lambda: len(server.connections) == len(clients), TIMEOUT)
            windows = [c.response.headers.get("Sec-WebSocket-Extensions") for c in clients if c.response]
            assert windows[1] is None and "server_max_window_bits=10" in windows[2], windows
            for i, message in enumerate([MESSAGES[index("200 KiB repetitive")], MESSAGES[index("similar 0")]] * 2):
                clients[i % len(clients)].send(message.data)
                for client in clients:
                    assert client.recv(timeout=TIMEOUT) == message.data
    finally:
        server.shutdown(timeout=5)
