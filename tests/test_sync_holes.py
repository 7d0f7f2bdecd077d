"""Regression tests for holes found in the threaded server, each on both backends.

Each test failed on the code before its fix (see the issue "One connection
layer for every role and driver"); they use the public API only.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import resource
import socket
import threading
import time
from typing import Any, Iterator, List, Optional

import pytest
from websockets.sync.client import connect

import wsframe
from support import wait_for
from wsframe import ClientConnection, Closed, CloseReceived, TextMessage, serve


@contextlib.contextmanager
def running(handler: Any, backend: Any, **options: Any) -> Iterator[Any]:
    server = serve(handler, "127.0.0.1", 0, backend=backend.name, **options).start()
    try:
        yield server
    finally:
        server.shutdown(timeout=5)


def raw_client(port: int, backend: Any, rcvbuf: Optional[int] = None) -> "tuple[socket.socket, ClientConnection]":
    """A connected, upgraded socket and its client core (which answers nothing by itself)."""
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(5)
    sock.connect(("127.0.0.1", port))
    conn = ClientConnection(f"127.0.0.1:{port}", "/", auto_pong=False, backend=backend.name)
    sock.sendall(conn.handshake_request())
    while True:
        data = sock.recv(65536)
        assert data, "server closed during the handshake"
        conn.receive_data(data)
        if any(True for _ in conn.events()):
            return sock, conn


def events_until_eof(sock: socket.socket, conn: ClientConnection, timeout: float = 5.0) -> List[Any]:
    got: List[Any] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = sock.recv(65536)
        except (ConnectionResetError, socket.timeout):
            data = b""
        conn.receive_data(data)
        got.extend(conn.events())
        if not data or any(isinstance(e, Closed) for e in got):
            return got
    return got


def force_portable_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Take the path of platforms without MSG_DONTWAIT (Windows): non-blocking sockets throughout."""
    try:
        transport = importlib.import_module("wsframe.sync.transport")
        monkeypatch.setattr(transport, "MSG_DONTWAIT", 0)
    except ImportError:  # the layout before the fix
        monkeypatch.setattr(importlib.import_module("wsframe._transport"), "_DONTWAIT", 0)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# 1 -----------------------------------------------------------------------------------------


def test_pongs_count_against_write_limit_and_a_peer_that_never_reads_is_dropped(backend: Any) -> None:
    """40 MiB of pings from a peer that never reads: the server stops reading, then drops it (1008)."""
    seen: List[Any] = []

    def handler(ws: Any) -> None:
        seen.append(ws)
        for _ in ws:
            pass

    limit = 64 * 1024
    with running(handler, backend, write_limit=limit, send_timeout=1.0, close_timeout=1.0) as server:
        sock, conn = raw_client(server.port, backend, rcvbuf=4096)
        ping = conn.send_ping(b"x" * 125)
        burst = ping * 512
        sock.setblocking(False)
        sent, peak = 0, 0
        deadline = time.monotonic() + 6.0
        while sent < 40 * 2**20 and time.monotonic() < deadline:
            try:
                sent += sock.send(burst)
            except BlockingIOError:
                time.sleep(0.005)
            except OSError:
                break  # dropped
            if seen:
                peak = max(peak, seen[0].buffered_amount)
        assert seen
        ws = seen[0]
        assert wait_for(lambda: ws.close_code is not None, 8.0), "a peer that never reads stayed connected"
        peak = max(peak, ws.buffered_amount)
        sock.close()
    assert ws.close_code == 1008
    assert peak <= limit + 256 * 1024 + 65536, f"{peak} bytes queued with write_limit={limit}"


# 3 -----------------------------------------------------------------------------------------


def test_close_from_another_thread_while_the_handler_leaves_recv(backend: Any) -> None:
    """close() waited on an event nobody would set once the reading handler left recv(): 2 s and 1006."""
    entered = threading.Event()
    holder: List[Any] = []

    def handler(ws: Any) -> None:
        holder.append(ws)
        entered.set()
        with contextlib.suppress(TimeoutError):
            ws.recv(timeout=0.8)  # holds the read lock when close() is called, then gives up
        time.sleep(3)  # busy: not reading

    with running(handler, backend, close_timeout=2.0) as server:
        sock, conn = raw_client(server.port, backend)
        assert entered.wait(5)
        time.sleep(0.2)  # the handler is in recv()
        ws = holder[0]
        result: List[float] = []
        closer = threading.Thread(target=lambda: (ws.close(1000, "bye"), result.append(time.monotonic())))
        started = time.monotonic()
        closer.start()
        conn.receive_data(sock.recv(65536))  # our close frame
        assert any(isinstance(e, CloseReceived) for e in conn.events())
        time.sleep(1.0)  # the handler has left recv() by now
        sock.sendall(conn.data_to_send())  # the client's answer
        closer.join(5)
        sock.close()
    assert result and result[0] - started < 1.8, "close() waited for its timeout"
    assert ws.close_code == 1000, (ws.close_code, ws.close_reason)


# 4 -----------------------------------------------------------------------------------------


def test_an_accepted_socket_left_non_blocking_does_not_spin(backend: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """BSD, macOS and Windows hand out accepted sockets in the listener's non-blocking mode."""
    try:
        listener_class: Any = importlib.import_module("wsframe.sync.server")._Listener
    except (ImportError, AttributeError):  # the layout before the fix
        listener_class = importlib.import_module("wsframe.server")._TCPServer
    original = listener_class.get_request

    def get_request(self: Any) -> Any:
        sock, address = original(self)
        sock.setblocking(False)  # what those platforms do
        return sock, address

    monkeypatch.setattr(listener_class, "get_request", get_request)
    with running(lambda ws: [None for _ in ws], backend, ping_interval=None) as server:
        with connect(f"ws://127.0.0.1:{server.port}/", open_timeout=5, close_timeout=2) as client:
            time.sleep(0.2)
            before = cpu_seconds()
            time.sleep(1.0)  # idle
            spent = cpu_seconds() - before
            client.send("still served")
    assert spent < 0.3, f"an idle connection used {spent:.2f} s of CPU in 1 s"


# 5 -----------------------------------------------------------------------------------------


def test_without_msg_dontwait_a_stuck_client_does_not_block_its_sender(backend: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Windows: a write to a client that never reads blocked under the connection lock, forever."""
    force_portable_writes(monkeypatch)
    outcome: List[Any] = []

    def handler(ws: Any) -> None:
        try:
            for _ in range(200):
                ws.send(b"x" * 65536)
        except (TimeoutError, wsframe.ConnectionClosed) as exc:
            outcome.append(exc)

    with running(handler, backend, write_limit=65536, send_timeout=1.0, close_timeout=1.0) as server:
        sock, _ = raw_client(server.port, backend, rcvbuf=4096)
        assert wait_for(lambda: bool(outcome), 8.0), "send() blocked on a client that does not read"
        sock.close()
    assert isinstance(outcome[0], TimeoutError)


def test_without_msg_dontwait_echo_works(backend: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    force_portable_writes(monkeypatch)

    def handler(ws: Any) -> None:
        for message in ws:
            ws.send(message)

    with running(handler, backend) as server:
        with connect(f"ws://127.0.0.1:{server.port}/", open_timeout=5, close_timeout=2, max_size=None) as client:
            for size in (0, 10, 70000, 3 * 2**20 // 4):
                client.send(b"z" * size)
                assert client.recv(timeout=5) == b"z" * size
            client.send("text")
            assert client.recv(timeout=5) == "text"


# 6 -----------------------------------------------------------------------------------------


def test_the_process_wide_thread_stack_size_is_never_changed(backend: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: List[Any] = []
    original = threading.stack_size

    def spy(*args: Any) -> int:
        calls.append(args)
        return original(*args)

    monkeypatch.setattr(threading, "stack_size", spy)
    with running(lambda ws: None, backend) as server:
        for _ in range(3):
            with connect(f"ws://127.0.0.1:{server.port}/", open_timeout=5, close_timeout=2) as client:
                with contextlib.suppress(Exception):
                    client.recv(timeout=2)
    assert [c for c in calls if c] == [], "the server changed threading.stack_size()"


# 8 -----------------------------------------------------------------------------------------


def test_release_waits_for_a_reader_instead_of_closing_under_it(backend: Any) -> None:
    """The descriptor is closed only once no thread reads it (a timer reading on the handler's behalf)."""
    holder: List[Any] = []
    closed_under_reader: List[bool] = []

    def reader(ws: Any) -> None:
        with ws._read_lock:  # what a timer's read on the handler's behalf holds
            time.sleep(1.0)
            closed_under_reader.append(ws.socket.fileno() == -1)

    def handler(ws: Any) -> None:
        holder.append(ws)
        threading.Thread(target=reader, args=(ws,), daemon=True).start()
        time.sleep(0.1)

    with running(handler, backend, close_timeout=0.3) as server:
        sock, _ = raw_client(server.port, backend)  # never answers: the handler's close times out
        assert wait_for(lambda: bool(closed_under_reader), 6.0)
        assert wait_for(lambda: holder[0].socket.fileno() == -1, 6.0)
        sock.close()
    assert closed_under_reader == [False], "the socket was closed while another thread was reading it"


# 12 ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["reserved opcode", "close frame"])
def test_messages_before_a_violation_or_close_are_delivered_and_answered(backend: Any, bad: str) -> None:
    def handler(ws: Any) -> None:
        for message in ws:
            ws.send(message.upper())

    with running(handler, backend) as server:
        sock, conn = raw_client(server.port, backend)
        messages = conn.send_text("one") + conn.send_text("two")
        # Made by hand: the client core itself would discard data frames after sending a close.
        close = wsframe.encode_frame(0x8, (1000).to_bytes(2, "big") + b"done", mask_key=b"abcd")
        tail = close if bad == "close frame" else bytes([0x83, 0x80, 1, 2, 3, 4])
        sock.sendall(messages + tail)
        got = events_until_eof(sock, conn)
        sock.close()
    texts = [e.data for e in got if isinstance(e, TextMessage)]
    assert texts == ["ONE", "TWO"], got
    closes = [e for e in got if isinstance(e, (CloseReceived, Closed))]
    assert closes and closes[0].code == (1000 if bad == "close frame" else 1002)


# 13 ----------------------------------------------------------------------------------------


def test_shutdown_with_a_busy_handler_is_bounded_and_reports_the_clients_answer(
    backend: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="wsframe.server")
    holder: List[Any] = []
    got_message = threading.Event()

    def handler(ws: Any) -> None:
        holder.append(ws)
        ws.recv()
        got_message.set()
        time.sleep(6)  # busy, not reading, ignoring the shutdown

    server = serve(handler, "127.0.0.1", 0, backend=backend.name, close_timeout=2.0).start()
    with connect(f"ws://127.0.0.1:{server.port}/", open_timeout=5, close_timeout=5) as client:
        client.send("work")
        assert got_message.wait(5)
        started = time.monotonic()
        server.shutdown()
        took = time.monotonic() - started
    assert took < 4.0, f"shutdown() took {took:.1f} s"
    assert holder[0].close_code == 1001, (holder[0].close_code, holder[0].close_reason)
    assert "timed out" not in caplog.text
