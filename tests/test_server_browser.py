"""A real browser against the demo server: Debian's Chromium, headless, driven by Playwright.

The server is the CLI's (``wsframe.cli.build_server``): the demo page at
``/`` and the WebSocket on the same port, 127.0.0.1 only. Skipped cleanly when
Playwright or /usr/bin/chromium is missing; no browser is ever downloaded.
Every wait is bounded by a Playwright timeout of a few seconds.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
from typing import Any, Callable, Iterator, List

import pytest

from wsframe.cli import build_server
from wsframe.sync.server import Server

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]
TIMEOUT_MS = 5_000
#: What the server answers to Chromium's offer ("permessage-deflate; client_max_window_bits") by default.
DEFLATE_ANSWER = "permessage-deflate; server_no_context_takeover; client_max_window_bits=12"
RECONNECT_TIMEOUT_MS = 10_000  # the page's backoff: 0.5 s doubling, so a few tries fit well within

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - depends on the environment
    sync_playwright = None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if sync_playwright is None:
        pytest.skip("playwright is not installed (pip install playwright; no browser download needed)")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True, timeout=30_000)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def new_page(browser: Any) -> Iterator[Callable[[int], Any]]:
    """Open the demo page of the server on a port (its own browser context: own localStorage); closed after."""
    pages: List[Any] = []

    def open_page(port: int) -> Any:
        page = browser.new_page()
        pages.append(page)
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(f"http://127.0.0.1:{port}/")
        wait_state(page, "open")
        return page

    try:
        yield open_page
    finally:
        for page in pages:
            page.close()


@contextlib.contextmanager
def demo_server(mode: str, backend: Any, port: int = 0) -> Iterator[Server]:
    server = build_server(mode, "127.0.0.1", port, backend=backend.name).start()
    try:
        yield server
    finally:
        server.shutdown(timeout=5)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_state(page: Any, state: str, timeout: int = TIMEOUT_MS) -> None:
    page.wait_for_function("s => document.getElementById('status').dataset.state === s", arg=state, timeout=timeout)


def wait_count(page: Any, selector: str, count: int) -> None:
    page.wait_for_function("([s, n]) => document.querySelectorAll(s).length >= n", arg=[selector, count])


def type_and_send(page: Any, text: str, press_enter: bool = True) -> None:
    page.fill("#message", text)
    if press_enter:
        page.press("#message", "Enter")
    else:
        page.click("#send")


def texts(page: Any, selector: str) -> List[str]:
    return page.eval_on_selector_all(selector, "items => items.map(e => e.textContent)")


def received(page: Any) -> List[str]:
    return texts(page, "#log li.in .text")


def notes(page: Any) -> List[str]:
    return texts(page, "#log li.sys .text")


def test_echo_page(browser: Any, new_page: Any, backend: Any) -> None:
    with demo_server("echo", backend) as server:
        page = new_page(server.port)
        assert page.text_content("#mode") == "echo mode"
        assert page.text_content("#status-text") == "open"
        assert page.text_content("#url") == f"ws://127.0.0.1:{server.port}/"
        assert page.text_content("#extensions") == DEFLATE_ANSWER  # Chromium offers it, the server agrees
        assert page.text_content("#protocol") == "none"
        assert page.is_hidden("#name")  # names are for chat
        type_and_send(page, "hello from chromium")
        type_and_send(page, "second, héllo ✓", press_enter=False)
        wait_count(page, "#log li.in", 2)
        assert received(page) == ["hello from chromium", "second, héllo ✓"]
        assert texts(page, "#log li.out .text") == ["hello from chromium", "second, héllo ✓"]
        sizes = texts(page, "#log li.in .meta")
        assert sizes == ["19 bytes", "18 bytes"]  # UTF-8 bytes: é is 2, ✓ is 3
        assert all(re.fullmatch(r"\d\d:\d\d:\d\d\.\d{3}", t) for t in texts(page, "#log li time"))
        assert page.text_content("#counts") == "sent 2 · received 2"
        assert len(server.connections) == 1
        server.shutdown(timeout=5)  # the page sees the server go away and says it retries
        wait_state(page, "reconnecting")
        assert "reconnecting in" in page.text_content("#status-text")
        assert page.is_visible("#retry")
        assert any(n.startswith("closed (code 1001 'server shutting down'), reconnecting in ") for n in notes(page))
        assert page.is_disabled("#send")


def test_server_restart_reconnects(new_page: Any, backend: Any) -> None:
    port = free_port()  # the same port for both servers (allow_reuse_address is set)
    with demo_server("echo", backend, port) as first:
        page = new_page(port)
        type_and_send(page, "before the restart")
        wait_count(page, "#log li.in", 1)
        first.shutdown(timeout=5)
        wait_state(page, "reconnecting")
        status = page.text_content("#status-text")
        assert re.search(r"reconnecting in \d+(\.\d)? s$", status), status
    with demo_server("echo", backend, port):
        wait_state(page, "open", timeout=RECONNECT_TIMEOUT_MS)  # by itself: nobody clicks anything
        assert page.text_content("#status-text") == "open"
        assert [n for n in notes(page) if n.startswith("connected to ")] == [
            f"connected to ws://127.0.0.1:{port}/ (extensions: {DEFLATE_ANSWER}, subprotocol: none)"] * 2
        type_and_send(page, "after the restart")
        wait_count(page, "#log li.in", 2)
        assert received(page) == ["before the restart", "after the restart"]


def test_binary_file_round_trip(new_page: Any, backend: Any, tmp_path: Any) -> None:
    data = bytes((i * 7 + 1) % 256 for i in range(3000))
    path = tmp_path / "sample.bin"
    path.write_bytes(data)
    with demo_server("echo", backend) as server:
        page = new_page(server.port)
        assert page.is_disabled("#send-file")  # nothing picked yet
        page.set_input_files("#file", str(path))
        page.click("#send-file")
        wait_count(page, "#log li.in", 1)
        hex_preview = " ".join(f"{b:02x}" for b in data[:16])
        assert hex_preview.startswith("01 08 0f 16")
        assert texts(page, "#log li.in .meta") == ["3000 bytes (2.9 KiB)"]
        assert texts(page, "#log li.in .hex") == [hex_preview]
        assert texts(page, "#log li.in .tag") == ["binary"]
        assert texts(page, "#log li.out .tag") == ["sample.bin"]  # the sent entry names the file
        assert texts(page, "#log li.out .hex") == [hex_preview]
        assert page.text_content("#counts") == "sent 1 · received 1"


def test_chat_names_between_two_pages(new_page: Any, backend: Any) -> None:
    with demo_server("chat", backend) as server:
        alice, bob = new_page(server.port), new_page(server.port)
        assert alice.text_content("#mode") == "chat mode"
        assert alice.input_value("#name").startswith("guest-")
        alice.fill("#name", "alice")
        bob.fill("#name", "bob")
        type_and_send(alice, "hello")
        for page in (alice, bob):  # the broadcast includes the sender
            wait_count(page, "#log li.in", 1)
            assert received(page) == ["alice: hello"]
            assert texts(page, "#log li.in .name") == ["alice"]
        assert texts(alice, "#log li.out .text") == ["alice: hello"]
        type_and_send(bob, "hi alice")
        wait_count(alice, "#log li.in", 2)
        assert received(alice) == ["alice: hello", "bob: hi alice"]

        # A plain (non-JSON) message from another client is shown as it is.
        bob.evaluate("""url => new Promise((resolve, reject) => {
            const raw = new WebSocket(url);
            raw.onopen = () => { raw.send("plain words"); raw.close(); resolve(); };
            raw.onerror = reject;
        })""", f"ws://127.0.0.1:{server.port}/")
        wait_count(alice, "#log li.in", 3)
        assert received(alice)[-1] == "plain words"
        # The other page's round-trip messages are never shown or counted.
        assert alice.text_content("#counts") == "sent 1 · received 3"

        # The name is remembered (localStorage) across a reload.
        alice.reload()
        wait_state(alice, "open")
        assert alice.input_value("#name") == "alice"

        # Disconnect is manual: no reconnecting afterwards, until Connect.
        alice.click("#toggle")
        wait_state(alice, "closed")
        assert alice.text_content("#status-text").startswith("closed (code 1000")  # the server's reply
        assert alice.text_content("#toggle") == "Connect"
        alice.wait_for_timeout(1200)  # longer than the first backoff
        assert alice.get_attribute("#status", "data-state") == "closed"
        alice.click("#toggle")
        wait_state(alice, "open")
        assert alice.text_content("#toggle") == "Disconnect"


@pytest.mark.parametrize("mode", ["echo", "chat"])
def test_round_trip_time(new_page: Any, backend: Any, mode: str) -> None:
    number = r"\d+\.\d+ ms"
    with demo_server(mode, backend) as server:
        page = new_page(server.port)
        page.click("#ping")
        page.wait_for_function("/\\(([2-9]|\\d\\d+)\\)$/.test(document.getElementById('rtt-avg').textContent)")
        assert re.fullmatch(number, page.text_content("#rtt-last"))
        assert re.fullmatch(number + r" \(\d+\)", page.text_content("#rtt-avg"))
        # Round-trip messages are not messages: not in the log, not counted.
        assert received(page) == []
        assert page.text_content("#counts") == "sent 0 · received 0"


def test_log_is_trimmed(new_page: Any, backend: Any) -> None:
    with demo_server("echo", backend) as server:
        page = new_page(server.port)
        limit = int(page.get_attribute("#log", "data-limit"))
        assert limit == 200
        page.evaluate("() => { for (let i = 0; i < 300; i++) window.wsframe.send('m' + i); }")
        page.wait_for_function("document.getElementById('counts').textContent === 'sent 300 · received 300'")
        assert page.eval_on_selector_all("#log li", "items => items.length") == limit
        assert received(page)[-1] == "m299"
        assert page.is_visible("#trimmed")
        assert page.text_content("#trimmed") == "Showing the last 200 of 601 entries."  # 1 note, 600 messages


def test_long_message_truncated(new_page: Any, backend: Any) -> None:
    with demo_server("echo", backend) as server:
        page = new_page(server.port)
        page.evaluate("() => window.wsframe.send('é'.repeat(2000))")
        wait_count(page, "#log li.in", 1)
        shown = received(page)[0]
        assert shown == "é" * 500 + " … 1500 more characters"
        assert texts(page, "#log li.in .meta") == ["4000 bytes (3.9 KiB)"]  # the full size


COMPRESSED_ROUND_TRIP = """async ([url, text, size]) => {
    const ws = new WebSocket(url);
    ws.binaryType = "arraybuffer";
    await new Promise((ok, fail) => { ws.onopen = ok; ws.onerror = fail; });
    const replies = [];
    const done = new Promise((ok) => { ws.onmessage = (e) => { replies.push(e.data); if (replies.length === 2) ok(); }; });
    const bytes = new Uint8Array(size);
    for (let i = 0; i < size; i++) bytes[i] = (i * 7) % 251;
    ws.send(text);
    ws.send(bytes);
    await done;
    const back = new Uint8Array(replies[1]);
    const same = back.length === size && back.every((b, i) => b === (i * 7) % 251);
    ws.close(1000);
    return [ws.extensions, replies[0] === text, same];
}"""


def test_compressed_messages_round_trip(new_page: Any, backend: Any) -> None:
    """Chromium compresses what it sends and inflates what the server compressed (both sides over the threshold)."""
    with demo_server("echo", backend) as server:
        page = new_page(server.port)
        text = '{"user": "ada", "text": "h\u00e9llo \u2603", "n": 12345} ' * 4000  # ~200 KB of JSON-like text
        extensions, text_ok, binary_ok = page.evaluate(
            COMPRESSED_ROUND_TRIP, [f"ws://127.0.0.1:{server.port}/", text, 300_000])
        assert extensions == DEFLATE_ANSWER
        assert text_ok and binary_ok
