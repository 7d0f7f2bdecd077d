"""What users of serve() asked for: checked options, upgrade hooks, where to listen, the CLI; both backends."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator, List, Optional, Sequence

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect, unix_connect

import wsframe
from wsframe import Accept, EventHandler, Options, Refuse, serve
from wsframe.options import option_docs

README = Path(__file__).resolve().parent.parent / "README.md"


@contextlib.contextmanager
def running(handler: Any, backend: Any, host: Optional[str] = "127.0.0.1", **options: Any) -> Iterator[Any]:
    server = serve(handler, host, 0, backend=backend.name, **options).start()
    try:
        yield server
    finally:
        server.shutdown(timeout=5)


def echo(ws: Any) -> None:
    for message in ws:
        ws.send(message)


def url(server: Any, path: str = "/") -> str:
    return f"ws://127.0.0.1:{server.port}{path}"


# -- options: one frozen value, checked at serve() ------------------------------------------


@pytest.mark.parametrize(
    "options,error",
    [
        ({"write_limit": -1}, ValueError),
        ({"max_message_size": -5}, ValueError),
        ({"max_message_size": "1024"}, TypeError),
        ({"max_fragments": 1.5}, TypeError),
        ({"ping_interval": 0}, ValueError),
        ({"close_timeout": float("nan")}, ValueError),
        ({"open_timeout": "10"}, TypeError),
        ({"max_connections": 0}, ValueError),
        ({"ssl": object()}, TypeError),
        ({"subprotocols": "chat"}, TypeError),
        ({"origins": "https://example.com"}, TypeError),
        ({"process_upgrade": 42}, TypeError),
        ({"batch_writes": "yes"}, TypeError),
        ({"backend": "rust"}, ValueError),
        ({"no_such_option": 1}, TypeError),
    ],
)
def test_invalid_options_fail_at_serve_time(options: Any, error: type) -> None:
    with pytest.raises(error):
        serve(echo, "127.0.0.1", 0, **options)


def test_an_unknown_option_lists_the_known_ones() -> None:
    with pytest.raises(TypeError, match="max_message_size"):
        serve(echo, "127.0.0.1", 0, max_size=10)


def test_options_are_frozen_and_normalised() -> None:
    options = Options(subprotocols=["a", "b"], origins=["https://x", None])
    assert options.subprotocols == ("a", "b") and options.origins == ("https://x", None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.write_limit = 1  # type: ignore[misc]


def test_the_readme_lists_every_option_with_its_default() -> None:
    if not README.exists():
        pytest.skip("README.md not beside the tests")
    text = README.read_text(encoding="utf-8")
    for name, default, _, _ in option_docs():
        assert f"`{name}`" in text, f"option {name} is not in the README"
        if isinstance(default, (int, float)) and not isinstance(default, bool) and default is not None:
            row = next(line for line in text.splitlines() if line.startswith(f"| `{name}`"))
            assert repr(default) in row or str(default) in row, row


def test_every_cli_flag_names_an_option() -> None:
    from wsframe import cli

    names = {name for name, *_ in option_docs()}
    flags = [flag for *_, flag in option_docs() if flag]
    help_text = cli._parser()._subparsers._group_actions[0].choices["serve"].format_help()  # type: ignore[union-attr]
    for flag in flags:
        assert flag in help_text, flag
    assert {"max_message_size", "backend"} <= names


# -- the upgrade hooks ------------------------------------------------------------------------


def test_process_upgrade_refuses_with_any_status_headers_and_body(backend: Any) -> None:
    def hook(request: Any) -> Any:
        if request.headers.get("Authorization") != "Bearer ok":
            return Refuse(401, [("WWW-Authenticate", 'Bearer realm="chat"')], "who are you?\n")
        return None

    with running(echo, backend, process_upgrade=hook) as server:
        with pytest.raises(InvalidStatus) as info:
            connect(url(server), open_timeout=5)
        response = info.value.response
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="chat"'
        assert response.body == b"who are you?\n"
        with connect(url(server), open_timeout=5, additional_headers={"Authorization": "Bearer ok"}) as client:
            client.send("in")
            assert client.recv(timeout=5) == "in"


def test_process_upgrade_redirects(backend: Any) -> None:
    import http.client

    with running(echo, backend, process_upgrade=lambda r: Refuse(302, [("Location", "/elsewhere")])) as server:
        http_conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        http_conn.request("GET", "/", headers={
            "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        })
        response = http_conn.getresponse()
        assert response.status == 302 and response.getheader("Location") == "/elsewhere"
        http_conn.close()


def test_process_upgrade_accepts_with_extra_headers(backend: Any) -> None:
    seen: List[str] = []

    def hook(request: Any) -> Accept:
        seen.append(request.path)
        return Accept([("X-Session", "42")])

    with running(echo, backend, process_upgrade=hook) as server:
        with connect(url(server, "/room"), open_timeout=5) as client:
            assert client.response is not None
            assert client.response.headers["X-Session"] == "42"
    assert seen == ["/room"]


@pytest.mark.parametrize("verdict", [Accept([("Sec-WebSocket-Accept", "forged")]), "nonsense"])
def test_a_broken_upgrade_hook_answers_500(backend: Any, verdict: Any) -> None:
    with running(echo, backend, process_upgrade=lambda r: verdict) as server:
        with pytest.raises(InvalidStatus) as info:
            connect(url(server), open_timeout=5)
        assert info.value.response.status_code == 500


def test_refuse_checks_its_status() -> None:
    with pytest.raises(ValueError):
        Refuse(101)
    with pytest.raises(ValueError):
        Refuse(99)


def test_select_subprotocol_chooses_among_the_offered(backend: Any) -> None:
    calls: List[Sequence[str]] = []

    def choose(request: Any, offered: Sequence[str]) -> Optional[str]:
        calls.append(list(offered))
        return offered[-1]

    def handler(ws: Any) -> None:
        ws.send(ws.subprotocol or "none")

    with running(handler, backend, select_subprotocol=choose) as server:
        with connect(url(server), open_timeout=5, subprotocols=["v1", "v2"]) as client:  # type: ignore[list-item]
            assert client.subprotocol == "v2"
            assert client.recv(timeout=5) == "v2"
    assert calls == [["v1", "v2"]]


def test_select_subprotocol_returning_one_not_offered_answers_500(backend: Any) -> None:
    with running(echo, backend, select_subprotocol=lambda request, offered: "mine") as server:
        with pytest.raises(InvalidStatus) as info:
            connect(url(server), open_timeout=5, subprotocols=["v1"])  # type: ignore[list-item]
        assert info.value.response.status_code == 500


# -- handlers that cannot run in a thread -------------------------------------------------------


def test_async_handlers_are_refused_at_serve_time() -> None:
    async def handler(ws: Any) -> None:
        pass

    class Callable_:
        async def __call__(self, ws: Any) -> None:
            pass

    class Chat(EventHandler):
        async def on_message(self, message: Any) -> None:  # type: ignore[override]
            pass

    for bad in (handler, Callable_(), Chat):
        with pytest.raises(TypeError, match="async"):
            serve(bad, "127.0.0.1", 0)


# -- where to listen -----------------------------------------------------------------------------


def test_a_unix_domain_socket(backend: Any, tmp_path: Path) -> None:
    path = str(tmp_path / "ws.sock")
    server = serve(echo, path=path, backend=backend.name).start()
    try:
        assert server.server_address == path and server.port == 0
        with unix_connect(path, "ws://localhost/", open_timeout=5) as client:
            client.send(b"over unix")
            assert client.recv(timeout=5) == b"over unix"
    finally:
        server.shutdown(timeout=5)
    assert not os.path.exists(path)


def test_a_socket_bound_by_the_caller(backend: Any) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    port = sock.getsockname()[1]
    server = serve(echo, sock=sock, backend=backend.name).start()
    try:
        assert server.port == port
        with connect(f"ws://127.0.0.1:{port}/", open_timeout=5) as client:
            client.send("pre-bound")
            assert client.recv(timeout=5) == "pre-bound"
    finally:
        server.shutdown(timeout=5)


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback here")
def test_localhost_listens_on_ipv4_and_ipv6(backend: Any) -> None:
    with running(echo, backend, host="localhost") as server:
        families = sorted(s.family for s in server.sockets)
        assert families == sorted([socket.AF_INET, socket.AF_INET6])
        for host in ("127.0.0.1", "[::1]"):
            with connect(f"ws://{host}:{server.port}/", open_timeout=5) as client:
                client.send(host)
                assert client.recv(timeout=5) == host


def test_an_out_of_range_port_is_refused() -> None:
    with pytest.raises(ValueError, match="port"):
        serve(echo, "127.0.0.1", 70000)


# -- the command line --------------------------------------------------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    return subprocess.run([sys.executable, "-m", "wsframe", *args], capture_output=True, text=True, timeout=60)


def test_cli_version_names_the_backend() -> None:
    result = _cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"wsframe {wsframe.__version__} (backend {wsframe.BACKEND})"


def test_cli_checks_the_port() -> None:
    result = _cli("serve", "--port", "70000")
    assert result.returncode == 2 and "out of range" in result.stderr


def test_cli_names_a_missing_certificate_file(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.pem")
    result = _cli("serve", "--port", "0", "--certfile", missing)
    assert result.returncode == 2 and missing in result.stderr


def test_cli_explains_a_certificate_without_its_key(tmp_path: Path) -> None:
    cert = tmp_path / "cert.pem"
    made = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(tmp_path / "key.pem"),
         "-out", str(cert), "-days", "1", "-subj", "/CN=localhost"],
        capture_output=True, timeout=60,
    )
    if made.returncode != 0:
        pytest.skip("openssl cannot make a certificate here")
    result = _cli("serve", "--port", "0", "--certfile", str(cert))
    assert result.returncode == 2 and "--keyfile" in result.stderr
