"""A real browser against the demo server: Debian's Chromium, headless, driven by Playwright.

The server is the CLI's (``wsframe.cli.build_server``): the demo page at
``/`` and the WebSocket on the same port. Skipped cleanly when Playwright or
/usr/bin/chromium is missing; no browser is ever downloaded.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Iterator

import pytest

from wsframe.cli import build_server
from wsframe.sync.server import Server

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]
TIMEOUT_MS = 10_000

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


@contextlib.contextmanager
def demo_server(mode: str, backend: Any) -> Iterator[Server]:
    server = build_server(mode, "127.0.0.1", 0, backend=backend.name).start()
    try:
        yield server
    finally:
        server.shutdown(timeout=5)


def open_page(browser: Any, server: Server) -> Any:
    page = browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(f"http://127.0.0.1:{server.port}/")
    page.wait_for_function("document.getElementById('status').dataset.state === 'open'")
    return page


def type_and_send(page: Any, text: str, press_enter: bool = True) -> None:
    page.fill("#message", text)
    if press_enter:
        page.press("#message", "Enter")
    else:
        page.click("#send")


def received(page: Any) -> list:
    return page.eval_on_selector_all("#log li.in .text", "items => items.map(e => e.textContent)")


def test_echo_page(browser: Any, backend: Any) -> None:
    with demo_server("echo", backend) as server:
        page = open_page(browser, server)
        assert page.text_content("#mode") == "echo mode"
        assert page.text_content("#url") == f"ws://127.0.0.1:{server.port}/"
        type_and_send(page, "hello from chromium")
        type_and_send(page, "second, héllo ✓", press_enter=False)
        page.wait_for_function("document.querySelectorAll('#log li.in').length >= 2")
        assert received(page) == ["hello from chromium", "second, héllo ✓"]
        assert page.text_content("#counts") == "sent 2 · received 2"
        assert len(server.connections) == 1
        server.shutdown(timeout=5)  # the page sees the server go away
        page.wait_for_function("document.getElementById('status').dataset.state === 'closed'")
        assert "1001" in page.text_content("#status-text")
        page.close()


def test_chat_pages(browser: Any, backend: Any) -> None:
    with demo_server("chat", backend) as server:
        alice, bob = open_page(browser, server), open_page(browser, server)
        assert alice.text_content("#mode") == "chat mode"
        type_and_send(alice, "hi bob, this is alice")
        bob.wait_for_function("document.querySelectorAll('#log li.in').length >= 1")
        assert received(bob) == ["hi bob, this is alice"]
        type_and_send(bob, "hello alice")
        alice.wait_for_function("document.querySelectorAll('#log li.in').length >= 2")
        assert received(alice) == ["hi bob, this is alice", "hello alice"]  # chat includes the sender
        alice.click("#toggle")  # disconnect from the page
        alice.wait_for_function("document.getElementById('status').dataset.state === 'closed'")
        assert "1000" in alice.text_content("#status-text")
        alice.close()
        bob.close()
