"""wsframe.connect() against other implementations' servers, on both backends, on 127.0.0.1.

- aiohttp's server (``aiohttp.web``), in a thread with its own event loop;
- Node's ``ws`` server (``tests/node/echo_server.js``): with ws's default options, with
  ``perMessageDeflate: false`` and with ``perMessageDeflate: true`` (our client offers
  permessage-deflate by default: only the last agrees);
- wsframe's own server over TLS, with a certificate made by the openssl command.

Each server echoes (text as text, binary as binary), closes a connection to
``/close/<code>/<reason>`` at once with that code, and records the close code and reason
it saw for every connection, so closes are checked from both ends.

Skips: aiohttp not installed (``pip install aiohttp``); ``node`` missing or
``tests/node/node_modules/ws`` missing (``cd tests/node && npm install --no-audit --no-fund``);
no openssl command (the TLS server).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import shutil
import ssl
import subprocess
import threading
import urllib.parse
import uuid
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest

from support import stop_process, wait_for
from wsframe import ConnectionClosed, connect, serve

NODE_DIR = Path(__file__).resolve().parent / "node"
START_TIMEOUT = 10.0
MAX_SIZE = 4 * 2**20

Close = Tuple[int, str]


class Peer:
    """A running echo server: where to connect, and the closes it saw (by request path)."""

    def __init__(self, name: str, url: str, ssl_context: Optional[ssl.SSLContext] = None) -> None:
        self.name = name
        self.url = url  # ws://127.0.0.1:PORT or wss://...
        self.ssl_context = ssl_context
        self._closes: Dict[str, Close] = {}
        self._lock = threading.Lock()

    def record(self, path: str, code: int, reason: str) -> None:
        with self._lock:
            self._closes[path] = (code, reason)

    def close_seen(self, path: str, timeout: float = 5.0) -> Optional[Close]:
        """The close code and reason the server saw on the connection to ``path`` (waits, bounded)."""
        wait_for(lambda: path in self._closes, timeout)
        with self._lock:
            return self._closes.get(path)

    def options(self, backend: Any, **more: Any) -> Dict[str, Any]:
        more.setdefault("open_timeout", 5)
        more.setdefault("close_timeout", 2)
        more.setdefault("max_message_size", MAX_SIZE)
        more.setdefault("proxy", None)
        if self.ssl_context is not None:
            more.setdefault("ssl", self.ssl_context)
        return dict(backend=backend.name, **more)


def unique_path() -> str:
    return f"/echo/{uuid.uuid4().hex}"


# -- aiohttp ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def aiohttp_server() -> Iterator[Peer]:
    pytest.importorskip("aiohttp")
    from aiohttp import WSMsgType, web

    peer: List[Peer] = []

    async def handler(request: Any) -> Any:
        ws = web.WebSocketResponse(max_msg_size=MAX_SIZE)
        await ws.prepare(request)
        path = request.raw_path  # as sent: the key the test looks its close up by
        parts = path.split("/")
        if len(parts) == 4 and parts[1] == "close":
            await ws.close(code=int(parts[2]), message=urllib.parse.unquote(parts[3]).encode())
            peer[0].record(path, ws.close_code or 0, "")
            return ws
        seen: Close = (0, "")
        while True:
            msg = await ws.receive()
            if msg.type is WSMsgType.TEXT:
                await ws.send_str(msg.data)
            elif msg.type is WSMsgType.BINARY:
                await ws.send_bytes(msg.data)
            elif msg.type is WSMsgType.CLOSE:
                seen = (int(msg.data), msg.extra or "")
                break
            else:  # CLOSING, CLOSED, ERROR
                seen = (ws.close_code or 0, "")
                break
        peer[0].record(path, *seen)
        return ws

    loop = asyncio.new_event_loop()
    started: "queue.Queue[Any]" = queue.Queue()
    runner: List[Any] = []

    async def start() -> int:
        app = web.Application()
        app.router.add_get("/{tail:.*}", handler)
        run = web.AppRunner(app, handle_signals=False)
        await run.setup()
        site = web.TCPSite(run, "127.0.0.1", 0)
        await site.start()
        runner.append(run)
        return int(run.addresses[0][1])

    def main() -> None:
        asyncio.set_event_loop(loop)
        try:
            started.put(loop.run_until_complete(start()))
        except BaseException as exc:  # pragma: no cover - reported to the test
            started.put(exc)
            return
        loop.run_forever()

    thread = threading.Thread(target=main, name="aiohttp-server", daemon=True)
    thread.start()
    port = started.get(timeout=START_TIMEOUT)
    if isinstance(port, BaseException):
        raise port
    peer.append(Peer("aiohttp", f"ws://127.0.0.1:{port}"))
    try:
        yield peer[0]
    finally:
        if runner:
            asyncio.run_coroutine_threadsafe(runner[0].cleanup(), loop).result(START_TIMEOUT)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(START_TIMEOUT)
        if not thread.is_alive():
            loop.close()


# -- Node's ws ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def node_server(deflate: str) -> Iterator[Peer]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    if not (NODE_DIR / "node_modules" / "ws").is_dir():
        pytest.skip("Node's ws is not installed: cd tests/node && npm install --no-audit --no-fund")
    process = subprocess.Popen(
        [node, str(NODE_DIR / "echo_server.js"), "--deflate", deflate],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, encoding="utf-8", cwd=str(NODE_DIR),
    )
    lines: "queue.Queue[str]" = queue.Queue()
    peer: List[Peer] = []
    output: List[str] = []

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            line = line.rstrip("\n")
            output.append(line)
            if line.startswith("CLOSE ") and peer:
                _, path, code, reason = (line.split(" ", 3) + [""])[:4]
                peer[0].record(path, int(code), reason)
            else:
                lines.put(line)

    reader = threading.Thread(target=read, name="node-stdout", daemon=True)
    reader.start()
    try:
        port = None
        with contextlib.suppress(queue.Empty):
            while port is None:
                line = lines.get(timeout=START_TIMEOUT)
                if line.startswith("PORT "):
                    port = int(line.split()[1])
        if port is None:
            raise AssertionError(f"the ws server printed no port within {START_TIMEOUT:.0f}s: {output}")
        assert any(f"perMessageDeflate {deflate}" in line for line in output), output  # the mode asked for
        peer.append(Peer(f"node-ws-deflate-{deflate}", f"ws://127.0.0.1:{port}"))
        yield peer[0]
    finally:
        stop_process(process)
        reader.join(START_TIMEOUT)
        if process.stdin is not None:
            process.stdin.close()
        if process.stdout is not None:
            process.stdout.close()


# -- wsframe over TLS --------------------------------------------------------------------------------


@contextlib.contextmanager
def wsframe_tls_server(certificate: Tuple[Path, Path]) -> Iterator[Peer]:
    cert, key = certificate
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    client_context = ssl.create_default_context(cafile=str(cert))
    peer: List[Peer] = []

    def handler(ws: Any) -> None:
        path = ws.request.target
        parts = path.split("/")
        if len(parts) == 4 and parts[1] == "close":
            ws.close(int(parts[2]), urllib.parse.unquote(parts[3]))
        else:
            for message in ws:
                ws.send(message)
        peer[0].record(path, ws.close_code or 0, ws.close_reason)

    server = serve(handler, "127.0.0.1", 0, ssl=server_context, max_message_size=MAX_SIZE).start()
    peer.append(Peer("wsframe-tls", f"wss://127.0.0.1:{server.port}", client_context))
    try:
        yield peer[0]
    finally:
        server.shutdown(timeout=5)


SERVERS = ["aiohttp", "node-ws", "node-ws-deflate-off", "node-ws-deflate-on", "wsframe-tls"]


@pytest.fixture(scope="module", params=SERVERS)
def peer(request: pytest.FixtureRequest) -> Iterator[Peer]:
    name = request.param
    with contextlib.ExitStack() as stack:
        if name == "aiohttp":
            yield stack.enter_context(aiohttp_server())
        elif name == "node-ws":
            yield stack.enter_context(node_server("default"))
        elif name == "node-ws-deflate-off":
            yield stack.enter_context(node_server("off"))
        elif name == "node-ws-deflate-on":
            yield stack.enter_context(node_server("on"))
        else:
            yield stack.enter_context(wsframe_tls_server(request.getfixturevalue("certificate")))


# -- the checks ------------------------------------------------------------------------------------


#: Peers whose server agrees to permessage-deflate when offered (ws's server default is off).
DEFLATE_SERVERS = {"aiohttp", "node-ws-deflate-on", "wsframe-tls"}


def test_handshake_without_compression_negotiates_no_extension(backend: Any, peer: Peer) -> None:
    path = unique_path()
    with connect(peer.url + path, **peer.options(backend, compression=None)) as ws:
        assert ws.request is not None and ws.request.target == path
        assert "Sec-WebSocket-Extensions" not in ws.request.headers
        assert ws.response_headers is not None
        assert ws.response_headers.get("Sec-WebSocket-Extensions") is None
        assert ws.subprotocol is None
        assert ws.open


def test_handshake_offers_compression_by_default(backend: Any, peer: Peer) -> None:
    text = '{"id": 7, "name": "interop", "values": [1, 2, 3]} ' * 400  # over the threshold: compressed
    with connect(peer.url + unique_path(), **peer.options(backend)) as ws:
        assert ws.request is not None
        assert ws.request.headers["Sec-WebSocket-Extensions"].startswith("permessage-deflate")
        assert ws.response_headers is not None
        answer = ws.response_headers.get("Sec-WebSocket-Extensions")
        if peer.name in DEFLATE_SERVERS:
            assert answer is not None and answer.startswith("permessage-deflate")
        else:
            assert answer is None
        for _ in range(3):  # context takeover, where the peer keeps it
            ws.send(text)
            assert ws.recv(timeout=5) == text


@pytest.mark.parametrize("message", ["hello", "", "é€😀" * 3000, "x" * 125], ids=["ascii", "empty", "utf8-36k", "125"])
def test_echo_text(backend: Any, peer: Peer, message: str) -> None:
    with connect(peer.url + unique_path(), **peer.options(backend)) as ws:
        ws.send(message)
        got = ws.recv(timeout=5)
        assert type(got) is str and got == message


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, 2**20], ids=lambda n: f"{n}B")
def test_echo_binary(backend: Any, peer: Peer, size: int) -> None:
    payload = bytes(i * 7 % 251 for i in range(min(size, 251))) * (size // 251 + 1)
    payload = payload[:size]
    with connect(peer.url + unique_path(), **peer.options(backend)) as ws:
        ws.send(payload)
        got = ws.recv(timeout=5)
        assert type(got) is bytes and len(got) == size and got == payload


def test_echo_many_in_a_row(backend: Any, peer: Peer) -> None:
    messages: List[Any] = [f"m{i}" if i % 2 else bytes([i % 256]) * i for i in range(200)]
    with connect(peer.url + unique_path(), **peer.options(backend)) as ws:
        for message in messages:
            ws.send(message)
        assert [ws.recv(timeout=5) for _ in messages] == messages


def test_fragmented_send(backend: Any, peer: Peer) -> None:
    with connect(peer.url + unique_path(), **peer.options(backend)) as ws:
        ws.send_fragments(["frag", "", "mented ", "é"])
        assert ws.recv(timeout=5) == "fragmented é"
        ws.send_fragments([b"\x00" * 70000, b"\x01", b"\x02" * 3])
        assert ws.recv(timeout=5) == b"\x00" * 70000 + b"\x01" + b"\x02" * 3
        ws.send_fragments(["one"])
        assert ws.recv(timeout=5) == "one"


def test_ping_gets_its_pong(backend: Any, peer: Peer) -> None:
    with connect(peer.url + unique_path(), **peer.options(backend)) as ws:
        assert ws.ping().wait(5)
        assert ws.ping(b"x" * 125).wait(5)
        assert ws.ping("text payload").wait(5)
        assert ws.open
        ws.send("still open")  # the pongs did not disturb the message stream
        assert ws.recv(timeout=5) == "still open"


@pytest.mark.parametrize("code, reason", [(1000, ""), (4000, "custom"), (1001, "going away é")])
def test_close_from_client(backend: Any, peer: Peer, code: int, reason: str) -> None:
    path = unique_path()
    with connect(peer.url + path, **peer.options(backend)) as ws:
        ws.send("before close")
        assert ws.recv(timeout=5) == "before close"
        ws.close(code, reason)
        assert not ws.open
        assert ws.close_code is not None and ws.close_code != 1006  # a closing handshake, not a drop
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=1)
    assert peer.close_seen(path) == (code, reason)


@pytest.mark.parametrize("code, reason", [(1000, "bye"), (4001, "server says bye"), (1008, "policy")])
def test_close_from_server(backend: Any, peer: Peer, code: int, reason: str) -> None:
    path = f"/close/{code}/{urllib.parse.quote(reason)}"
    with connect(peer.url + path, **peer.options(backend)) as ws:
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)
        assert ws.close_code == code and ws.close_reason == reason
        assert not ws.open
    seen = peer.close_seen(path)
    assert seen is not None and seen[0] == code  # our reply echoed the server's code


def test_message_over_our_limit_fails_with_1009(backend: Any, peer: Peer) -> None:
    path = unique_path()
    with connect(peer.url + path, **peer.options(backend, max_message_size=1000)) as ws:
        ws.send(b"\x05" * 1000)
        assert ws.recv(timeout=5) == b"\x05" * 1000  # at the limit: accepted
        ws.send(b"\x06" * 1001)  # the echo is one byte too many
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)
        assert ws.close_code == 1009
    seen = peer.close_seen(path)
    assert seen is not None and seen[0] == 1009
