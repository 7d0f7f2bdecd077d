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
import os
import signal
import ssl
import sys
from typing import Any, List, Optional, Sequence

from .options import option_docs
from .protocol.connection import DEFAULT_MAX_MESSAGE_SIZE
from .sync.connection import WebSocket
from .sync.server import Server, format_address, serve

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


def build_server(
    mode: str = "echo",
    host: str = "127.0.0.1",
    port: int = 8080,
    **options: Any,
) -> Server:
    """The CLI's server, not started: ``mode`` handler plus the demo page at ``/``.

    ``options`` go to :func:`wsframe.serve` (``max_message_size``, ``ssl``, ``backend`` ...).
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

    server: Optional[Server] = None

    def chat(ws: WebSocket) -> None:
        """Send every message to every connected client (the sender included)."""
        for message in ws:
            assert server is not None
            server.broadcast(message)

    server = serve(echo if mode == "echo" else chat, host, port, process_request=process_request, **options)
    return server


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is out of range (0-65535)")
    return port


def _size(text: str) -> int:
    try:
        size = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of bytes") from None
    if size < 0:
        raise argparse.ArgumentTypeError("a size cannot be negative")
    return size


def _seconds(text: str) -> Optional[float]:
    if text.lower() in ("none", "off"):
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("a time must be positive (or 'none')")
    return value


def _option_help(name: str) -> str:
    """An option's description and default, as the Options class documents it."""
    for option, default, doc, _ in option_docs():
        if option == name:
            return f"{doc} (default: {default})"
    raise KeyError(name)  # pragma: no cover - a flag for an option that does not exist


def _parser() -> argparse.ArgumentParser:
    from . import __version__
    from .protocol.backend import BACKEND

    parser = argparse.ArgumentParser(prog="wsframe", description="wsframe WebSocket tools.")
    parser.add_argument("--version", action="version", version=f"wsframe {__version__} (backend {BACKEND})")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = commands.add_parser(
        "serve",
        help="run an echo or chat WebSocket server with a demo page at /",
        description="Run an echo or chat WebSocket server; GET / on the same port serves a demo page.",
    )
    run.add_argument("--mode", choices=MODES, default="echo", help="echo back, or broadcast to all (default: echo)")
    run.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    run.add_argument("--port", type=_port, default=8080, help="port to listen on, 0 for any (default: 8080)")
    run.add_argument("--max-size", type=_size, default=DEFAULT_MAX_MESSAGE_SIZE, metavar="BYTES",
                     dest="max_message_size", help=_option_help("max_message_size"))
    run.add_argument("--max-connections", type=_size, default=1024, metavar="N", help=_option_help("max_connections"))
    run.add_argument("--ping-interval", type=_seconds, default=20.0, metavar="SECONDS",
                     help=_option_help("ping_interval") + "; 'none' turns keepalive off")
    run.add_argument("--certfile", metavar="FILE", help="PEM certificate (chain): serve wss:// and https:// "
                     "(with --keyfile, unless the key is in the same file)")
    run.add_argument("--keyfile", metavar="FILE", help="PEM private key for --certfile")
    run.add_argument("--backend", choices=("cython", "python"), help=_option_help("backend"))
    run.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"),
                     help="logging level (default: info)")
    return parser


def _tls_context(parser: argparse.ArgumentParser, certfile: Optional[str], keyfile: Optional[str]) -> Optional[ssl.SSLContext]:
    if keyfile and not certfile:
        parser.error("--keyfile needs --certfile")
    if not certfile:
        return None
    for what, name in (("certificate", certfile), ("key", keyfile)):
        if name is not None and not os.path.isfile(name):
            parser.error(f"the {what} file {name!r} does not exist")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(certfile, keyfile)
    except ssl.SSLError as exc:
        hint = "" if keyfile else " (is the private key in another file? pass it with --keyfile)"
        parser.error(f"cannot load the certificate {certfile!r}: {exc.reason or exc}{hint}")
    except OSError as exc:
        parser.error(f"cannot read the certificate {certfile!r}: {exc.strerror or exc}")
    return context


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command != "serve":
        parser.print_help()
        return 2
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    ssl_context = _tls_context(parser, args.certfile, args.keyfile)
    try:
        server = build_server(
            args.mode, args.host, args.port,
            max_message_size=args.max_message_size, max_connections=args.max_connections or None,
            ping_interval=args.ping_interval, ssl=ssl_context, backend=args.backend,
        )
    except ImportError as exc:
        print(f"wsframe: backend {args.backend!r} is not available: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"wsframe: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1

    secure = ssl_context is not None
    from . import __version__

    lines: List[str] = [f"wsframe {__version__}: {args.mode} server, backend {server.backend}"]
    for sock in server.sockets:
        address = format_address(sock.getsockname())
        lines.append(f"  page       {'https' if secure else 'http'}://{address}/")
        lines.append(f"  websocket  {'wss' if secure else 'ws'}://{address}/")
    lines.append("Ctrl-C to stop.")
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
