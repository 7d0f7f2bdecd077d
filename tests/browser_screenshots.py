"""Screenshots of the demo page after some traffic, to look at the layout by eye.

    .venv/bin/python tests/browser_screenshots.py [--dark] [--width 960]

Writes /tmp/wsframe-echo.png and /tmp/wsframe-chat.png (``-dark`` before
``.png`` with --dark). Uses Debian's /usr/bin/chromium through Playwright, the
CLI's server on 127.0.0.1, nothing from the network. Not a test: pytest does
not collect it.
"""

from __future__ import annotations

import argparse
from typing import Any

from playwright.sync_api import sync_playwright

from wsframe.cli import build_server

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


def open_page(browser: Any, port: int, width: int, dark: bool, height: int = 760) -> Any:
    page = browser.new_page(viewport={"width": width, "height": height}, color_scheme="dark" if dark else "light")
    page.set_default_timeout(5_000)
    page.goto(f"http://127.0.0.1:{port}/")
    page.wait_for_function("document.getElementById('status').dataset.state === 'open'")
    return page


def say(page: Any, text: str) -> None:
    page.fill("#message", text)
    page.press("#message", "Enter")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dark", action="store_true")
    parser.add_argument("--width", type=int, default=960)
    args = parser.parse_args()
    suffix = "-dark" if args.dark else ""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        echo = build_server("echo", "127.0.0.1", 0).start()
        try:
            page = open_page(browser, echo.port, args.width, args.dark)
            page.evaluate("() => window.wsframe.send('long '.repeat(300))")
            say(page, "hello from the echo page")
            page.evaluate("() => window.wsframe.sendBinary(new Uint8Array(Array.from({length: 3000}, (_, i) => i % 256)), 'sample.bin')")
            say(page, "héllo ✓ unicode")
            page.click("#ping")
            page.wait_for_function("document.querySelectorAll('#log li.in').length >= 4")
            page.wait_for_timeout(300)
            page.screenshot(path=f"/tmp/wsframe-echo{suffix}.png")
        finally:
            echo.shutdown(timeout=5)
        page.wait_for_function("document.getElementById('status').dataset.state === 'reconnecting'")
        page.screenshot(path=f"/tmp/wsframe-echo-reconnecting{suffix}.png")
        page.close()

        chat = build_server("chat", "127.0.0.1", 0).start()
        try:
            alice = open_page(browser, chat.port, args.width, args.dark)
            bob = open_page(browser, chat.port, args.width, args.dark)
            alice.fill("#name", "alice")
            bob.fill("#name", "bob")
            say(alice, "hello")
            bob.wait_for_function("document.querySelectorAll('#log li.in').length >= 1")
            say(bob, "hi alice, how is the new client?")
            say(alice, "it reconnects by itself now")
            alice.wait_for_function("document.querySelectorAll('#log li.in').length >= 3")
            alice.click("#ping")
            alice.wait_for_timeout(300)
            alice.screenshot(path=f"/tmp/wsframe-chat{suffix}.png")
        finally:
            chat.shutdown(timeout=5)
        browser.close()


if __name__ == "__main__":
    main()
