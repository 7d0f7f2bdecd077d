"""wsframe.connect(): the blocking client, against real servers and real proxies, on both backends."""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Iterator, List, Tuple

import pytest
from websockets.sync.server import serve as websockets_serve

import wsframe
from support import stop_process, wait_for
from wsframe import InvalidHandshake, InvalidStatus, InvalidURI, Refuse, connect, serve
from wsframe.protocol import handshake as hs
from wsframe.sync import client as client_module


@contextlib.contextmanager
def wsframe_server(handler: Any = None, **options: Any) -> Iterator[Any]:
    def echo(ws: Any) -> None:
        for message in ws:
            ws.send(message)

    server = serve(handler or echo, "127.0.0.1", 0, **options).start()
    try:
        yield server
    finally:
        server.shutdown(timeout=5)


@contextlib.contextmanager
def websockets_server(**options: Any) -> Iterator[Any]:
    def echo(ws: Any) -> None:
        for message in ws:
            ws.send(message)

    server = websockets_serve(echo, "127.0.0.1", 0, **options)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        thread.join(10)


def opts(backend: Any, **more: Any) -> Any:
    more.setdefault("open_timeout", 5)
    more.setdefault("close_timeout", 2)
    more.setdefault("proxy", None)
    return dict(backend=backend.name, **more)


# -- talking ----------------------------------------------------------------------------------


def test_echo_with_wsframe_server(backend: Any) -> None:
    with wsframe_server(backend=backend.name) as server:
        with connect(f"ws://127.0.0.1:{server.port}/room?x=1", **opts(backend)) as ws:
            assert ws.request is not None and ws.request.target == "/room?x=1"
            for message in ("hello", "", "é" * 1000, b"", b"\x00" * 70000, b"x" * (2**20 - 100)):
                ws.send(message)
                assert ws.recv(timeout=5) == message
            ws.send_fragments(["a", "b", "c"])
            assert ws.recv(timeout=5) == "abc"
            assert ws.ping().wait(5)
        assert ws.close_code == 1000


def test_against_websockets_server_with_subprotocol(backend: Any) -> None:
    with websockets_server(subprotocols=["v2", "v1"]) as server:
        port = server.socket.getsockname()[1]
        with connect(f"ws://127.0.0.1:{port}/", **opts(backend, subprotocols=["v1", "v2"])) as ws:
            assert ws.subprotocol == "v2"
            assert ws.response_headers is not None and ws.response_headers["Sec-WebSocket-Protocol"] == "v2"
            ws.send(b"binary")
            assert ws.recv(timeout=5) == b"binary"
            ws.close(4000, "custom")
        assert ws.close_code == 4000 and ws.close_reason == "custom"


def test_headers_origin_and_user_agent_are_sent(backend: Any) -> None:
    seen: List[Any] = []

    def handler(ws: Any) -> None:
        seen.append(ws.request_headers)

    with wsframe_server(handler, backend=backend.name) as server:
        url = f"ws://127.0.0.1:{server.port}/"
        with connect(url, **opts(backend, additional_headers={"X-Trace": "7"}, origin="https://app.example")):
            pass
        with connect(url, **opts(backend, user_agent=None)):
            pass
    assert seen[0]["X-Trace"] == "7" and seen[0]["Origin"] == "https://app.example"
    assert seen[0]["User-Agent"].startswith(f"wsframe/{wsframe.__version__} Python/")
    assert "User-Agent" not in seen[1]


def test_sends_from_many_threads_never_interleave(backend: Any) -> None:
    with wsframe_server(backend=backend.name) as server:
        with connect(f"ws://127.0.0.1:{server.port}/", **opts(backend)) as ws:
            def sender(tag: str) -> None:
                for i in range(50):
                    ws.send(f"{tag}-{i}-" + "x" * 3000)

            threads = [threading.Thread(target=sender, args=(t,)) for t in "abcd"]
            for t in threads:
                t.start()
            got = [ws.recv(timeout=5) for _ in range(200)]
            for t in threads:
                t.join(5)
    assert sorted(got) == sorted(f"{t}-{i}-" + "x" * 3000 for t in "abcd" for i in range(50))


def test_recv_timeout_and_keepalive_without_a_thread_per_client(backend: Any) -> None:
    with wsframe_server(backend=backend.name) as server:
        before = threading.active_count()
        clients = [connect(f"ws://127.0.0.1:{server.port}/", **opts(backend, ping_interval=0.2)) for _ in range(5)]
        try:
            with pytest.raises(TimeoutError):
                clients[0].recv(timeout=0.1)
            time.sleep(0.6)  # keepalive pings go out and are answered
            assert all(c.open for c in clients)
            # the server's threads (one per connection) and at most one shared maintenance thread
            assert threading.active_count() <= before + 5 + 1
        finally:
            for c in clients:
                c.close()


# -- handshake failures ----------------------------------------------------------------------------


def test_an_http_error_carries_status_headers_and_body(backend: Any) -> None:
    refuse = Refuse(403, [("X-Why", "banned")], "go away\n")
    with wsframe_server(backend=backend.name, process_upgrade=lambda r: refuse) as server:
        with pytest.raises(InvalidStatus) as info:
            connect(f"ws://127.0.0.1:{server.port}/", **opts(backend))
    err = info.value
    assert err.status == 403 and err.response.headers["X-Why"] == "banned" and err.body == b"go away\n"


@contextlib.contextmanager
def fake_server(answer: Any) -> Iterator[int]:
    """A raw TCP server that answers one handshake with ``answer(request_key)``."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    listener.settimeout(5)

    def run() -> None:
        with contextlib.suppress(OSError):
            conn, _ = listener.accept()
            with conn:
                reader = hs.HeadReader()
                while not reader.feed(conn.recv(4096)):
                    pass
                request = hs.parse_request(reader)
                conn.sendall(answer(request.key))
                time.sleep(0.5)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()
        thread.join(5)


def _response(accept: str, extra: str = "") -> bytes:
    return (f"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept}\r\n{extra}\r\n").encode()


@pytest.mark.parametrize("case", ["bad accept", "subprotocol", "extension"])
def test_an_invalid_101_raises_invalid_handshake(backend: Any, case: str) -> None:
    def answer(key: str) -> bytes:
        if case == "bad accept":
            return _response("AAAAAAAAAAAAAAAAAAAAAAAAAAA=")
        extra = "Sec-WebSocket-Protocol: chat\r\n" if case == "subprotocol" else "Sec-WebSocket-Extensions: x-zip\r\n"
        return _response(hs.accept_key(key), extra)

    with fake_server(answer) as port:
        with pytest.raises(InvalidHandshake):
            connect(f"ws://127.0.0.1:{port}/", **opts(backend))


def test_a_server_that_never_answers_times_out(backend: Any) -> None:
    with fake_server(lambda key: b"") as port:
        started = time.monotonic()
        with pytest.raises(TimeoutError, match="opening handshake"):
            connect(f"ws://127.0.0.1:{port}/", **opts(backend, open_timeout=0.5))
        assert time.monotonic() - started < 2.0


def test_refused_and_unresolvable_say_where_and_when(backend: Any) -> None:
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()
    with pytest.raises(ConnectionRefusedError, match=f"127.0.0.1:{port}"):
        connect(f"ws://127.0.0.1:{port}/", **opts(backend))
    with pytest.raises(socket.gaierror, match="no-such-host.invalid"):
        connect("ws://no-such-host.invalid/", **opts(backend))


@pytest.mark.parametrize("uri", ["http://example.com/", "ws://", "ws://host/#frag", "wss://[::1/"])
def test_invalid_uris(uri: str) -> None:
    with pytest.raises(InvalidURI):
        connect(uri, proxy=None)


def test_the_next_address_is_tried_when_one_fails(backend: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A name with several addresses: a refused one is skipped within open_timeout."""
    with wsframe_server(backend=backend.name) as server:
        dead = socket.socket()
        dead.bind(("127.0.0.2", 0))  # bound, not listening: refuses
        real_getaddrinfo = socket.getaddrinfo

        def two_addresses(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            if host == "multi.test":
                return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.2", dead.getsockname()[1])),
                        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", server.port))]
            return real_getaddrinfo(host, port, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", two_addresses)
        with connect(f"ws://multi.test:{server.port}/", **opts(backend)) as ws:
            ws.send("second address")
            assert ws.recv(timeout=5) == "second address"
        dead.close()


# -- where to connect --------------------------------------------------------------------------------


def test_ipv6_literal(backend: Any) -> None:
    try:
        server = serve(lambda ws: ws.send(ws.request_headers["Host"]), "::1", 0, backend=backend.name).start()
    except OSError:
        pytest.skip("no IPv6 loopback")
    try:
        with connect(f"ws://[::1]:{server.port}/", **opts(backend)) as ws:
            assert ws.recv(timeout=5) == f"[::1]:{server.port}"
    finally:
        server.shutdown(timeout=5)


def test_unix_path_and_sock(backend: Any, tmp_path: Path) -> None:
    path = str(tmp_path / "s.sock")
    server = serve(lambda ws: [ws.send(m) for m in ws], path=path, backend=backend.name).start()
    try:
        with connect("ws://localhost/", unix_path=path, **opts(backend)) as ws:
            ws.send("unix")
            assert ws.recv(timeout=5) == "unix"
        raw = socket.socket(socket.AF_UNIX)
        raw.connect(path)
        with connect("ws://localhost/", sock=raw, **opts(backend)) as ws:
            ws.send("given socket")
            assert ws.recv(timeout=5) == "given socket"
    finally:
        server.shutdown(timeout=5)


# -- redirects -----------------------------------------------------------------------------------------


def test_redirects_are_followed_up_to_the_limit(backend: Any) -> None:
    with wsframe_server(backend=backend.name) as target:
        location = f"ws://127.0.0.1:{target.port}/final"
        with wsframe_server(backend=backend.name, process_upgrade=lambda r: Refuse(307, [("Location", location)])) as hop:
            with connect(f"ws://127.0.0.1:{hop.port}/start", **opts(backend)) as ws:
                assert ws.request is not None and ws.request.target == "/final"
                ws.send("arrived")
                assert ws.recv(timeout=5) == "arrived"

    def loop(request: Any) -> Refuse:
        return Refuse(302, [("Location", "/again")])

    with wsframe_server(backend=backend.name, process_upgrade=loop) as looping:
        with pytest.raises(InvalidHandshake, match="redirects"):
            connect(f"ws://127.0.0.1:{looping.port}/", **opts(backend, max_redirects=3))


def test_wss_verifies_by_default_and_trusts_a_given_context(backend: Any, certificate: Any) -> None:
    cert, key = certificate
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    client_context = ssl.create_default_context(cafile=str(cert))
    with wsframe_server(backend=backend.name, ssl=server_context) as server:
        with pytest.raises(ssl.SSLCertVerificationError):
            connect(f"wss://127.0.0.1:{server.port}/", **opts(backend))
        with connect(f"wss://127.0.0.1:{server.port}/", **opts(backend, ssl=client_context)) as ws:
            ws.send(b"\x01" * 100000)
            assert ws.recv(timeout=5) == b"\x01" * 100000
        with connect(f"wss://127.0.0.1:{server.port}/", server_hostname="localhost",
                     **opts(backend, ssl=client_context)) as ws:
            ws.send("by name")
            assert ws.recv(timeout=5) == "by name"
        # a redirect from wss:// down to ws:// is refused
        with wsframe_server(backend=backend.name, ssl=server_context,
                            process_upgrade=lambda r: Refuse(302, [("Location", "ws://127.0.0.1:1/")])) as hop:
            with pytest.raises(InvalidURI, match="down"):
                connect(f"wss://127.0.0.1:{hop.port}/", **opts(backend, ssl=client_context))


# -- proxies (real ones, on loopback) -------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port}")


@pytest.fixture(scope="module")
def tinyproxy(tmp_path_factory: Any) -> Iterator[Tuple[int, str]]:
    exe = shutil.which("tinyproxy") or ("/usr/bin/tinyproxy" if os.path.exists("/usr/bin/tinyproxy") else None)
    if exe is None:
        pytest.skip("tinyproxy is not installed (apt-get install tinyproxy)")
    folder = tmp_path_factory.mktemp("tinyproxy")
    port = _free_port()
    conf = folder / "tinyproxy.conf"
    conf.write_text(
        f"Port {port}\nListen 127.0.0.1\nTimeout 30\nMaxClients 20\nAllow 127.0.0.1\n"
        f"BasicAuth user s3cret\nLogLevel Info\nLogFile \"{folder}/log\"\n"
        f"PidFile \"{folder}/pid\"\n"
    )
    process = subprocess.Popen([exe, "-d", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_port(port)
        yield port, str(folder / "log")
    finally:
        stop_process(process)


def test_http_connect_proxy_with_basic_auth(backend: Any, tinyproxy: Any) -> None:
    port, log = tinyproxy
    with wsframe_server(backend=backend.name) as server:
        url = f"ws://127.0.0.1:{server.port}/"
        with connect(url, **opts(backend, proxy=f"http://user:s3cret@127.0.0.1:{port}")) as ws:
            ws.send("through the proxy")
            assert ws.recv(timeout=5) == "through the proxy"
        with pytest.raises(wsframe.ProxyError, match="refused CONNECT .*: 40[17]"):
            connect(url, **opts(backend, proxy=f"http://user:wrong@127.0.0.1:{port}"))
    assert "CONNECT" in Path(log).read_text(errors="replace")


def test_proxy_from_the_environment_and_no_proxy(backend: Any, tinyproxy: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    port, _ = tinyproxy
    monkeypatch.setenv("http_proxy", f"http://user:wrong@127.0.0.1:{port}")
    with wsframe_server(backend=backend.name) as server:
        url = f"ws://127.0.0.1:{server.port}/"
        with pytest.raises(wsframe.ProxyError):  # the environment's proxy was used (and refused us)
            connect(url, **opts(backend, proxy=True))
        monkeypatch.setenv("no_proxy", "127.0.0.1")
        with connect(url, **opts(backend, proxy=True)) as ws:  # exempt: direct
            ws.send("direct")
            assert ws.recv(timeout=5) == "direct"
        monkeypatch.delenv("no_proxy")
        with connect(url, **opts(backend, proxy=None)) as ws:  # disabled
            ws.send("direct again")
            assert ws.recv(timeout=5) == "direct again"


@pytest.fixture(scope="module")
def microsocks() -> Iterator[int]:
    exe = shutil.which("microsocks") or ("/usr/bin/microsocks" if os.path.exists("/usr/bin/microsocks") else None)
    if exe is None:
        pytest.skip("microsocks is not installed (apt-get install microsocks)")
    pytest.importorskip("python_socks")
    port = _free_port()
    process = subprocess.Popen([exe, "-i", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        _wait_port(port)
        yield port
    finally:
        stop_process(process)


@pytest.mark.parametrize("scheme", ["socks5", "socks5h"])
def test_socks5_proxy(backend: Any, microsocks: int, scheme: str) -> None:
    with wsframe_server(backend=backend.name) as server:
        for host in ("127.0.0.1", "localhost"):  # an address, and a name the proxy resolves
            with connect(f"ws://{host}:{server.port}/", **opts(backend, proxy=f"{scheme}://127.0.0.1:{microsocks}")) as ws:
                ws.send(b"socks")
                assert ws.recv(timeout=5) == b"socks"


def test_proxy_for_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    plain, secure = client_module.parse_uri("ws://a.example/"), client_module.parse_uri("wss://a.example/")
    assert client_module.proxy_for(plain, True) is None
    monkeypatch.setenv("https_proxy", "http://p:1")
    monkeypatch.setenv("all_proxy", "socks5://q:2")
    assert client_module.proxy_for(secure, True) == "http://p:1"
    assert client_module.proxy_for(plain, True) == "socks5://q:2"
    monkeypatch.setenv("no_proxy", ".example")
    assert client_module.proxy_for(plain, True) is None
    assert client_module.proxy_for(plain, "http://explicit:3") == "http://explicit:3"
    assert client_module.proxy_for(plain, None) is None


# -- review fixes: the opening as a whole, credentials across redirects, no leaked sockets ----------------


@contextlib.contextmanager
def raw_server(handle: Any, family: int = socket.AF_INET, address: Any = ("127.0.0.1", 0)) -> Iterator[Any]:
    """A listener that runs ``handle(conn, n)`` on a thread for its n-th connection (0, 1, ...); yields its address."""
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.bind(address)
    listener.listen(16)
    listener.settimeout(0.2)
    stop = threading.Event()
    threads: List[threading.Thread] = []

    def serve_one(conn: socket.socket, n: int) -> None:
        with conn, contextlib.suppress(OSError):
            conn.settimeout(5)
            handle(conn, n)

    def accept_loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            thread = threading.Thread(target=serve_one, args=(conn, len(threads)), daemon=True)
            threads.append(thread)
            thread.start()

    acceptor = threading.Thread(target=accept_loop, daemon=True)
    acceptor.start()
    try:
        yield listener.getsockname()
    finally:
        stop.set()
        acceptor.join(5)
        listener.close()
        for thread in threads:
            thread.join(5)


def read_head(conn: socket.socket) -> bytes:
    """The bytes up to the end of an HTTP head (a CONNECT request, an upgrade request)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            raise EOFError
        data += chunk
    return data


def tunnel_with(status_line: bytes) -> Any:
    """A CONNECT proxy's connection handler that answers ``status_line``, then relays bytes both ways."""
    def handle(conn: socket.socket, n: int) -> None:
        authority = read_head(conn).split(b" ")[1].decode()
        host, port = authority.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=5) as upstream:
            conn.sendall(status_line + b"\r\n\r\n")

            def pump(src: socket.socket, dst: socket.socket) -> None:
                with contextlib.suppress(OSError):
                    while True:
                        data = src.recv(65536)
                        if not data:
                            break
                        dst.sendall(data)
                with contextlib.suppress(OSError):
                    dst.shutdown(socket.SHUT_WR)

            back = threading.Thread(target=pump, args=(upstream, conn), daemon=True)
            back.start()
            pump(conn, upstream)
            back.join(5)
    return handle


def test_a_dribbling_proxy_cannot_stretch_open_timeout(backend: Any) -> None:
    """One byte every 50 ms keeps each recv short; open_timeout still bounds the whole CONNECT exchange."""
    def dribble(conn: socket.socket, n: int) -> None:
        read_head(conn)
        for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"x" * 40:
            conn.sendall(bytes([byte]))
            time.sleep(0.05)

    with raw_server(dribble) as (host, port):
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            connect("ws://127.0.0.1:9/", **opts(backend, proxy=f"http://{host}:{port}", open_timeout=0.5))
        assert time.monotonic() - started < 1.0


@pytest.mark.parametrize("status_line", [b"HTTP/1.1 200 Connection established", b"HTTP/1.1 204 No Content",
                                         b"HTTP/1.0 299 Fine"])
def test_any_2xx_answer_to_connect_opens_the_tunnel(backend: Any, status_line: bytes) -> None:
    with wsframe_server(backend=backend.name) as server, raw_server(tunnel_with(status_line)) as (host, port):
        with connect(f"ws://127.0.0.1:{server.port}/", **opts(backend, proxy=f"http://{host}:{port}")) as ws:
            ws.send("tunnelled")
            assert ws.recv(timeout=5) == "tunnelled"


def test_the_dns_lookup_is_bounded_by_open_timeout(backend: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    real_getaddrinfo = socket.getaddrinfo

    def slow(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "slow.test":
            time.sleep(2)
        return real_getaddrinfo("127.0.0.1" if host == "slow.test" else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", slow)
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="slow.test"):
        connect("ws://slow.test:9/", **opts(backend, open_timeout=0.3))
    assert time.monotonic() - started < 1.0


def test_open_timeout_spans_all_redirects(backend: Any) -> None:
    """A first hop that takes 0.6 s to redirect leaves the second hop only what remains of the 1 s."""
    def hops(conn: socket.socket, n: int) -> None:
        read_head(conn)
        if n == 0:
            time.sleep(0.6)
            conn.sendall(b"HTTP/1.1 302 Found\r\nLocation: /next\r\nContent-Length: 0\r\n\r\n")
        time.sleep(2.5)  # the second hop never answers

    with raw_server(hops) as (host, port):
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            connect(f"ws://{host}:{port}/", **opts(backend, open_timeout=1.0))
        assert time.monotonic() - started < 1.35


def _recording_server(backend: Any, seen: List[Any], redirects: Any) -> Any:
    """A server that answers requests for paths in ``redirects`` with a 302 there, and records the others' headers."""
    def upgrade(request: Any) -> Any:
        location = redirects.get(request.target)
        return Refuse(302, [("Location", location)]) if location else None

    def handler(ws: Any) -> None:
        seen.append((ws.path, ws.request_headers))

    return wsframe_server(handler, backend=backend.name, process_upgrade=upgrade)


def test_uri_user_info_is_sent_as_basic_authorization(backend: Any) -> None:
    seen: List[Any] = []
    with _recording_server(backend, seen, {}) as server:
        with connect(f"ws://user:p%40ss:x@127.0.0.1:{server.port}/", **opts(backend)):
            pass
        with connect(f"ws://user:pw@127.0.0.1:{server.port}/",
                     **opts(backend, additional_headers={"authorization": "Bearer explicit"})):
            pass
    assert seen[0][1].get_all("Authorization") == ["Basic dXNlcjpwQHNzOng="]  # base64 of user:p@ss:x
    assert seen[1][1].get_all("Authorization") == ["Bearer explicit"]


def test_credentials_follow_redirects_only_within_the_origin(backend: Any) -> None:
    """Same scheme, host and port: the URI's user info and the credential headers go on; elsewhere they are dropped."""
    seen: List[Any] = []
    secret = {"Authorization": "Bearer t0ken", "Cookie": "session=1", "Proxy-Authorization": "Basic eA==",
              "X-Trace": "7"}
    with _recording_server(backend, seen, {}) as other:
        away = f"ws://127.0.0.1:{other.port}/elsewhere"
        with _recording_server(backend, seen, {"/same": "/landed", "/cross": away}) as server:
            with connect(f"ws://127.0.0.1:{server.port}/same", **opts(backend, additional_headers=secret)):
                pass
            with connect(f"ws://127.0.0.1:{server.port}/cross", **opts(backend, additional_headers=secret)):
                pass
            with connect(f"ws://u:pw@127.0.0.1:{server.port}/same", **opts(backend)):
                pass
            with connect(f"ws://u:pw@127.0.0.1:{server.port}/cross", **opts(backend)):
                pass
    (path0, same), (path1, cross), (path2, same_info), (path3, cross_info) = seen
    assert (path0, path1, path2, path3) == ("/landed", "/elsewhere", "/landed", "/elsewhere")
    assert [same.get(name) for name in secret] == list(secret.values())
    assert [cross.get(name) for name in secret] == [None, None, None, "7"]
    assert same_info.get("Authorization") == "Basic dTpwdw=="  # base64 of u:pw
    assert cross_info.get("Authorization") is None


def test_a_unix_socket_is_not_reused_for_another_origin(backend: Any, tmp_path: Path) -> None:
    """As websockets does: a redirect within the origin stays on the Unix socket, one elsewhere is refused."""
    path = str(tmp_path / "r.sock")
    redirects = {"/here": "/landed", "/away": "ws://127.0.0.1:9/"}

    def upgrade(request: Any) -> Any:
        location = redirects.get(request.target)
        return Refuse(302, [("Location", location)]) if location else None

    server = serve(lambda ws: ws.send(ws.path), path=path, backend=backend.name, process_upgrade=upgrade).start()
    try:
        with connect("ws://localhost/here", unix_path=path, **opts(backend)) as ws:
            assert ws.recv(timeout=5) == "/landed"
        with pytest.raises(InvalidURI, match="Unix socket"):
            connect("ws://localhost/away", unix_path=path, **opts(backend))
    finally:
        server.shutdown(timeout=5)


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors in /proc/self/fd")
@pytest.mark.parametrize("via", ["tcp", "unix", "proxy"])
def test_no_socket_is_left_open_when_opening_fails(backend: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                   via: str) -> None:
    """Every socket made is closed on every failure path, here when the WebSocket itself cannot be made.

    A dropped socket would be closed by the garbage collector with a
    ResourceWarning: none may appear, and the descriptor count comes back.
    """
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("injected")

    path = str(tmp_path / "l.sock")
    with contextlib.ExitStack() as stack:
        if via == "unix":
            server = serve(lambda ws: None, path=path, backend=backend.name).start()
            stack.callback(server.shutdown, timeout=5)
            kwargs: Any = {"unix_path": path}
        else:
            server = stack.enter_context(wsframe_server(backend=backend.name))
            kwargs = {}
        if via == "proxy":
            host, port = stack.enter_context(raw_server(tunnel_with(b"HTTP/1.1 200 OK")))
            kwargs["proxy"] = f"http://{host}:{port}"
        uri = f"ws://127.0.0.1:{getattr(server, 'port', 80)}/"
        with connect(uri, **{**opts(backend), **kwargs}):  # once for real first: the maintenance threads start
            pass
        monkeypatch.setattr(client_module, "WebSocket", broken)
        before = _open_fds()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            for _ in range(30):
                with pytest.raises(RuntimeError, match="injected"):
                    connect(uri, **{**opts(backend), **kwargs})
            gc.collect()
        assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []
        # server-side sockets close on their own threads: wait for them
        assert wait_for(lambda: _open_fds() <= before + 2, timeout=5), (before, _open_fds())


# -- review fixes, second round: server_hostname across origins, SOCKS within open_timeout ---------------


def test_server_hostname_is_not_carried_to_another_origin(backend: Any, certificate: Any) -> None:
    """As websockets refuses a cross-origin redirect when the address is overridden: TLS would check the new host
    against a name given for the old one. Within the origin the redirect is still followed."""
    cert, key = certificate
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    client_context = ssl.create_default_context(cafile=str(cert))
    with wsframe_server(lambda ws: ws.send(ws.path), backend=backend.name, ssl=server_context) as other:
        away = f"wss://127.0.0.1:{other.port}/elsewhere"
        redirects = {"/same": "/landed", "/cross": away}

        def upgrade(request: Any) -> Any:
            location = redirects.get(request.target)
            return Refuse(302, [("Location", location)]) if location else None

        with wsframe_server(lambda ws: ws.send(ws.path), backend=backend.name, ssl=server_context,
                            process_upgrade=upgrade) as hop:
            with connect(f"wss://127.0.0.1:{hop.port}/same", server_hostname="localhost",
                         **opts(backend, ssl=client_context)) as ws:
                assert ws.recv(timeout=5) == "/landed"
            with pytest.raises(InvalidURI, match="another origin.*server_hostname='localhost'"):
                connect(f"wss://127.0.0.1:{hop.port}/cross", server_hostname="localhost",
                        **opts(backend, ssl=client_context))
            with connect(f"wss://127.0.0.1:{hop.port}/cross", **opts(backend, ssl=client_context)) as ws:
                assert ws.recv(timeout=5) == "/elsewhere"  # without the override it is followed


def test_a_dribbling_socks_proxy_cannot_stretch_open_timeout(backend: Any) -> None:
    """A SOCKS5 proxy answering one byte per 100 ms: each recv is short, the 1.2 s exchange is not."""
    def dribble(conn: socket.socket, n: int) -> None:
        conn.recv(64)  # the greeting: 05 01 00
        for byte in b"\x05\x00":
            conn.sendall(bytes([byte]))
            time.sleep(0.1)
        conn.recv(512)  # the CONNECT request
        for byte in b"\x05\x00\x00\x01\x7f\x00\x00\x01\x00\x09":
            conn.sendall(bytes([byte]))
            time.sleep(0.1)
        time.sleep(1)

    pytest.importorskip("python_socks")
    with raw_server(dribble) as (host, port):
        started = time.monotonic()
        with pytest.raises(TimeoutError, match=f"SOCKS proxy {host}:{port}"):
            connect("ws://127.0.0.1:9/", **opts(backend, proxy=f"socks5://{host}:{port}", open_timeout=0.5))
        assert time.monotonic() - started < 1.0


def test_the_socks_proxy_name_lookup_is_bounded_by_open_timeout(backend: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("python_socks")
    real_getaddrinfo = socket.getaddrinfo

    def slow(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host in ("slow-proxy.test", "slow-target.test"):
            time.sleep(2)
            host = "127.0.0.1"
        return real_getaddrinfo(host, *args, **kwargs)

    def silent(conn: socket.socket, n: int) -> None:
        conn.recv(64)
        conn.sendall(b"\x00\x5a\x00\x00\x00\x00\x00\x00")  # a SOCKS4 grant, should it get that far
        time.sleep(1)

    monkeypatch.setattr(socket, "getaddrinfo", slow)
    with raw_server(silent) as (host, port):
        for proxy, uri, name in [("socks5://slow-proxy.test:1080", "ws://127.0.0.1:9/", "slow-proxy.test"),
                                 (f"socks4://{host}:{port}", "ws://slow-target.test:9/", "slow-target.test")]:
            started = time.monotonic()
            with pytest.raises(TimeoutError, match=name):
                connect(uri, **opts(backend, proxy=proxy, open_timeout=0.3))
            assert time.monotonic() - started < 1.0, proxy


def test_running_out_between_redirect_hops_says_where(backend: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The next hop's socket connects, but no time is left for its handshake: the error names the stage and address."""
    real_open_socket = client_module.open_socket
    calls: List[Any] = []

    def slow_second(target: Any, *args: Any, **kwargs: Any) -> Any:
        sock = real_open_socket(target, *args, **kwargs)
        calls.append(target)
        if len(calls) == 2:
            time.sleep(0.6)  # past open_timeout, after the connection is made
        return sock

    monkeypatch.setattr(client_module, "open_socket", slow_second)
    with wsframe_server(backend=backend.name, process_upgrade=lambda r: Refuse(302, [("Location", "/next")])
                        if r.target == "/start" else None) as server:
        with pytest.raises(TimeoutError) as info:
            connect(f"ws://127.0.0.1:{server.port}/start", **opts(backend, open_timeout=0.5))
    assert len(calls) == 2
    message = str(info.value)
    assert "opening handshake" in message and f"ws://127.0.0.1:{server.port}/next" in message, message
    assert f"at 127.0.0.1:{server.port}" in message, message
