"""ASGI WebSockets on a real uvicorn with wsframe's protocol (wsframe.integrations.asgi) in its ``ws`` slot.

In-process: ``uvicorn.Server`` in a thread on a socket bound to 127.0.0.1:0,
with the ``backend`` fixture's framing backend (a one-line subclass of
``WsframeProtocol``), Starlette and raw ASGI apps, both of uvicorn's HTTP
parsers, plain and TLS. Subprocesses: ``python -m uvicorn`` with
``--ws wsframe.integrations.asgi:WsframeProtocol`` serving a FastAPI app,
and gunicorn with a ``UvicornWorker`` subclass; the python backend there is
chosen with ``WSFRAME_NO_EXTENSIONS=1``. Clients: the ``websockets`` sync
client, wsframe's client, and wsframe's sans-I/O client on a raw socket (for
keepalive without pongs and for a TCP drop). Every wait is bounded; every
server is stopped.
"""

import asyncio
import contextlib
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest

uvicorn = pytest.importorskip("uvicorn")
pytest.importorskip("starlette")
pytest.importorskip("fastapi")

import websockets.exceptions  # noqa: E402
from fastapi import FastAPI  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.responses import PlainTextResponse  # noqa: E402
from starlette.routing import WebSocketRoute  # noqa: E402
from starlette.websockets import WebSocket  # noqa: E402
from websockets.sync.client import connect as ws_connect  # noqa: E402

import wsframe  # noqa: E402
from support import stop_process, wait_for  # noqa: E402
from wsframe.integrations.asgi import WsframeProtocol  # noqa: E402
from wsframe.protocol.connection import GATHER_MIN, ClientConnection  # noqa: E402
from wsframe.protocol.events import Accepted, CloseReceived, Closed, Ping  # noqa: E402

PROTOCOL = "wsframe.integrations.asgi:WsframeProtocol"
TESTS = Path(__file__).resolve().parent
CLIENTS = ["websockets", "wsframe"]
MiB = 2**20

# What the apps saw, for the tests to check (the /report route serves it to other processes).
RECORDED: Dict[str, Any] = {}
GATES: Dict[str, threading.Event] = {}
SENT: Dict[str, int] = {}


# -- the apps ------------------------------------------------------------------------


def _token(ws: WebSocket) -> str:
    return ws.query_params.get("token", "")


async def echo(ws: WebSocket) -> None:
    await ws.accept()
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            RECORDED[_token(ws)] = [message["code"], message.get("reason", "")]
            return
        if message.get("text") is not None:
            await ws.send_text(message["text"])
        else:
            await ws.send_bytes(message["bytes"])


async def report(ws: WebSocket) -> None:
    await ws.accept()
    await ws.send_text(json.dumps(RECORDED.get(_token(ws))))
    await ws.close()


async def implementation(ws: WebSocket) -> None:
    """Which protocol object serves this connection (its receive is a bound method), and wsframe's backend."""
    owner = getattr(ws._receive, "__self__", None)
    await ws.accept()
    await ws.send_text(json.dumps([f"{type(owner).__module__}:{type(owner).__qualname__}", wsframe.BACKEND]))
    await ws.close()


async def subprotocol(ws: WebSocket) -> None:
    chosen = "chat" if "chat" in ws.scope["subprotocols"] else None
    await ws.accept(subprotocol=chosen)
    await ws.send_text(json.dumps([chosen, ws.scope["subprotocols"]]))
    await ws.close()


async def headers(ws: WebSocket) -> None:
    await ws.accept(headers=[(b"x-wsframe-test", b"yes"), (b"set-cookie", b"a=1"), (b"set-cookie", b"b=2")])
    await ws.send_text("ok")
    await ws.close()


async def deny(ws: WebSocket) -> None:
    await ws.send_denial_response(PlainTextResponse("go away", status_code=403))


async def deny_401(ws: WebSocket) -> None:
    await ws.send_denial_response(
        PlainTextResponse("log in first", status_code=401, headers={"WWW-Authenticate": 'Basic realm="x"'}))


async def close_first(ws: WebSocket) -> None:
    await ws.close()  # before accepting: 403


async def no_answer(ws: WebSocket) -> None:
    return None  # neither accept nor close: 403


async def boom_before(ws: WebSocket) -> None:
    raise RuntimeError("boom before accept")  # 500


async def boom_after(ws: WebSocket) -> None:
    await ws.accept()
    await ws.receive_text()
    raise RuntimeError("boom after accept")  # 1011


async def close_with(ws: WebSocket) -> None:
    await ws.accept()
    await ws.close(code=int(ws.query_params["code"]), reason=ws.query_params.get("reason", ""))


async def returns_open(ws: WebSocket) -> None:
    await ws.accept()
    await ws.send_text("bye")  # and return without closing: 1000


async def slow(ws: WebSocket) -> None:
    """Accept, wait for the test's gate without receiving, then echo ``n`` messages."""
    await ws.accept()
    gate = GATES[_token(ws)]
    for _ in range(1000):
        if gate.is_set():
            break
        await asyncio.sleep(0.01)
    for _ in range(int(ws.query_params["n"])):
        await ws.send_bytes(await ws.receive_bytes())
    await ws.close()


async def flood(ws: WebSocket) -> None:
    """Send ``n`` messages of 1 MiB, counting each one send() returned from."""
    await ws.accept()
    token = _token(ws)
    SENT[token] = 0
    payload = b"\xab" * MiB
    for _ in range(int(ws.query_params["n"])):
        await ws.send_bytes(payload)
        SENT[token] += 1
    await ws.close()


ROUTES = {
    "/echo": echo, "/report": report, "/impl": implementation, "/sub": subprotocol, "/headers": headers,
    "/deny": deny, "/deny401": deny_401, "/close-first": close_first, "/no-answer": no_answer,
    "/boom-before": boom_before, "/boom-after": boom_after, "/close": close_with,
    "/returns-open": returns_open, "/slow": slow, "/flood": flood,
}

starlette_app = Starlette(routes=[WebSocketRoute(path, endpoint) for path, endpoint in ROUTES.items()])

fastapi_app = FastAPI()
for _path, _endpoint in ROUTES.items():
    fastapi_app.add_api_websocket_route(_path, _endpoint)


async def scope_app(scope: Dict[str, Any], receive: Any, send: Any) -> None:
    """Raw ASGI: answer with the scope, as JSON (bytes as latin-1 strings)."""
    if scope["type"] != "websocket":
        return
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})

    def plain(value: Any) -> Any:
        if isinstance(value, bytes):
            return value.decode("latin-1")
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    await send({"type": "websocket.send", "text": json.dumps(plain(dict(scope, state=None)))})
    while (await receive())["type"] != "websocket.disconnect":  # the client closes
        pass


async def chunked_denial_app(scope: Dict[str, Any], receive: Any, send: Any) -> None:
    """Raw ASGI: refuse the upgrade with a 418 whose body comes in three messages."""
    if scope["type"] != "websocket":
        return
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.http.response.start", "status": 418,
                "headers": [(b"content-type", b"text/plain"), (b"x-teapot", b"short and stout")]})
    await send({"type": "websocket.http.response.body", "body": b"I'm ", "more_body": True})
    await send({"type": "websocket.http.response.body", "body": b"a ", "more_body": True})
    await send({"type": "websocket.http.response.body", "body": b"teapot"})


# -- servers -------------------------------------------------------------------------


def protocol_for(backend_name: str) -> type:
    """WsframeProtocol on one framing backend, with a short close timeout for quick shutdowns."""
    return type(f"Wsframe_{backend_name}", (WsframeProtocol,), {"backend": backend_name, "close_timeout": 3.0})


class InProcessServer:
    def __init__(self, app: Any, protocol: type, **config: Any) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        config.setdefault("loop", "asyncio")
        self.config = uvicorn.Config(app, ws=protocol, lifespan="off", log_level="warning",
                                     timeout_graceful_shutdown=5, **config)
        self.server = uvicorn.Server(self.config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> "InProcessServer":
        self.thread.start()
        if not wait_for(lambda: self.server.started, 10):
            self.stop()
            raise RuntimeError("uvicorn did not start")
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)
        self.sock.close()
        assert not self.thread.is_alive(), "uvicorn did not stop"

    def url(self, path: str, scheme: str = "ws") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def protocols(self) -> List[WsframeProtocol]:
        return [c for c in list(self.server.server_state.connections) if isinstance(c, WsframeProtocol)]


@pytest.fixture
def serve(backend: Any) -> Iterator[Any]:
    """serve(app, **uvicorn_config) -> a started InProcessServer on the backend under test."""
    servers: List[InProcessServer] = []

    def start(app: Any = starlette_app, **config: Any) -> InProcessServer:
        server = InProcessServer(app, protocol_for(backend.name), **config)
        servers.append(server.__enter__())
        return server

    yield start
    for server in servers:
        server.stop()


@contextlib.contextmanager
def client(kind: str, url: str, subprotocols: Tuple[str, ...] = (), **kw: Any) -> Iterator[Any]:
    if kind == "websockets":
        with ws_connect(url, subprotocols=list(subprotocols) or None, max_size=None, open_timeout=5,
                        close_timeout=5, **kw) as ws:
            yield ws
    else:
        with wsframe.connect(url, proxy=None, subprotocols=subprotocols, max_message_size=None,
                             open_timeout=5, **kw) as ws:
            yield ws


def response_header(ws: Any, name: str) -> Optional[str]:
    headers = ws.response.headers if hasattr(ws, "response") else ws.response_headers
    value: Optional[str] = headers.get(name)
    return value


def closed_with(ws: Any, timeout: float = 5.0) -> Tuple[int, str]:
    """Read until the connection ends: the close code and reason the server sent (1006: none)."""
    deadline = time.monotonic() + timeout
    try:
        while True:
            ws.recv(timeout=max(0.01, deadline - time.monotonic()))
    except websockets.exceptions.ConnectionClosed as exc:
        return (exc.rcvd.code, exc.rcvd.reason) if exc.rcvd is not None else (1006, "")
    except wsframe.ConnectionClosed as exc:
        return exc.code, exc.reason


def refused(kind: str, url: str) -> Tuple[int, bytes, Dict[str, str]]:
    """Status, body and headers of the HTTP response refusing the upgrade."""
    if kind == "websockets":
        with pytest.raises(websockets.exceptions.InvalidStatus) as info:
            with ws_connect(url, open_timeout=5):
                pass
        response = info.value.response
        return response.status_code, response.body, {k.lower(): v for k, v in response.headers.raw_items()}
    with pytest.raises(wsframe.InvalidStatus) as caught:
        with wsframe.connect(url, proxy=None, open_timeout=5):
            pass
    answer = caught.value.response
    return answer.status, caught.value.body, {k.lower(): v for k, v in answer.headers.items()}


def recorded(url_base: str, token: str, timeout: float = 5.0) -> Any:
    """What the app recorded for ``token`` (its websocket.disconnect), asked over a WebSocket."""
    found: List[Any] = []

    def ask() -> bool:
        with ws_connect(f"{url_base}/report?token={token}", open_timeout=5) as ws:
            value = json.loads(ws.recv(timeout=5))
        found[:] = [value]
        return value is not None

    wait_for(ask, timeout, 0.05)
    return found[0] if found else None


class RawClient:
    """wsframe's sans-I/O client on a socket: sees every frame, answers pings only if asked to."""

    def __init__(self, port: int, path: str, auto_pong: bool = False) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.conn = ClientConnection(f"127.0.0.1:{port}", path, auto_pong=auto_pong)
        self.sock.sendall(self.conn.handshake_request())
        assert any(isinstance(e, Accepted) for e in self.events(5, until=Accepted))

    def events(self, timeout: float, until: Any = None) -> List[Any]:
        """Events until one of type ``until`` (or Closed), or ``timeout`` seconds."""
        got: List[Any] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                break
            self.conn.receive_data(data)
            for event in self.conn.events():
                got.append(event)
                if isinstance(event, Closed) or (until is not None and isinstance(event, until)):
                    return got
            out = self.conn.data_to_send()
            if out:
                self.sock.sendall(out)
            if not data:
                break
        return got

    def close(self) -> None:
        self.sock.close()


# -- in-process: Starlette and raw ASGI on uvicorn -----------------------------------


LOOPS = ["asyncio", "uvloop"]


def gathers_on(loop: str, server: Any) -> bool:
    """Whether the one connection's protocol writes large messages unjoined (uvloop, plain TCP)."""
    (proto,) = server.protocols()
    return proto._gather_min == (GATHER_MIN if loop == "uvloop" else sys.maxsize)


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("http", ["h11", "httptools"])
@pytest.mark.parametrize("kind", CLIENTS)
def test_echo_text_and_binary(serve: Any, kind: str, http: str, loop: str) -> None:
    if http == "httptools":
        pytest.importorskip("httptools")
    if loop == "uvloop":
        pytest.importorskip("uvloop")
    server = serve(http=http, loop=loop)
    with client(kind, server.url("/echo")) as ws:
        assert wait_for(lambda: len(server.protocols()) == 1, 5) and gathers_on(loop, server)
        for message in ["hello", "h\u00e9llo \u2603 \U0001f600", "", b"\x00\x01\xff", b"", "x" * MiB, bytes(range(256)) * 4096,
                        # either side of the size from which header and payload are written unjoined, and
                        # past the largest read (1 MiB)
                        b"\x01" * (GATHER_MIN - 1), b"\x02" * GATHER_MIN, "\u00e9" * (GATHER_MIN - 1), "q" * GATHER_MIN,
                        b"\x5a" * (3 * MiB + 5), "\u2603" * (MiB + 3)]:
            ws.send(message)
            assert ws.recv(timeout=10) == message
    assert wait_for(lambda: not server.protocols(), 5)


def test_the_connection_is_served_by_wsframe(serve: Any, backend: Any) -> None:
    server = serve()
    with client("websockets", server.url("/impl")) as ws:
        owner, _ = json.loads(ws.recv(timeout=5))
        assert owner == f"{__name__}:Wsframe_{backend.name}"


@pytest.mark.parametrize("deflate", [True, False])
def test_ws_per_message_deflate_turns_compression_on_and_off(serve: Any, deflate: bool) -> None:
    server = serve(ws_per_message_deflate=deflate)
    with client("websockets", server.url("/echo")) as ws:
        answer = response_header(ws, "Sec-WebSocket-Extensions")
        if deflate:
            assert answer is not None and answer.startswith("permessage-deflate")
        else:
            assert answer is None
        text = '{"id": 1, "name": "wsframe", "tags": ["a", "b"]} ' * 100  # compressed both ways
        ws.send(text)
        assert ws.recv(timeout=5) == text


def test_scope(serve: Any) -> None:
    server = serve(app=scope_app, root_path="/api")
    with ws_connect(server.url("/caf%C3%A9/x?a=1&b=%20"), subprotocols=["one", "two"],
                    additional_headers=[("X-Test", "1"), ("X-Latin", "caf\u00e9")], open_timeout=5) as ws:
        local = ws.socket.getsockname()
        scope = json.loads(ws.recv(timeout=5))
    assert scope["type"] == "websocket"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert scope["http_version"] == "1.1"
    assert scope["scheme"] == "ws"
    assert scope["root_path"] == "/api"
    assert scope["path"] == "/api/caf\u00e9/x"
    assert scope["raw_path"] == "/api/caf%C3%A9/x"
    assert scope["query_string"] == "a=1&b=%20"
    assert ["x-test", "1"] in scope["headers"]
    assert ["x-latin", "caf\u00e9"] in scope["headers"]  # latin-1 bytes, as sent
    assert ["host", f"127.0.0.1:{server.port}"] in scope["headers"]
    assert all(name == name.lower() for name, _ in scope["headers"])
    assert scope["subprotocols"] == ["one", "two"]
    assert scope["extensions"] == {"websocket.http.response": {}}
    assert scope["client"] == ["127.0.0.1", local[1]]
    assert scope["server"] == ["127.0.0.1", server.port]


def test_scope_over_tls(serve: Any, certificate: Tuple[Path, Path]) -> None:
    cert, key = certificate
    server = serve(app=scope_app, ssl_certfile=str(cert), ssl_keyfile=str(key))
    context = ssl.create_default_context(cafile=str(cert))
    with ws_connect(server.url("/tls", "wss"), ssl=context, open_timeout=5) as ws:
        scope = json.loads(ws.recv(timeout=5))
    assert scope["scheme"] == "wss"
    echo_server = serve(ssl_certfile=str(cert), ssl_keyfile=str(key))
    for kind in CLIENTS:
        with client(kind, echo_server.url("/echo", "wss"), ssl=context) as ws:
            for message in ["tls", b"\x07" * MiB]:
                ws.send(message)
                assert ws.recv(timeout=10) == message


@pytest.mark.parametrize("kind", CLIENTS)
def test_subprotocol(serve: Any, kind: str) -> None:
    server = serve()
    with client(kind, server.url("/sub"), subprotocols=("x", "chat")) as ws:
        assert ws.subprotocol == "chat"
        assert json.loads(ws.recv(timeout=5)) == ["chat", ["x", "chat"]]
    with client(kind, server.url("/sub"), subprotocols=("x",)) as ws:
        assert ws.subprotocol is None
        assert json.loads(ws.recv(timeout=5)) == [None, ["x"]]


@pytest.mark.parametrize("kind", CLIENTS)
def test_accept_headers(serve: Any, kind: str) -> None:
    server = serve()
    with client(kind, server.url("/headers")) as ws:
        assert response_header(ws, "X-Wsframe-Test") == "yes"
        assert response_header(ws, "Server") == "uvicorn"  # uvicorn's default headers come along
        assert ws.recv(timeout=5) == "ok"
    with ws_connect(server.url("/headers"), open_timeout=5) as ws:
        assert ws.response.headers.get_all("Set-Cookie") == ["a=1", "b=2"]


@pytest.mark.parametrize("kind", CLIENTS)
def test_denial_response(serve: Any, kind: str) -> None:
    server = serve()
    status, body, head = refused(kind, server.url("/deny"))
    assert (status, body) == (403, b"go away")
    assert head["content-type"].startswith("text/plain")
    status, body, head = refused(kind, server.url("/deny401"))
    assert (status, body) == (401, b"log in first")
    assert head["www-authenticate"] == 'Basic realm="x"'


@pytest.mark.parametrize("kind", CLIENTS)
def test_denial_response_in_parts(serve: Any, kind: str) -> None:
    server = serve(app=chunked_denial_app)
    status, body, head = refused(kind, server.url("/"))
    assert (status, body) == (418, b"I'm a teapot")
    assert head["x-teapot"] == "short and stout"
    assert head["content-length"] == str(len(body))


@pytest.mark.parametrize("path, status", [("/close-first", 403), ("/no-answer", 403), ("/boom-before", 500)])
@pytest.mark.parametrize("kind", CLIENTS)
def test_refusals(serve: Any, kind: str, path: str, status: int) -> None:
    server = serve()
    assert refused(kind, server.url(path))[0] == status
    with client(kind, server.url("/echo")) as ws:  # the server is fine afterwards
        ws.send("still here")
        assert ws.recv(timeout=5) == "still here"


def test_invalid_upgrade_is_answered_by_the_core(serve: Any) -> None:
    server = serve()
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Key: not-a-key\r\nSec-WebSocket-Version: 13\r\n\r\n")
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    assert data.startswith(b"HTTP/1.1 400 ")


@pytest.mark.parametrize("kind", CLIENTS)
def test_close_codes_from_the_app(serve: Any, kind: str) -> None:
    server = serve()
    with client(kind, server.url("/close?code=4001&reason=bye")) as ws:
        assert closed_with(ws) == (4001, "bye")
    with client(kind, server.url("/close?code=1000")) as ws:
        assert closed_with(ws) == (1000, "")
    with client(kind, server.url("/returns-open")) as ws:
        assert ws.recv(timeout=5) == "bye"
        assert closed_with(ws) == (1000, "")  # the app returned while open: a clean close


@pytest.mark.parametrize("kind", CLIENTS)
def test_app_exception_after_accept_is_1011(serve: Any, kind: str) -> None:
    server = serve()
    with client(kind, server.url("/boom-after")) as ws:
        ws.send("go")
        assert closed_with(ws)[0] == 1011


@pytest.mark.parametrize("kind", CLIENTS)
def test_disconnect_code_seen_by_the_app(serve: Any, kind: str) -> None:
    server = serve()
    base = server.url("")
    with client(kind, server.url(f"/echo?token=close-{kind}")) as ws:
        ws.send("hi")
        assert ws.recv(timeout=5) == "hi"
        ws.close(4002, "later")
    assert recorded(base, f"close-{kind}") == [4002, "later"]
    with client(kind, server.url(f"/echo?token=plain-{kind}")) as ws:
        pass
    assert recorded(base, f"plain-{kind}") == [1000, ""]
    raw = RawClient(server.port, f"/echo?token=drop-{kind}")
    raw.close()  # TCP ends without a close frame
    assert recorded(base, f"drop-{kind}") == [1006, ""]


@pytest.mark.parametrize("kind", CLIENTS)
def test_max_size_is_1009(serve: Any, kind: str) -> None:
    server = serve(ws_max_size=64 * 1024)
    with client(kind, server.url(f"/echo?token=big-{kind}")) as ws:
        ws.send(b"x" * 64 * 1024)  # at the limit: fine
        assert len(ws.recv(timeout=5)) == 64 * 1024
        ws.send(b"x" * (64 * 1024 + 1))
        assert closed_with(ws)[0] == 1009
    assert recorded(server.url(""), f"big-{kind}")[0] == 1009


def test_keepalive_pings_a_silent_peer_and_drops_it_with_1011(serve: Any) -> None:
    server = serve(ws_ping_interval=0.2, ws_ping_timeout=0.3)
    raw = RawClient(server.port, "/echo?token=silent", auto_pong=False)
    try:
        events = raw.events(3, until=Ping)
        assert isinstance(events[-1], Ping) and len(events[-1].payload) == 4
        events = raw.events(3)  # no pong: the server gives up
        closes = [e for e in events if isinstance(e, CloseReceived)]
        assert closes and closes[0].code == 1011
    finally:
        raw.close()
    assert recorded(server.url(""), "silent")[0] == 1011


def test_keepalive_keeps_an_answering_peer(serve: Any) -> None:
    server = serve(ws_ping_interval=0.1, ws_ping_timeout=0.2)
    raw = RawClient(server.port, "/echo", auto_pong=True)
    try:
        events = raw.events(1.5)  # several intervals of silence from us, answered pings only
        assert sum(isinstance(e, Ping) for e in events) >= 3
        assert not any(isinstance(e, (CloseReceived, Closed)) for e in events)
    finally:
        raw.close()
    with client("websockets", server.url("/echo"), ping_interval=None) as ws:
        time.sleep(1.0)
        ws.send("alive")
        assert ws.recv(timeout=5) == "alive"


def test_receive_backpressure_pauses_reading(serve: Any) -> None:
    server = serve(ws_max_queue=4)
    GATES["bp"] = threading.Event()
    n = 200
    with wsframe.connect(server.url(f"/slow?token=bp&n={n}"), proxy=None, open_timeout=5) as ws:
        for i in range(n):
            ws.send(i.to_bytes(4, "big") * 256)
        assert wait_for(lambda: any(p._read_paused for p in server.protocols()), 5)
        time.sleep(0.2)
        (proto,) = server.protocols()
        assert proto._read_paused and len(proto._queue) <= 4
        GATES["bp"].set()
        for i in range(n):
            assert ws.recv(timeout=10) == i.to_bytes(4, "big") * 256
        assert closed_with(ws)[0] == 1000


@pytest.mark.parametrize("loop", LOOPS)
def test_send_backpressure_waits_for_the_transport(serve: Any, loop: str) -> None:
    if loop == "uvloop":
        pytest.importorskip("uvloop")
    server = serve(loop=loop)
    n = 48
    with wsframe.connect(server.url(f"/flood?token=fl&n={n}"), proxy=None, open_timeout=5,
                         max_message_size=None, compression=None) as ws:  # 1 MiB of 0xab would deflate to 1 KiB
        assert wait_for(lambda: any(p._write_paused for p in server.protocols()), 5)
        assert gathers_on(loop, server)  # on uvloop the 1 MiB messages go out through writelines()
        time.sleep(0.3)
        (proto,) = server.protocols()
        assert SENT["fl"] < n // 2  # send() waits: the app is held back by a client that does not read
        assert proto.transport.get_write_buffer_size() <= 2 * MiB
        for _ in range(n):
            assert len(ws.recv(timeout=10)) == MiB
        assert closed_with(ws)[0] == 1000
    assert SENT["fl"] == n


def test_server_shutdown_is_1012(backend: Any) -> None:
    with InProcessServer(starlette_app, protocol_for(backend.name)) as server:
        with ws_connect(server.url("/echo?token=down"), open_timeout=5) as ws:
            ws.send("x")
            assert ws.recv(timeout=5) == "x"
            stopper = threading.Thread(target=server.stop)
            stopper.start()
            try:
                assert closed_with(ws)[0] == 1012
            finally:
                stopper.join(15)
    assert RECORDED["down"][0] == 1012


def test_uvloop(backend: Any) -> None:
    pytest.importorskip("uvloop")
    with InProcessServer(starlette_app, protocol_for(backend.name), loop="uvloop") as server:
        with client("wsframe", server.url("/echo")) as ws:
            for message in ["x", b"y" * MiB]:
                ws.send(message)
                assert ws.recv(timeout=10) == message


# -- subprocesses: FastAPI on the uvicorn command line, and under gunicorn -------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _env(backend_name: str, tmp: Optional[Path] = None) -> Dict[str, str]:
    env = dict(os.environ)
    env.pop("WSFRAME_NO_EXTENSIONS", None)
    if backend_name == "python":
        env["WSFRAME_NO_EXTENSIONS"] = "1"
    paths = [str(TESTS)] + ([str(tmp)] if tmp else []) + [env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    return env


def _start(args: List[str], env: Dict[str, str], port: int, log: Path) -> "subprocess.Popen[bytes]":
    with open(log, "wb") as out:
        process = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=str(TESTS))

    def listening() -> bool:
        if process.poll() is not None:
            return True
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
        return False

    wait_for(listening, 20, 0.05)
    if process.poll() is not None or not listening():
        stop_process(process)
        raise RuntimeError(f"server did not start: {log.read_text(errors='replace')[-3000:]}")
    return process


@pytest.fixture(scope="module", params=wsframe.protocol.backend.available())
def cli_server(request: pytest.FixtureRequest, tmp_path_factory: Any) -> Iterator[Tuple[str, int]]:
    """``python -m uvicorn test_asgi:fastapi_app --ws wsframe...`` on one backend: (backend, port)."""
    name = request.param
    port = _free_port()
    log = tmp_path_factory.mktemp("uvicorn") / "server.log"
    args = [sys.executable, "-m", "uvicorn", "test_asgi:fastapi_app", "--app-dir", str(TESTS),
            "--ws", PROTOCOL, "--host", "127.0.0.1", "--port", str(port), "--lifespan", "off",
            "--ws-max-size", str(2 * MiB), "--ws-ping-interval", "0.3", "--ws-ping-timeout", "0.4",
            "--timeout-graceful-shutdown", "3"]
    process = _start(args, _env(name), port, log)
    try:
        yield name, port
    finally:
        stop_process(process, 10)


@pytest.mark.parametrize("kind", CLIENTS)
def test_uvicorn_command_line_fastapi(cli_server: Tuple[str, int], kind: str) -> None:
    name, port = cli_server
    base = f"ws://127.0.0.1:{port}"
    with client(kind, f"{base}/impl") as ws:
        assert json.loads(ws.recv(timeout=5)) == [PROTOCOL, name]
    with client(kind, f"{base}/echo?token=cli-{kind}") as ws:
        for message in ["hello", b"\x01\x02", "y" * MiB, b"z" * MiB]:
            ws.send(message)
            assert ws.recv(timeout=10) == message
        ws.close(4003, "done")
    assert recorded(base, f"cli-{kind}") == [4003, "done"]
    with client(kind, f"{base}/sub", subprotocols=("chat",)) as ws:
        assert ws.subprotocol == "chat"
    assert refused(kind, f"{base}/deny")[:2] == (403, b"go away")
    assert refused(kind, f"{base}/boom-before")[0] == 500
    assert refused(kind, f"{base}/close-first")[0] == 403
    with client(kind, f"{base}/close?code=4004&reason=server") as ws:
        assert closed_with(ws) == (4004, "server")
    with client(kind, f"{base}/boom-after") as ws:
        ws.send("go")
        assert closed_with(ws)[0] == 1011
    with client(kind, f"{base}/echo?token=cli-big-{kind}") as ws:
        ws.send(b"x" * (2 * MiB + 1))
        assert closed_with(ws)[0] == 1009
    assert recorded(base, f"cli-big-{kind}")[0] == 1009


def test_uvicorn_command_line_keepalive(cli_server: Tuple[str, int]) -> None:
    _, port = cli_server
    raw = RawClient(port, "/echo?token=cli-silent", auto_pong=False)
    try:
        assert isinstance(raw.events(3, until=Ping)[-1], Ping)
        closes = [e for e in raw.events(3) if isinstance(e, CloseReceived)]
        assert closes and closes[0].code == 1011
    finally:
        raw.close()


@pytest.mark.skipif(sys.platform == "win32", reason="gunicorn runs on Unix only")
def test_gunicorn_uvicorn_worker(tmp_path: Path) -> None:
    pytest.importorskip("gunicorn")
    (tmp_path / "wsframe_worker.py").write_text(
        "from uvicorn.workers import UvicornWorker\n\n\n"
        "class WsframeWorker(UvicornWorker):\n"
        f"    CONFIG_KWARGS = {{**UvicornWorker.CONFIG_KWARGS, 'ws': {PROTOCOL!r}}}\n"
    )
    port = _free_port()
    args = [sys.executable, "-m", "gunicorn", "-k", "wsframe_worker.WsframeWorker", "-w", "1",
            "-b", f"127.0.0.1:{port}", "--graceful-timeout", "5", "test_asgi:fastapi_app"]
    process = _start(args, _env(wsframe.BACKEND, tmp_path), port, tmp_path / "gunicorn.log")
    try:
        base = f"ws://127.0.0.1:{port}"
        with client("wsframe", f"{base}/impl") as ws:
            assert json.loads(ws.recv(timeout=10)) == [PROTOCOL, wsframe.BACKEND]
        with client("websockets", f"{base}/echo") as ws:
            ws.send(b"\x05" * MiB)
            assert ws.recv(timeout=10) == b"\x05" * MiB
            ws.send("text")
            assert ws.recv(timeout=5) == "text"
    finally:
        stop_process(process, 10)
