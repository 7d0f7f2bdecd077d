"""Small helpers shared by the tests that run real servers and processes."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from typing import Any, Callable


def wait_for(predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.01) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds pass; its last verdict."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def stop_process(process: "subprocess.Popen[Any]", timeout: float = 5.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout``."""
    process.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout)
    if process.poll() is None:
        process.kill()
        process.wait(timeout)


def read_to_the_end(sock: socket.socket, conn: Any) -> "tuple[list, Any]":
    """Feed ``conn`` what ``sock`` receives until the peer ends; the events, and how it ended:
    "FIN", or the reset (an exception, or the socket's error recorded after the FIN)."""
    received: list = []
    ended: Any = None
    for _ in range(1000):
        try:
            data = sock.recv(65536)
        except ConnectionResetError as exc:
            return received, exc
        if not data:
            ended = "FIN"
            break
        conn.receive_data(data)
        received += list(conn.events())
    if ended == "FIN":  # a reset can also come after the FIN, when the socket is closed over unread bytes:
        time.sleep(0.5)  # Linux then records EPIPE (ECONNRESET before the FIN) as the socket's error
        error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        ended = os.strerror(error) if error else "FIN"
    return received, ended
