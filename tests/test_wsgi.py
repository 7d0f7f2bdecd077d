"""WebSockets inside WSGI servers (wsframe.integrations.wsgi and .flask), on real servers on 127.0.0.1.

In-process: the werkzeug development server (``make_server(threaded=True)``,
plain and TLS), with raw WSGI, ``websocket_app`` and Flask; the framing
backend is the ``backend`` fixture's, passed as an option. Subprocesses:
gunicorn's gthread worker (``--threads 4``) running the examples in
``examples/`` (plain WSGI, Flask, Django), plain and with ``--certfile``;
the python backend there is chosen with ``WSFRAME_NO_EXTENSIONS=1``.
Clients: the ``websockets`` sync client, wsframe's client, and raw sockets
for early frames and for what the server writes after the close. Every
wait is bounded; every server is stopped.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pytest

pytest.importorskip("werkzeug")
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect
from werkzeug.serving import make_server

import wsframe
from support import stop_process, wait_for
from wsframe.integrations import wsgi
from wsframe.options import Accept, Refuse
from wsframe.protocol import handshake as hs
from wsframe.protocol.connection import ClientConnection
from wsframe.protocol.events import Accepted, BinaryMessage, CloseReceived, Closed, TextMessage

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TIMEOUT = 10.0


# -- servers ------------------------------------------------------------------------------


@contextlib.contextmanager
def werkzeug(app: Callable[..., Any], ssl_context: Optional[ssl.SSLContext] = None) -> Iterator[int]:
    """The werkzeug development server (threaded) in a thread; yields its port."""
    server = make_server("127.0.0.1", 0, app, threaded=True, ssl_context=ssl_context)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()
        thread.join(TIMEOUT)


def _gunicorn_flags() -> List[str]:
    from gunicorn.config import KNOWN_SETTINGS

    names = {setting.name for setting in KNOWN_SETTINGS}
    return ["--no-control-socket"] if "control_socket_disable" in names else []  # gunicorn >= 24: one per host


@contextlib.contextmanager
def gunicorn(folder: Path, spec: str, backend: Any, tmp_path: Path, *extra: str) -> Iterator[Tuple[int, Path]]:
    """``python -m gunicorn -k gthread --threads 4`` serving ``spec`` from ``folder``; yields (port, log path)."""
    pytest.importorskip("gunicorn")
    if sys.platform == "win32":  # pragma: no cover
        pytest.skip("gunicorn runs on POSIX only")
    if not folder.is_dir():  # tests run from an installed wheel, without the checkout's examples/
        pytest.skip(f"{folder} is not beside the tests")
    env = dict(os.environ)
    env.pop("WSFRAME_NO_EXTENSIONS", None)
    if backend.name == "python":
        env["WSFRAME_NO_EXTENSIONS"] = "1"
    log = tmp_path / f"gunicorn-{time.monotonic_ns()}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-k", "gthread", "--threads", "4", "-b", "127.0.0.1:0",
             "--chdir", str(folder), "--log-level", "debug", "--graceful-timeout", "3", "--timeout", "60",
             *_gunicorn_flags(), *extra, spec],
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )
    try:
        found: Dict[str, int] = {}

        def listening() -> bool:
            m = re.search(r"Listening at: https?://127\.0\.0\.1:(\d+)", log.read_text(errors="replace"))
            if m:
                found["port"] = int(m[1])
            return bool(m) and "Booting worker" in log.read_text(errors="replace") or process.poll() is not None
        assert wait_for(listening, 30.0), log.read_text(errors="replace")
        assert process.poll() is None and "port" in found, log.read_text(errors="replace")
        yield found["port"], log
    finally:
        stop_process(process)


def quiet(log: Path) -> None:
    """gunicorn wrote no error for the taken-over connections (EPIPE is logged at debug: fine)."""
    text = log.read_text(errors="replace")
    assert "Traceback" not in text and "[ERROR]" not in text, text


# -- handlers and clients --------------------------------------------------------------------


def echo(ws: wsframe.WebSocket) -> None:
    for message in ws:
        ws.send(message)


def echo_checks(url: str, **kwargs: Any) -> None:
    """Text, binary and a 300 KiB message through wsframe's client, then the websockets client."""
    big = os.urandom(300 * 1024)
    with wsframe.connect(url, proxy=None, open_timeout=TIMEOUT, **kwargs) as ws:
        ws.send("héllo")
        assert ws.recv(timeout=TIMEOUT) == "héllo"
        ws.send(b"\x00\x01")
        assert ws.recv(timeout=TIMEOUT) == b"\x00\x01"
        ws.send(big)
        assert ws.recv(timeout=TIMEOUT) == big
    assert ws.close_code == 1000
    ws_url = url
    with ws_connect(ws_url, open_timeout=TIMEOUT, max_size=2**21, **kwargs) as client:
        client.send("from websockets")
        assert client.recv(timeout=TIMEOUT) == "from websockets"
        client.send(big)
        assert client.recv(timeout=TIMEOUT) == big


def raw_handshake(port: int, path: str, after: bytes = b"", tls: Optional[ssl.SSLContext] = None,
                  headers: Tuple[Tuple[str, str], ...] = ()) -> Tuple[socket.socket, ClientConnection]:
    """A raw client: sends the request head and ``after`` (early frames) in one write."""
    sock: socket.socket = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    if tls is not None:
        sock = tls.wrap_socket(sock, server_hostname="localhost")
    conn = ClientConnection(f"127.0.0.1:{port}", path, extra_headers=list(headers))
    sock.sendall(conn.handshake_request() + after)
    return sock, conn


def masked_text(text: str) -> bytes:
    return wsframe.encode_frame(0x1, text.encode(), mask_key=b"\x01\x02\x03\x04")


def read_events(sock: socket.socket, conn: ClientConnection, until: Callable[[List[Any]], bool]) -> List[Any]:
    events: List[Any] = []
    deadline = time.monotonic() + TIMEOUT
    while not until(events):
        assert time.monotonic() < deadline, events
        data = sock.recv(65536)
        conn.receive_data(data)
        events.extend(conn.events())
        if not data:
            break
    return events


def early_frames_check(port: int, path: str, tls: Optional[ssl.SSLContext] = None) -> None:
    """Frames sent in the same write as the request are not lost (the server buffered them)."""
    frames = masked_text("early one") + masked_text("early two")
    sock, conn = raw_handshake(port, path, frames, tls)
    with sock:
        events = read_events(sock, conn, lambda ev: sum(isinstance(e, TextMessage) for e in ev) >= 2)
        assert isinstance(events[0], Accepted)
        assert [e.data for e in events if isinstance(e, TextMessage)] == ["early one", "early two"]
        sock.sendall(conn.close(1000, ""))
        read_events(sock, conn, lambda ev: any(isinstance(e, Closed) for e in ev))


def finished_check(port: int, path: str, tls: Optional[ssl.SSLContext] = None) -> None:
    """After the closing handshake the server writes nothing more on the connection and closes it (no reuse)."""
    sock, conn = raw_handshake(port, path, tls=tls)
    with sock:
        read_events(sock, conn, lambda ev: any(isinstance(e, Accepted) for e in ev))
        sock.sendall(conn.close(1000, "bye"))
        rest = b""
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            try:
                data = sock.recv(65536)
            except (ssl.SSLEOFError, ssl.SSLZeroReturnError):
                break
            if not data:
                break
            rest += data
        else:
            pytest.fail("the server did not close the connection")
        # Exactly the server's close frame: no HTTP response head after it.
        assert rest[:1] == b"\x88" and len(rest) == 2 + rest[1] and rest[2:4] == b"\x03\xe8", rest
        # A second request on the same connection goes nowhere.
        with contextlib.suppress(OSError):
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(65536) == b""


def http_get(port: int, path: str, tls: Optional[ssl.SSLContext] = None,
             headers: Optional[Dict[str, str]] = None, method: str = "GET") -> http.client.HTTPResponse:
    if tls is None:
        c: http.client.HTTPConnection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    else:
        c = http.client.HTTPSConnection("127.0.0.1", port, timeout=TIMEOUT, context=tls)
    c.request(method, path, headers=headers or {})
    response = c.getresponse()
    response.read()
    c.close()
    return response


UPGRADE = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
           "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}


# -- werkzeug, in process --------------------------------------------------------------------


def test_werkzeug_echo(backend: Any) -> None:
    with werkzeug(wsgi.websocket_app(echo, backend=backend.name)) as port:
        echo_checks(f"ws://127.0.0.1:{port}/any/path")


def test_accept_gives_the_request_and_options(backend: Any) -> None:
    """accept() in a raw WSGI view: path, query, headers, subprotocol; the same WebSocket as serve()'s."""
    seen: Dict[str, Any] = {}

    def app(environ: Dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ["PATH_INFO"] != "/ws":
            start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
            return [b"ok"]
        try:
            ws = wsgi.accept(environ, subprotocols=["v2", "v1"], backend=backend.name)
        except wsgi.Refused as refusal:
            return refusal(environ, start_response)
        seen["type"] = type(ws)
        with ws:
            ws.send(json.dumps({"path": ws.path, "query": ws.query, "sub": ws.subprotocol,
                                "x": ws.request_headers["x-custom"], "peer": list(ws.remote_address)}))
            for message in ws:
                ws.send(message)
        return wsgi.finish(ws, start_response)

    with werkzeug(app) as port:
        url = f"ws://127.0.0.1:{port}/ws?a=1&b=%20"
        with ws_connect(url, subprotocols=["v1", "v2"], additional_headers={"X-Custom": "yes"},
                        open_timeout=TIMEOUT) as client:
            info = json.loads(client.recv(timeout=TIMEOUT))
            assert client.subprotocol == "v2"
            client.send("still here")
            assert client.recv(timeout=TIMEOUT) == "still here"
        assert info["path"] == "/ws" and info["query"] == "a=1&b=%20" and info["sub"] == "v2"
        assert info["x"] == "yes" and info["peer"][0] == "127.0.0.1"
        assert issubclass(seen["type"], wsframe.WebSocket)
        assert http_get(port, "/plain").status == 200  # the same server, still serving HTTP


def test_refusals_are_answered_like_serve(backend: Any) -> None:
    """Invalid upgrades and hook refusals: the status and headers serve() sends, through the WSGI response."""

    def process_upgrade(request: hs.Request) -> Any:
        if request.headers.get("Authorization") != "Bearer ok":
            return Refuse(401, [("WWW-Authenticate", "Bearer")], "who are you?\n")
        return Accept([("X-Welcome", "1")])

    app = wsgi.websocket_app(echo, backend=backend.name, process_upgrade=process_upgrade,
                             origins=["https://good.example", None], max_request_headers=40)
    with werkzeug(app) as port:
        plain = http_get(port, "/")
        assert plain.status == 426 and plain.getheader("Upgrade") == "websocket"
        bad_version = http_get(port, "/", headers={**UPGRADE, "Sec-WebSocket-Version": "8"})
        assert bad_version.status == 426 and bad_version.getheader("Sec-WebSocket-Version") == "13"
        post = http_get(port, "/", headers=UPGRADE, method="POST")
        assert post.status == 405 and post.getheader("Allow") == "GET"
        origin = http_get(port, "/", headers={**UPGRADE, "Origin": "https://evil.example"})
        assert origin.status == 403
        too_many = http_get(port, "/", headers={**UPGRADE, **{f"X-H{i}": "v" for i in range(50)}})
        assert too_many.status == 431
        with pytest.raises(InvalidStatus) as refused:
            ws_connect(f"ws://127.0.0.1:{port}/", open_timeout=TIMEOUT)
        assert refused.value.response.status_code == 401
        assert refused.value.response.headers["WWW-Authenticate"] == "Bearer"
        assert refused.value.response.body == b"who are you?\n"
        with ws_connect(f"ws://127.0.0.1:{port}/", additional_headers={"Authorization": "Bearer ok"},
                        open_timeout=TIMEOUT) as client:
            assert client.response.headers["X-Welcome"] == "1"
            client.send("in")
            assert client.recv(timeout=TIMEOUT) == "in"


def test_limits_and_handler_errors(backend: Any) -> None:
    """max_message_size closes with 1009; a handler that raises closes with 1011; the server goes on."""

    def handler(ws: wsframe.WebSocket) -> None:
        for message in ws:
            if message == "boom":
                raise RuntimeError("handler bug (expected by the test)")
            ws.send(message)

    with werkzeug(wsgi.websocket_app(handler, backend=backend.name, max_message_size=1000)) as port:
        with wsframe.connect(f"ws://127.0.0.1:{port}/", proxy=None) as ws:
            ws.send("x" * 2000)
            with pytest.raises(wsframe.ConnectionClosed):
                ws.recv(timeout=TIMEOUT)
        assert ws.close_code == 1009
        with wsframe.connect(f"ws://127.0.0.1:{port}/", proxy=None) as ws:
            ws.send("boom")
            with pytest.raises(wsframe.ConnectionClosed):
                ws.recv(timeout=TIMEOUT)
        assert ws.close_code == 1011
        with wsframe.connect(f"ws://127.0.0.1:{port}/", proxy=None) as ws:
            ws.send("fine")
            assert ws.recv(timeout=TIMEOUT) == "fine"


def test_werkzeug_early_frames_and_end(backend: Any) -> None:
    with werkzeug(wsgi.websocket_app(echo, backend=backend.name)) as port:
        early_frames_check(port, "/")
        finished_check(port, "/")
        assert http_get(port, "/").status == 426  # new connections are served as before


def test_werkzeug_thread_is_freed_when_the_client_keeps_its_socket(backend: Any) -> None:
    """After the closing handshake the request thread ends even if the client never closes TCP (no reuse)."""

    def request_threads() -> List[threading.Thread]:
        return [t for t in threading.enumerate() if "process_request_thread" in t.name]

    with werkzeug(wsgi.websocket_app(echo, backend=backend.name)) as port:
        assert wait_for(lambda: not request_threads(), TIMEOUT)
        sock, conn = raw_handshake(port, "/")
        with sock:
            read_events(sock, conn, lambda ev: any(isinstance(e, Accepted) for e in ev))
            sock.sendall(conn.close(1000, ""))
            read_events(sock, conn, lambda ev: any(isinstance(e, Closed) for e in ev))
            # Our socket stays open: werkzeug would wait on it for a next request, or drain it, forever.
            assert wait_for(lambda: not request_threads(), TIMEOUT), request_threads()


def test_werkzeug_many_connections_at_once(backend: Any) -> None:
    with werkzeug(wsgi.websocket_app(echo, backend=backend.name)) as port:
        clients = [wsframe.connect(f"ws://127.0.0.1:{port}/", proxy=None) for _ in range(16)]
        try:
            for i, ws in enumerate(clients):
                ws.send(f"n{i}")
            assert [ws.recv(timeout=TIMEOUT) for ws in clients] == [f"n{i}" for i in range(16)]
        finally:
            for ws in clients:
                ws.close()
        assert all(ws.close_code == 1000 for ws in clients)


def test_werkzeug_tls(backend: Any, tls_contexts: Tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    """TLS terminated by the server (an SSLSocket): relayed, with backpressure, early frames and a clean end."""
    server_ctx, client_ctx = tls_contexts
    with werkzeug(wsgi.websocket_app(echo, backend=backend.name, max_message_size=2**22), server_ctx) as port:
        echo_checks(f"wss://127.0.0.1:{port}/tls", ssl=client_ctx)
        with wsframe.connect(f"wss://127.0.0.1:{port}/", proxy=None, ssl=client_ctx,
                             max_message_size=2**22) as ws:
            big = os.urandom(3 * 2**20)  # more than the relay and the socket buffers hold
            for _ in range(3):
                ws.send(big)
            assert [ws.recv(timeout=TIMEOUT) for _ in range(3)] == [big] * 3
        early_frames_check(port, "/", client_ctx)
        finished_check(port, "/", client_ctx)


def test_unsupported_servers_are_named() -> None:
    environ = {"SERVER_SOFTWARE": "waitress", "REQUEST_METHOD": "GET", "PATH_INFO": "/", "wsgi.input": None}
    with pytest.raises(wsgi.UnsupportedServer, match="'waitress' does not expose the request's socket"):
        wsgi.accept(environ)
    with pytest.raises(wsgi.UnsupportedServer, match="SERVER_SOFTWARE is not set"):
        wsgi.accept({})

    class GreenSocket:  # what gevent/eventlet workers expose
        pass

    GreenSocket.__module__ = "gevent._socket3"
    with pytest.raises(wsgi.UnsupportedServer, match="green threads"):
        wsgi.server_socket({"SERVER_SOFTWARE": "gunicorn/23", "gunicorn.socket": GreenSocket()})


def test_unsupported_server_is_a_clear_500() -> None:
    """wsgiref (what Django's runserver uses) exposes no socket: the developer sees the error, the client a 500."""
    from wsgiref.simple_server import WSGIRequestHandler, make_server as wsgiref_server

    errors: List[str] = []

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    app = wsgi.websocket_app(echo)

    def guarded(environ: Dict[str, Any], start_response: Callable[..., Any]) -> Any:
        try:
            return app(environ, start_response)
        except wsgi.UnsupportedServer as exc:
            errors.append(str(exc))
            raise

    server = wsgiref_server("127.0.0.1", 0, guarded, handler_class=Quiet)
    server.handle_error = lambda *args: None  # type: ignore[method-assign]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        assert http_get(server.server_port, "/", headers=UPGRADE).status == 500  # wsgiref answers in HTTP/1.0
        assert errors and "'WSGIServer/" in errors[0] and "gunicorn" in errors[0]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(TIMEOUT)


def test_request_from_environ() -> None:
    base = {"REQUEST_METHOD": "GET", "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": "h", "QUERY_STRING": "q=1"}
    raw = wsgi.request_from_environ({**base, "RAW_URI": "/a%20b?q=1", "PATH_INFO": "/a b"})
    assert raw.target == "/a%20b?q=1" and raw.headers["host"] == "h"
    # Without RAW_URI / REQUEST_URI: SCRIPT_NAME + PATH_INFO (latin-1 WSGI strings of the URL's bytes), quoted.
    rebuilt = wsgi.request_from_environ({**base, "SCRIPT_NAME": "/app", "PATH_INFO": "/é".encode().decode("latin-1")})
    assert rebuilt.target == "/app/%C3%A9?q=1" and rebuilt.path == "/app/%C3%A9"
    body = wsgi.request_from_environ({**base, "PATH_INFO": "/", "CONTENT_TYPE": "text/plain", "CONTENT_LENGTH": "",
                                      "HTTP_SEC_WEBSOCKET_PROTOCOL": "a, b", "wsgi.input": object()})
    assert body.headers.get("Content-Type") == "text/plain" and "Content-Length" not in body.headers
    assert body.subprotocols == ["a", "b"]
    with pytest.raises(hs.HandshakeError) as bad:
        wsgi.request_from_environ({**base, "PATH_INFO": "/", "HTTP_X": "a\nInjected: 1"})
    assert bad.value.status == 400
    with pytest.raises(hs.HandshakeError) as long_line:
        wsgi.request_from_environ({**base, "PATH_INFO": "/", "HTTP_X": "v" * 9000})
    assert long_line.value.status == 431
    with pytest.raises(hs.HandshakeError) as old:
        wsgi.request_from_environ({**base, "PATH_INFO": "/", "SERVER_PROTOCOL": "HTTP/1.0"})
    assert old.value.status == 400


def test_options_are_checked_at_once() -> None:
    with pytest.raises(TypeError, match="unknown option"):
        wsgi.websocket_app(echo, max_mesage_size=1)
    with pytest.raises(TypeError, match="WSGI server"):
        wsgi.websocket_app(echo, ssl=ssl.create_default_context())

    async def handler(ws: Any) -> None:
        pass

    with pytest.raises(TypeError, match="async"):
        wsgi.websocket_app(handler)


def test_decorator_forms(backend: Any) -> None:
    @wsgi.websocket_app(backend=backend.name, subprotocols=["x"])
    def decorated(ws: wsframe.WebSocket) -> None:
        ws.send(ws.subprotocol or "none")

    assert decorated.__name__ == "decorated"
    with werkzeug(decorated) as port:
        with wsframe.connect(f"ws://127.0.0.1:{port}/", proxy=None, subprotocols=["x"]) as ws:
            assert ws.recv(timeout=TIMEOUT) == "x"


# -- Flask on werkzeug, in process -----------------------------------------------------------


def flask_app(backend: Any, **options: Any) -> Any:
    flask = pytest.importorskip("flask")
    from wsframe.integrations.flask import Sock

    app = flask.Flask(__name__)
    sock = Sock(app, backend=backend.name, **options)

    @app.route("/echo")
    def echo_page() -> str:
        return "http here"

    @sock.route("/echo")
    def echo_route(ws: wsframe.WebSocket) -> None:
        echo(ws)

    @sock.route("/room/<name>")
    def room(ws: wsframe.WebSocket, name: str) -> None:
        flask.g.seen = name  # the request context is there
        ws.send(f"{name}:{flask.request.args.get('user')}:{flask.request.headers.get('X-Test')}")

    @sock.route("/only-ws")
    def only_ws(ws: wsframe.WebSocket) -> None:
        ws.send("only")

    with pytest.raises(ValueError, match="websocket rule"):
        sock.route("/never", websocket=False)
    return app


def test_flask_routes(backend: Any) -> None:
    with werkzeug(flask_app(backend)) as port:
        echo_checks(f"ws://127.0.0.1:{port}/echo")
        with ws_connect(f"ws://127.0.0.1:{port}/room/lobby?user=ann", additional_headers={"X-Test": "t"},
                        open_timeout=TIMEOUT) as client:
            assert client.recv(timeout=TIMEOUT) == "lobby:ann:t"
        page = http_get(port, "/echo")  # an HTTP view on the same path
        assert page.status == 200
        assert http_get(port, "/only-ws").status == 400  # werkzeug's router: a websocket rule, a plain request
        with wsframe.connect(f"ws://127.0.0.1:{port}/only-ws", proxy=None) as ws:
            assert ws.recv(timeout=TIMEOUT) == "only"
        early_frames_check(port, "/echo")
        finished_check(port, "/echo")


def test_flask_refusal_and_config(backend: Any) -> None:
    app = flask_app(backend, origins=["https://good.example"])
    with werkzeug(app) as port:
        refused = http_get(port, "/echo", headers={**UPGRADE, "Origin": "https://evil.example"})
        assert refused.status == 403
        with wsframe.connect(f"ws://127.0.0.1:{port}/echo", proxy=None, origin="https://good.example") as ws:
            ws.send("ok")
            assert ws.recv(timeout=TIMEOUT) == "ok"
        app.config["WSFRAME_OPTIONS"] = {"origins": None}  # per application, on top of Sock's
        with wsframe.connect(f"ws://127.0.0.1:{port}/echo", proxy=None, origin="https://evil.example") as ws:
            ws.send("ok")
            assert ws.recv(timeout=TIMEOUT) == "ok"


def test_flask_init_app(backend: Any) -> None:
    flask = pytest.importorskip("flask")
    from wsframe.integrations.flask import Sock

    sock = Sock(backend=backend.name)

    @sock.route("/late")
    def late(ws: wsframe.WebSocket) -> None:
        ws.send("late")

    app = flask.Flask(__name__)
    sock.init_app(app)
    with werkzeug(app) as port:
        with wsframe.connect(f"ws://127.0.0.1:{port}/late", proxy=None) as ws:
            assert ws.recv(timeout=TIMEOUT) == "late"


# -- gunicorn gthread, subprocesses ----------------------------------------------------------


def test_gunicorn_wsgi(backend: Any, tmp_path: Path) -> None:
    with gunicorn(EXAMPLES / "wsgi_gunicorn", "app:app", backend, tmp_path) as (port, log):
        with ws_connect(f"ws://127.0.0.1:{port}/info?k=v", subprotocols=["chat"],
                        additional_headers={"X-Test": "hi"}, open_timeout=TIMEOUT) as client:
            info = json.loads(client.recv(timeout=TIMEOUT))
        assert info == {"path": "/info", "query": "k=v", "subprotocol": "chat", "x_test": "hi",
                        "backend": backend.name}
        echo_checks(f"ws://127.0.0.1:{port}/echo")
        early_frames_check(port, "/echo")
        finished_check(port, "/echo")
        assert http_get(port, "/echo").status == 426
        assert http_get(port, "/page").status == 200
        quiet(log)


def test_gunicorn_serves_http_while_websockets_are_open(backend: Any, tmp_path: Path) -> None:
    """--threads 4: each open WebSocket holds one thread; the others go on serving HTTP."""
    with gunicorn(EXAMPLES / "wsgi_gunicorn", "app:app", backend, tmp_path) as (port, log):
        held = [wsframe.connect(f"ws://127.0.0.1:{port}/echo", proxy=None) for _ in range(3)]
        try:
            for i in range(20):  # one thread is left for these
                assert http_get(port, f"/page{i}").status == 200
            for ws in held:
                ws.send("alive")
                assert ws.recv(timeout=TIMEOUT) == "alive"
            # A fourth WebSocket takes the last thread: an HTTP request now waits for a thread to free up.
            held.append(wsframe.connect(f"ws://127.0.0.1:{port}/echo", proxy=None))
            result: Dict[str, int] = {}
            waiter = threading.Thread(target=lambda: result.setdefault("status", http_get(port, "/late").status))
            waiter.start()
            time.sleep(0.5)
            assert "status" not in result
            held.pop().close()
            waiter.join(TIMEOUT)
            assert result.get("status") == 200
        finally:
            for ws in held:
                ws.close()
        quiet(log)


def test_gunicorn_tls(backend: Any, tmp_path: Path, certificate: Tuple[Path, Path],
                      tls_contexts: Tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    cert, key = certificate
    client_ctx = tls_contexts[1]
    with gunicorn(EXAMPLES / "wsgi_gunicorn", "app:app", backend, tmp_path,
                  "--certfile", str(cert), "--keyfile", str(key)) as (port, log):
        echo_checks(f"wss://127.0.0.1:{port}/echo", ssl=client_ctx)
        early_frames_check(port, "/echo", client_ctx)
        finished_check(port, "/echo", client_ctx)
        assert http_get(port, "/page", tls=client_ctx).status == 200
        quiet(log)


def test_flask_on_gunicorn(backend: Any, tmp_path: Path) -> None:
    pytest.importorskip("flask")
    with gunicorn(EXAMPLES / "flask_gunicorn", "app:app", backend, tmp_path) as (port, log):
        echo_checks(f"ws://127.0.0.1:{port}/echo")
        with wsframe.connect(f"ws://127.0.0.1:{port}/room/blue?user=bo", proxy=None) as ws:
            assert ws.recv(timeout=TIMEOUT) == "welcome to blue, bo"
            ws.send("hi")
            assert ws.recv(timeout=TIMEOUT) == "blue: hi"
        assert http_get(port, "/echo").status == 200
        early_frames_check(port, "/echo")
        finished_check(port, "/echo")
        quiet(log)


def test_django_on_gunicorn(backend: Any, tmp_path: Path) -> None:
    pytest.importorskip("django")
    with gunicorn(EXAMPLES / "django_gunicorn", "echo_site.wsgi", backend, tmp_path) as (port, log):
        echo_checks(f"ws://127.0.0.1:{port}/ws/echo")
        with ws_connect(f"ws://127.0.0.1:{port}/ws/chat/lobby?user=ann", subprotocols=["chat.v1"],
                        open_timeout=TIMEOUT) as client:
            assert json.loads(client.recv(timeout=TIMEOUT)) == {"room": "lobby", "user": "ann",
                                                                  "subprotocol": "chat.v1"}
            client.send("hello")
            assert client.recv(timeout=TIMEOUT) == "lobby: hello"
        index = http_get(port, "/")
        assert index.status == 200
        refused = http_get(port, "/ws/echo")
        assert refused.status == 426 and refused.getheader("Upgrade") == "websocket"
        early_frames_check(port, "/ws/echo")
        finished_check(port, "/ws/echo")
        quiet(log)
