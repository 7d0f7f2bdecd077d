"""``python -m wsframe connect``: the interactive client, driven through pipes against real servers, both backends."""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest

from wsframe import Refuse, serve
from wsframe import cli

TIMEOUT = 15  # every wait for the child is bounded by this


def _child_env() -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def command(backend: Any, uri: str, *more: str) -> List[str]:
    args = [sys.executable, "-m", "wsframe", "connect", uri, "--backend", backend.name, "--open-timeout", "5"]
    if "--proxy" not in more:
        args.append("--no-proxy")
    return args + list(more)


class Client:
    """The command in a subprocess with pipes; its output lines collected as they come."""

    def __init__(self, args: List[str]) -> None:
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=_child_env())
        self.lines: Dict[str, "queue.Queue[Optional[str]]"] = {"out": queue.Queue(), "err": queue.Queue()}
        self.seen: Dict[str, List[str]] = {"out": [], "err": []}
        self.pumps = [
            threading.Thread(target=self._pump, args=(self.proc.stdout, "out"), daemon=True),
            threading.Thread(target=self._pump, args=(self.proc.stderr, "err"), daemon=True),
        ]
        for pump in self.pumps:
            pump.start()

    def _pump(self, stream: Any, name: str) -> None:
        for raw in iter(stream.readline, b""):
            self.lines[name].put(raw.decode("utf-8").rstrip("\n"))
        self.lines[name].put(None)

    def expect(self, name: str, text: str, timeout: float = TIMEOUT) -> str:
        """The first new line of stdout ("out") or stderr ("err") that contains ``text``."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                line = self.lines[name].get(timeout=max(0.0, remaining))
            except queue.Empty:
                line = None
                remaining = 0
            if line is None:
                raise AssertionError(f"{text!r} not in std{name} ({'timeout' if remaining <= 0 else 'EOF'}): "
                                     f"{self.seen}")
            self.seen[name].append(line)
            if text in line:
                return line

    def type(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode("utf-8") + b"\n")
        self.proc.stdin.flush()

    def end_input(self) -> None:
        assert self.proc.stdin is not None
        if not self.proc.stdin.closed:
            self.proc.stdin.close()

    def wait(self, timeout: float = TIMEOUT) -> int:
        code = self.proc.wait(timeout)
        for pump in self.pumps:
            pump.join(timeout)
        for name in ("out", "err"):
            while True:
                try:
                    line = self.lines[name].get_nowait()
                except queue.Empty:
                    break
                if line is not None:
                    self.seen[name].append(line)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(TIMEOUT)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@contextlib.contextmanager
def client(args: List[str]) -> Iterator[Client]:
    c = Client(args)
    try:
        yield c
    finally:
        c.kill()


def run(args: List[str], stdin: bytes = b"") -> Tuple[int, str, str]:
    """The command with ``stdin`` piped in whole: (exit status, stdout, stderr)."""
    proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=_child_env())
    try:
        out, err = proc.communicate(stdin, timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=TIMEOUT)
    return proc.returncode, out.decode("utf-8"), err.decode("utf-8")


class Handler:
    """An echo handler that records what the server saw of each connection."""

    def __init__(self, welcome: Any = None) -> None:
        self.welcome = welcome
        self.done = threading.Event()
        self.close_codes: List[Optional[int]] = []
        self.headers: List[Any] = []
        self.subprotocols: List[Optional[str]] = []

    def __call__(self, ws: Any) -> None:
        try:
            self.headers.append(ws.request_headers)
            self.subprotocols.append(ws.subprotocol)
            if self.welcome is not None:
                ws.send(self.welcome)
            for message in ws:
                if message == "quit":
                    ws.close(4000, "asked to quit")
                    break
                ws.send(message)
            self.close_codes.append(ws.close_code)
        finally:
            self.done.set()


@contextlib.contextmanager
def server(handler: Any, backend: Any, **options: Any) -> Iterator[Any]:
    srv = serve(handler, "127.0.0.1", 0, backend=backend.name, **options).start()
    try:
        yield srv
    finally:
        srv.shutdown(timeout=5)


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- talking ----------------------------------------------------------------------------------


def test_lines_typed_come_back_and_end_of_input_closes_with_1000(backend: Any) -> None:
    handler = Handler()
    with server(handler, backend) as srv, client(command(backend, f"ws://127.0.0.1:{srv.port}/room")) as c:
        c.expect("err", f"connected to ws://127.0.0.1:{srv.port}/room")
        for line in ("hello", "été 🎉", "", "  spaces kept  "):
            c.type(line)
            assert c.expect("out", "<") == f"< {line}"
        c.end_input()  # Ctrl-D
        assert c.wait() == 0
        assert c.seen["err"][-1] == "connection closed: 1000 (normal closure)"
        assert handler.done.wait(5)
    assert handler.close_codes == [1000]  # the server saw a clean closing handshake


def test_binary_from_the_server_prints_a_summary(backend: Any) -> None:
    handler = Handler(welcome=bytes(range(256)) * 11 + bytes(184))  # 3000 bytes
    with server(handler, backend) as srv, client(command(backend, f"ws://127.0.0.1:{srv.port}/")) as c:
        assert c.expect("out", "binary") == (
            "< [binary 3000 bytes] 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f ...")
        c.type("after")
        c.expect("out", "< after")
        c.end_input()
        assert c.wait() == 0
    assert cli.format_message(b"") == "< [binary 0 bytes]"
    assert cli.format_message(b"\xff") == "< [binary 1 byte] ff"
    assert cli.format_message(bytes(16)) == "< [binary 16 bytes] " + " ".join(["00"] * 16)
    assert cli.format_message("a\x1b[2Jb\tc\nd", escape=True) == "< a\\x1b[2Jb\tc\nd"  # on a terminal
    assert cli.format_message("a\x1b[2Jb") == "< a\x1b[2Jb"  # piped: as it came


def test_server_shutdown_prints_1001_and_exits_0_without_waiting_for_input(backend: Any) -> None:
    with server(Handler(), backend) as srv, client(command(backend, f"ws://127.0.0.1:{srv.port}/")) as c:
        c.expect("err", "connected to")
        c.type("ping")
        c.expect("out", "< ping")
        srv.shutdown(timeout=5)
        # stdin stays open: the receiving thread wakes the main thread, which stops reading it
        c.expect("err", "connection closed: 1001 server shutting down")
        assert c.wait() == 0


def test_a_close_by_the_server_with_another_code_exits_1(backend: Any) -> None:
    with server(Handler(), backend) as srv, client(command(backend, f"ws://127.0.0.1:{srv.port}/")) as c:
        c.type("quit")
        c.expect("err", "connection closed: 4000 asked to quit")
        assert c.wait() == 1


@pytest.mark.skipif(os.name != "posix", reason="SIGINT to a child is POSIX")
def test_ctrl_c_closes_with_1000_and_exits_130(backend: Any) -> None:
    handler = Handler()
    with server(handler, backend) as srv, client(command(backend, f"ws://127.0.0.1:{srv.port}/")) as c:
        c.expect("err", "connected to")  # the signal handlers are installed by now
        c.type("before")
        c.expect("out", "< before")
        c.proc.send_signal(signal.SIGINT)
        assert c.wait() == 130
        assert "Traceback" not in "\n".join(c.seen["err"])
        assert c.seen["err"][-1] == "connection closed: 1000 (normal closure)"
        assert handler.done.wait(5)
    assert handler.close_codes == [1000]


def test_wait_prints_the_replies_to_piped_input(backend: Any) -> None:
    handler = Handler(welcome="welcome")
    with server(handler, backend) as srv:
        code, out, err = run(command(backend, f"ws://127.0.0.1:{srv.port}/", "--wait", "1"), b"one\r\ntwo\nthree")
        assert handler.done.wait(5)
    assert code == 0, err
    assert out.splitlines() == ["< welcome", "< one", "< two", "< three"]  # CRLF and a last line without EOL
    assert handler.close_codes == [1000]


# -- options ----------------------------------------------------------------------------------


def test_headers_and_origin_arrive_at_the_server(backend: Any) -> None:
    handler = Handler()
    with server(handler, backend) as srv:
        code, _, err = run(command(backend, f"127.0.0.1:{srv.port}/",  # no scheme: ws://
                                   "--header", "X-Trace: 7", "--header", "Authorization:Bearer s3cret",
                                   "--origin", "https://app.example"))
        assert handler.done.wait(5)
        assert code == 0, err
        code, _, err = run(command(backend, f"ws://127.0.0.1:{srv.port}/", "--header", "Sec-WebSocket-Key: mine"))
        assert code == 1 and one_line(err) == ("wsframe: Sec-WebSocket-Key is reserved for the handshake: "
                                               "it cannot be an extra header")
    headers = handler.headers[0]
    assert headers["X-Trace"] == "7" and headers["Authorization"] == "Bearer s3cret"
    assert headers["Origin"] == "https://app.example"


def test_subprotocol_is_negotiated(backend: Any) -> None:
    handler = Handler()
    with server(handler, backend, subprotocols=["chat"]) as srv:
        code, _, err = run(command(backend, f"ws://127.0.0.1:{srv.port}/", "--subprotocol", "superchat",
                                   "--subprotocol", "chat"))
        assert code == 0, err
        assert f"connected to ws://127.0.0.1:{srv.port}/ (subprotocol chat)" in err
        code, _, err = run(command(backend, f"ws://127.0.0.1:{srv.port}/", "--subprotocol", "other"))
        assert code == 0 and "the server chose no subprotocol" in err, err
    assert handler.subprotocols == ["chat", None]


def test_insecure_talks_to_a_self_signed_server_and_is_needed(backend: Any, certificate: Any) -> None:
    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    with server(Handler(), backend, ssl=context) as srv:
        uri = f"wss://127.0.0.1:{srv.port}/"
        code, out, err = run(command(backend, uri), b"secret\n")
        assert code == 1 and out == ""
        line = one_line(err)
        assert "certificate verification failed" in line and "--insecure" in line, line

        with client(command(backend, uri, "--insecure")) as c:
            assert "NOT verified" in c.expect("err", "warning")
            c.expect("err", f"connected to {uri}")
            c.type("secret")
            c.expect("out", "< secret")
            c.end_input()
            assert c.wait() == 0

        code, _, err = run(command(backend, f"ws://127.0.0.1:{srv.port}/"))  # plain HTTP to a TLS port
        assert code == 1 and "is it a wss:// server?" in one_line(err)


# -- errors: one line, exit status 1 ------------------------------------------------------------


def test_a_refused_port_is_one_line_and_exit_1(backend: Any) -> None:
    port = _free_port()
    code, out, err = run(command(backend, f"ws://127.0.0.1:{port}/"), b"never sent\n")
    assert code == 1 and out == ""
    line = one_line(err)
    assert line.startswith("wsframe: cannot connect to 127.0.0.1:") and "refused" in line.lower(), line


def test_a_refused_upgrade_names_the_http_status(backend: Any) -> None:
    def refuse(request: Any) -> Refuse:
        return Refuse(403, [], "no entry here\n")

    with server(Handler(), backend, process_upgrade=refuse) as srv:
        code, _, err = run(command(backend, f"ws://127.0.0.1:{srv.port}/"))
    assert code == 1
    assert one_line(err) == f"wsframe: 127.0.0.1:{srv.port} refused the WebSocket upgrade: HTTP 403 Forbidden (no entry here)"


def test_a_proxy_that_cannot_be_reached_is_one_line(backend: Any) -> None:
    port = _free_port()
    code, _, err = run(command(backend, "ws://127.0.0.1:9/", "--proxy", f"http://127.0.0.1:{port}"))
    assert code == 1
    assert "proxy 127.0.0.1" in one_line(err)


def test_error_lines_for_what_loopback_cannot_produce() -> None:
    uri = "wss://nowhere.invalid:8443/"
    dns = socket.gaierror(-2, "cannot resolve 'nowhere.invalid' (connect): Name or service not known")
    assert cli.describe_error(dns, uri) == "cannot resolve 'nowhere.invalid' (connect): Name or service not known"
    assert cli.describe_error(TimeoutError("opening handshake with x timed out"), uri) == \
        "opening handshake with x timed out"
    assert cli.describe_error(TimeoutError(), uri) == "timed out connecting to nowhere.invalid:8443"
    assert cli.describe_error(ConnectionResetError(104, "Connection reset by peer"), uri) == \
        "cannot connect to nowhere.invalid:8443: Connection reset by peer"
    wrong = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")
    wrong.reason = "WRONG_VERSION_NUMBER"  # type: ignore[misc]
    assert "is it a ws:// server?" in cli.describe_error(wrong, uri)


def test_usage_errors_exit_2_before_connecting() -> None:
    for bad in (["http://127.0.0.1:1/"], ["ws://127.0.0.1:1/", "--header", "no colon"],
                ["ws://127.0.0.1:1/", "--proxy", "http://p:1", "--no-proxy"], ["ws://127.0.0.1:1/", "--wait", "-1"]):
        code, _, err = run([sys.executable, "-m", "wsframe", "connect", *bad])
        assert code == 2 and "usage: wsframe connect" in err and "Traceback" not in err, (bad, err)


def test_help_lists_both_commands_and_every_connect_option() -> None:
    code, out, _ = run([sys.executable, "-m", "wsframe", "--help"])
    assert code == 0 and "serve" in out and "connect" in out
    code, out, _ = run([sys.executable, "-m", "wsframe", "connect", "--help"])
    assert code == 0
    for flag in ("--header", "--subprotocol", "--insecure", "--origin", "--proxy", "--no-proxy", "--backend",
                 "--open-timeout", "--wait", "URI"):
        assert flag in out, flag
    script = Path(sys.executable).with_name("wsframe")
    if script.exists():  # the installed entry point is the same main()
        result = subprocess.run([str(script), "connect", "--help"], capture_output=True, timeout=TIMEOUT)
        assert result.returncode == 0 and result.stdout.decode() == out


# -- the line sources, in process -----------------------------------------------------------------


@pytest.mark.skipif(os.name != "posix", reason="select() on a pipe is POSIX")
def test_select_lines_splits_decodes_and_wakes() -> None:
    r, w = os.pipe()
    lines = cli._SelectLines(r, "utf-8")
    try:
        os.write(w, "a\r\nb\né".encode()[:-1])  # half of a UTF-8 character
        assert lines.next_line() == "a" and lines.next_line() == "b"
        os.write(w, "é".encode()[-1:] + b"\nlast")
        assert lines.next_line() == "é"
        os.close(w)
        assert lines.next_line() == "last" and lines.next_line() is None
        waiting = cli._SelectLines(None, "utf-8")  # no input at all: only a wake ends the wait
        threading.Timer(0.1, waiting.wake).start()
        with pytest.raises(cli._Woken):
            waiting.next_line()
        waiting.close()
    finally:
        lines.close()
        os.close(r)


def test_thread_lines_the_windows_fallback() -> None:
    r, w = os.pipe()
    with os.fdopen(r, "r", encoding="utf-8") as stream:
        lines = cli._ThreadLines(stream)
        os.write(w, b"one\r\ntwo\n")
        assert lines.next_line() == "one" and lines.next_line() == "two"
        threading.Timer(0.1, lines.wake).start()
        with pytest.raises(cli._Woken):
            lines.next_line()
        os.close(w)
