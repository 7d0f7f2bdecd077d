"""Command line: ``python -m wsframe serve`` (installed as the ``wsframe`` script too).

::

    python -m wsframe serve --mode echo --host 127.0.0.1 --port 8080
    python -m wsframe serve --mode chat --certfile cert.pem --keyfile key.pem

``echo`` sends every message back as it came (text or binary); ``chat``
broadcasts each message to every connected client. A plain GET of ``/`` on
the same port returns a demo page that connects back. Ctrl-C or SIGTERM
closes every connection with 1001 and exits.
"""

from __future__ import annotations

import argparse
import logging
import signal
import ssl
import sys
from typing import Any, List, Optional, Sequence

from .protocol.connection import DEFAULT_MAX_MESSAGE_SIZE
from .sync.server import Server, WebSocket, serve

__all__ = ["main", "build_server", "demo_page"]

MODES = ("echo", "chat")


def demo_page(mode: str) -> bytes:
    """The demo page (``static/index.html``) for ``mode``."""
    try:
        from importlib.resources import files

        text = (files("wsframe") / "static" / "index.html").read_text("utf-8")
    except (ImportError, AttributeError):  # pragma: no cover - Python < 3.9 layouts
        import os

        with open(os.path.join(os.path.dirname(__file__), "static", "index.html"), encoding="utf-8") as f:
            text = f.read()
    return text.replace("{{MODE}}", mode).encode("utf-8")


def echo(ws: WebSocket) -> None:
    """Send every message back, text as text and binary as binary."""
    for message in ws:
        ws.send(message)


def chat(ws: WebSocket) -> None:
    """Send every message to every connected client (the sender included)."""
    for message in ws:
        ws.server.broadcast(message)


def build_server(
    mode: str = "echo",
    host: str = "127.0.0.1",
    port: int = 8080,
    **options: Any,
) -> Server:
    """The CLI's server, not started: ``mode`` handler plus the demo page at ``/``.

    ``options`` go to :func:`wsframe.server.serve` (``max_message_size``,
    ``ssl_context``, ``backend`` ...).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}")
    page = demo_page(mode)

    def process_request(request: Any) -> Any:
        if request.method in ("GET", "HEAD") and request.path in ("/", "/index.html"):
            return 200, [("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-store")], page
        if request.path == "/favicon.ico":
            return 204, [], b""
        return 404, [], "404 Not Found\n"

    return serve(echo if mode == "echo" else chat, host, port, process_request=process_request, **options)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wsframe", description="wsframe WebSocket tools.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = commands.add_parser(
        "serve",
        help="run an echo or chat WebSocket server with a demo page at /",
        description="Run an echo or chat WebSocket server; GET / on the same port serves a demo page.",
    )
    run.add_argument("--mode", choices=MODES, default="echo", help="echo back, or broadcast to all (default: echo)")
    run.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    run.add_argument("--port", type=int, default=8080, help="port to listen on, 0 for any (default: 8080)")
    run.add_argument(
        "--max-size", type=int, default=DEFAULT_MAX_MESSAGE_SIZE, metavar="BYTES",
        help=f"largest message accepted; bigger ones close with 1009 (default: {DEFAULT_MAX_MESSAGE_SIZE})",
    )
    run.add_argument("--certfile", metavar="FILE", help="PEM certificate (chain): serve wss:// and https://")
    run.add_argument("--keyfile", metavar="FILE", help="PEM private key for --certfile")
    run.add_argument("--backend", choices=("cython", "python"), help="framing backend (default: the compiled one if built)")
    run.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command != "serve":
        parser.print_help()
        return 2
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    ssl_context = None
    if args.keyfile and not args.certfile:
        parser.error("--keyfile needs --certfile")
    if args.certfile:
        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            ssl_context.load_cert_chain(args.certfile, args.keyfile)
        except (OSError, ssl.SSLError) as exc:
            print(f"wsframe: cannot load the certificate: {exc}", file=sys.stderr)
            return 1
    try:
        server = build_server(
            args.mode, args.host, args.port,
            max_message_size=args.max_size, ssl_context=ssl_context, backend=args.backend,
        )
    except ImportError as exc:
        print(f"wsframe: backend {args.backend!r} is not available: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"wsframe: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1

    host, port = server.server_address[:2]
    shown = f"[{host}]" if ":" in host else host
    secure = ssl_context is not None
    from . import __version__

    lines: List[str] = [
        f"wsframe {__version__}: {args.mode} server, backend {server.backend}",
        f"  page       {'https' if secure else 'http'}://{shown}:{port}/",
        f"  websocket  {'wss' if secure else 'ws'}://{shown}:{port}/",
        "Ctrl-C to stop.",
    ]
    print("\n".join(lines), flush=True)

    def stop(signum: int, frame: Any) -> None:
        # A second signal stops hard.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        server.shutdown()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    server.serve_forever()
    print("wsframe: stopped", flush=True)
    return 0

