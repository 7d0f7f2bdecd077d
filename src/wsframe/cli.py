"""Command line: ``python -m wsframe serve|connect`` (installed as the ``wsframe`` script too).

::

    python -m wsframe serve --mode echo --host 127.0.0.1 --port 8080
    python -m wsframe serve --mode chat --certfile cert.pem --keyfile key.pem
    python -m wsframe connect ws://127.0.0.1:8080/

``serve``: ``echo`` sends every message back as it came (text or binary);
``chat`` broadcasts each message to every connected client. A plain GET of
``/`` on the same port returns a demo page that connects back. Ctrl-C or
SIGTERM closes every connection with 1001 and exits.

``connect``: an interactive client, like ``wscat``. Every line read from
standard input is sent as a text message; what arrives is printed on
standard output, ``< `` and the text, or ``< [binary N bytes]`` and the first
16 bytes in hex. The end of input (Ctrl-D) closes with 1000 and exits 0 once
the closing handshake is done; Ctrl-C (or SIGTERM) closes with 1000 too and
exits 130 (143); a close by the server prints its code and reason and exits
0 for 1000 or 1001, 1 otherwise. Status lines and errors (one line each,
exit status 1, no traceback) go to standard error.
"""

from __future__ import annotations

import argparse
import codecs
import locale
import logging
import os
import queue
import re
import select
import signal
import socket
import ssl
import sys
import threading
from time import monotonic
from typing import IO, Any, Dict, List, Optional, Sequence, Tuple, Union

from .options import option_docs
from .protocol.connection import DEFAULT_MAX_MESSAGE_SIZE
from .sync.connection import WebSocket
from .sync.server import EventHandler, Server, format_address, serve

__all__ = ["main", "build_server", "demo_page", "format_message"]

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
    """Send every message back, text as text and binary as binary (blocking style)."""
    for message in ws:
        ws.send(message)


class Echo(EventHandler):
    """Send every message back (event style, on the reactor)."""

    def on_message(self, message: Union[str, bytes]) -> None:
        self.send(message)


class Chat(EventHandler):
    """Send every message to every connected client, the sender included (event style)."""

    def on_message(self, message: Union[str, bytes]) -> None:
        self.broadcast(message)


def build_server(
    mode: str = "echo",
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    threaded: bool = False,
    **options: Any,
) -> Any:
    """The CLI's server, not started: ``mode`` handler plus the demo page at ``/``.

    On the reactor (event-style handlers, one thread) unless ``threaded``: a
    thread per connection with blocking handlers, so both can be measured
    the same way. ``options`` go to :func:`wsframe.serve`.
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

    if not threaded:
        return serve(Echo if mode == "echo" else Chat, host, port, process_request=process_request, **options)

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


def _delay(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value >= 0:  # also refuses NaN
        raise argparse.ArgumentTypeError("a delay cannot be negative")
    return value


_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # an HTTP header name (RFC 7230 section 3.2.6)


def _header(text: str) -> Tuple[str, str]:
    name, colon, value = text.partition(":")
    name = name.strip()
    if not colon or not _TOKEN.fullmatch(name):
        raise argparse.ArgumentTypeError(f"{text!r} is not a header: write it as 'Name: value'")
    return name, value.strip()


def _ws_uri(text: str) -> str:
    from .sync.client import InvalidURI, parse_uri

    uri = text if "://" in text else f"ws://{text}"
    try:
        parse_uri(uri)
    except InvalidURI as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return uri


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
    run.add_argument("--no-compression", action="store_true",
                     help="decline permessage-deflate (default: the 'deflate' setting, see the README)")
    run.add_argument("--threaded", action="store_true",
                     help="a thread per connection with blocking handlers, instead of the reactor's "
                          "event-style handlers on one thread (default: the reactor)")
    run.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"),
                     help="logging level (default: info)")

    client = commands.add_parser(
        "connect",
        help="an interactive client: send lines typed, print messages received",
        description="Connect to a WebSocket server: every line read from standard input is sent as a text "
                    "message, every message received is printed ('< ' and the text, or a summary of binary "
                    "data). End of input (Ctrl-D) closes with 1000 and exits 0; Ctrl-C closes with 1000 and "
                    "exits 130; a close by the server prints its code and reason and exits 0 for 1000 or "
                    "1001, 1 otherwise. Errors are one line on standard error, exit status 1.",
    )
    client.add_argument("uri", type=_ws_uri, metavar="URI",
                        help="ws:// or wss:// URI; without a scheme, ws:// is assumed (127.0.0.1:8080/chat)")
    client.add_argument("--header", action="append", type=_header, default=[], metavar="'NAME: VALUE'",
                        dest="headers", help="an extra request header (repeatable)")
    client.add_argument("--subprotocol", action="append", default=[], metavar="NAME", dest="subprotocols",
                        help="offer this subprotocol (repeatable, in preference order)")
    client.add_argument("--origin", metavar="ORIGIN", help="the Origin header to send (default: none)")
    client.add_argument("--insecure", action="store_true",
                        help="wss:// without verifying the certificate or the host name (development servers "
                             "with self-signed certificates only; a warning is printed)")
    proxy = client.add_mutually_exclusive_group()
    proxy.add_argument("--proxy", metavar="URL",
                       help="connect through this proxy (http://, socks5://, socks4://; default: the "
                            "https_proxy, http_proxy, all_proxy and no_proxy environment variables)")
    proxy.add_argument("--no-proxy", action="store_true", help="connect directly, whatever the environment says")
    client.add_argument("--backend", choices=("cython", "python"), help=_option_help("backend"))
    client.add_argument("--no-compression", action="store_true", help="do not offer permessage-deflate")
    client.add_argument("--open-timeout", type=_seconds, default=10.0, metavar="SECONDS",
                        help="time to connect, run TLS and the HTTP upgrade (default: 10); 'none' waits forever")
    client.add_argument("--wait", type=_delay, default=0.0, metavar="SECONDS",
                        help="at the end of input, keep printing what arrives for up to SECONDS before "
                             "closing, so replies to piped input are seen (default: 0)")
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
    if args.command == "connect":
        return run_client(args)
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
            args.mode, args.host, args.port, threaded=args.threaded,
            max_message_size=args.max_message_size, max_connections=args.max_connections or None,
            ping_interval=args.ping_interval, ssl=ssl_context, backend=args.backend,
            compression=None if args.no_compression else "deflate",
        )
    except ImportError as exc:
        print(f"wsframe: backend {args.backend!r} is not available: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"wsframe: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1

    secure = ssl_context is not None
    from . import __version__

    style = "a thread per connection" if args.threaded else "reactor"
    lines: List[str] = [f"wsframe {__version__}: {args.mode} server ({style}), backend {server.backend}"]
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


# -- connect: the interactive client -----------------------------------------------------------
#
# Two threads. The main thread reads standard input and sends each line
# (WebSocket.send is thread-safe); it also owns the end: it closes the
# connection and joins the other one. A receiver thread prints every
# message, flushed one by one, and wakes the main thread when the connection
# is over. On POSIX the main thread waits in select() on standard input and
# on a wake-up pipe, so the receiver (or a signal handler) can end a wait for
# a line at any time without raising anything inside wsframe's code. Windows
# cannot select() on a console or a pipe: there a daemon thread reads the
# lines and the main thread polls for them.

#: Exit statuses: 0 after a close with 1000 or 1001, 1 for any other end or
#: an error, 2 for a usage error, 128 + the signal number after Ctrl-C
#: (130) or SIGTERM (143), which still close normally with 1000.
EXIT_OK, EXIT_ERROR = 0, 1

_CLOSE_NAMES = {
    1000: "normal closure", 1001: "going away", 1002: "protocol error", 1003: "unsupported data",
    1005: "no status code", 1006: "connection lost without a closing handshake", 1007: "invalid data",
    1008: "policy violation", 1009: "message too big", 1010: "extension required", 1011: "internal error",
}

# On a terminal, control characters from the server are shown escaped (\x1b), never interpreted.
_CONTROLS: Dict[int, str] = {
    c: f"\\x{c:02x}" for c in [*range(0x00, 0x20), *range(0x7F, 0xA0)] if c not in (0x09, 0x0A)
}


def format_message(message: Union[str, bytes], escape: bool = False) -> str:
    """How ``connect`` prints a message: ``< text``, or ``< [binary N bytes]`` and the first 16 bytes in hex.

    ``escape`` shows control characters (but tab and newline) as ``\\xNN``.
    """
    if isinstance(message, str):
        return "< " + (message.translate(_CONTROLS) if escape else message)
    size = len(message)
    line = f"< [binary {size} byte{'' if size == 1 else 's'}]"
    if size:
        line += " " + bytes(message[:16]).hex(" ")
    if size > 16:
        line += " ..."
    return line


def _describe_close(code: Optional[int], reason: str) -> str:
    if code is None:
        return "connection closed"
    return f"connection closed: {code} {reason or '(' + _CLOSE_NAMES.get(code, 'no reason given') + ')'}"


def describe_error(exc: BaseException, uri: str) -> str:
    """One line saying why connecting to ``uri`` (or talking over it) failed."""
    from .sync.client import InvalidHandshake, InvalidStatus, ProxyError, parse_uri

    target = parse_uri(uri)
    where = f"{target.host}:{target.port}"
    if isinstance(exc, InvalidStatus):
        response = exc.response
        line = f"{where} refused the WebSocket upgrade: HTTP {response.status} {response.reason}".rstrip()
        body = response.body.decode("utf-8", "replace").strip().splitlines()
        if body and body[0].strip():
            text = body[0].strip()
            line += f" ({text[:120]}{'...' if len(text) > 120 else ''})"
        return line
    if isinstance(exc, InvalidHandshake):
        hint = "" if target.secure or "closed the connection" not in exc.reason else " (is it a wss:// server?)"
        return f"invalid handshake from {where}: {exc.reason}{hint}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        why = exc.verify_message or exc.reason or str(exc)
        return (f"TLS certificate verification failed for {where}: {why} "
                "(a development server with a self-signed certificate? --insecure skips the check)")
    if isinstance(exc, ssl.SSLError):
        why = exc.reason or str(exc)
        hint = " (is it a ws:// server? this URI says wss://)" if "WRONG_VERSION_NUMBER" in str(why).upper() else ""
        return f"TLS handshake with {where} failed: {why}{hint}"
    if isinstance(exc, ProxyError):
        return str(exc)
    if isinstance(exc, socket.gaierror):
        return exc.strerror or str(exc)
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return str(exc) or f"timed out connecting to {where}"
    if isinstance(exc, OSError):
        if exc.strerror and exc.args and len(exc.args) > 1:
            return f"cannot connect to {where}: {exc.strerror}"
        return str(exc) or f"cannot connect to {where}: {type(exc).__name__}"
    if isinstance(exc, (ImportError, ValueError)):  # a missing backend or module; a header or subprotocol refused
        return str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _status(text: str) -> None:
    """A status or error line on standard error (never a message: those go to standard output)."""
    stream = sys.stderr
    if stream is None:  # pragma: no cover - pythonw
        return
    try:
        try:
            stream.write(text + "\n")
        except UnicodeEncodeError:
            encoding = getattr(stream, "encoding", None) or "ascii"
            stream.write((text + "\n").encode(encoding, "backslashreplace").decode(encoding))
        stream.flush()
    except (OSError, ValueError):  # pragma: no cover - standard error closed
        pass


class _Printer:
    """Writes messages to a stream, flushed one by one; a closed reader (``| head``) just stops it."""

    def __init__(self, stream: Optional[IO[str]]) -> None:
        self.stream = stream
        self.broken = stream is None
        try:
            self.escape = bool(stream is not None and stream.isatty())
        except (AttributeError, ValueError):  # pragma: no cover - an odd replacement stream
            self.escape = False

    def message(self, message: Union[str, bytes]) -> None:
        stream = self.stream
        if self.broken or stream is None:
            return
        text = format_message(message, self.escape) + "\n"
        try:
            try:
                stream.write(text)
            except UnicodeEncodeError:  # the terminal's encoding cannot show it: escapes instead
                encoding = getattr(stream, "encoding", None) or "ascii"
                stream.write(text.encode(encoding, "backslashreplace").decode(encoding))
            stream.flush()
        except (OSError, ValueError):  # EPIPE: nobody reads any more
            self.broken = True
            try:  # so the interpreter's last flush does not complain either
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, stream.fileno())
                os.close(devnull)
            except (OSError, ValueError, AttributeError):  # pragma: no cover
                pass


class _Woken(Exception):
    """The wait for a line was ended by :meth:`_Lines.wake` (the connection ended, or a signal)."""


class _Lines:
    """Lines typed on standard input, waited for in the calling thread; ``wake()`` ends the wait from anywhere."""

    def next_line(self) -> Optional[str]:  # pragma: no cover - interface
        """The next line without its line ending; None at the end of input; raises _Woken once woken."""
        raise NotImplementedError

    def wake(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def signal_fd(self) -> int:
        """A non-blocking descriptor for ``signal.set_wakeup_fd()``, or -1.

        A signal the kernel delivers to another thread must still end the
        main thread's wait: Python runs handlers in the main thread only.
        """
        return -1

    def close(self) -> None:
        pass


def _chomp(line: str) -> str:
    return line[:-1] if line.endswith("\r") else line


class _SelectLines(_Lines):
    """POSIX: ``select()`` on the input and on a wake-up pipe, ``os.read()`` what is there.

    ``wake()`` only sets a flag and writes a byte to the pipe, so it is safe
    from another thread and from a signal handler. ``fd`` None: no input at
    all (standard input closed), only a wake ends the wait.
    """

    def __init__(self, fd: Optional[int], encoding: str) -> None:
        self._fd = fd
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._decoder = codecs.getincrementaldecoder(encoding)("replace")
        self._pending = ""
        self._scanned = 0  # no newline in _pending before this index
        self._eof = False
        self._woken = False

    def signal_fd(self) -> int:
        return self._wake_w

    def wake(self) -> None:
        self._woken = True
        if self._wake_w < 0:
            return
        try:
            os.write(self._wake_w, b"\0")
        except OSError:  # the pipe is full (woken already)
            pass

    def next_line(self) -> Optional[str]:
        while True:
            if self._woken:
                raise _Woken
            newline = self._pending.find("\n", self._scanned)
            if newline >= 0:
                line, self._pending, self._scanned = self._pending[:newline], self._pending[newline + 1:], 0
                return _chomp(line)
            self._scanned = len(self._pending)
            select_fds: List[int]
            if self._fd is None:  # no input at all: only a wake ends the wait
                select_fds = [self._wake_r]
            elif self._eof:
                if not self._pending:
                    return None
                line, self._pending, self._scanned = self._pending, "", 0  # a last line without a newline
                return _chomp(line)
            else:
                select_fds = [self._fd, self._wake_r]
            ready, _, _ = select.select(select_fds, [], [])
            if self._fd is not None and self._fd in ready and not self._woken and not self._eof:
                try:
                    data = os.read(self._fd, 65536)
                except OSError:  # EIO: the terminal went away
                    data = b""
                if data:
                    self._pending += self._decoder.decode(data)
                else:
                    self._pending += self._decoder.decode(b"", True)
                    self._eof = True

    def close(self) -> None:
        """Close the pipe; call it once no other thread can call :meth:`wake` any more."""
        fds, self._wake_r, self._wake_w = (self._wake_r, self._wake_w), -1, -1
        for fd in fds:
            if fd >= 0:
                os.close(fd)


class _ThreadLines(_Lines):
    """Where ``select()`` takes only sockets (Windows): a daemon thread reads lines, ``next_line()`` polls for them.

    ``wake()`` only sets a flag (safe in a signal handler: it takes no lock).
    """

    _POLL = 0.1

    def __init__(self, stream: Optional[IO[str]]) -> None:
        self._queue: "queue.Queue[Optional[str]]" = queue.Queue()
        self._woken = False
        self._eof = False
        if stream is None:
            return
        threading.Thread(target=self._read, args=(stream,), name="wsframe-stdin", daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        try:
            for line in iter(stream.readline, ""):
                self._queue.put(line)
        except (OSError, ValueError):
            pass
        finally:
            self._queue.put(None)

    def wake(self) -> None:
        self._woken = True

    def next_line(self) -> Optional[str]:
        while True:
            if self._woken:
                raise _Woken
            if self._eof:  # no input at all, or taken already: wait to be woken
                threading.Event().wait(self._POLL)
                continue
            try:
                line = self._queue.get(timeout=self._POLL)
            except queue.Empty:
                continue
            if line is None:
                self._eof = True
                return None
            return _chomp(line[:-1] if line.endswith("\n") else line)


def _stdin_lines() -> _Lines:
    stdin = sys.stdin
    encoding = getattr(stdin, "encoding", None) or locale.getpreferredencoding(False)
    if os.name != "posix":  # pragma: no cover - exercised on Windows only
        return _ThreadLines(stdin)
    fd: Optional[int]
    try:
        fd = stdin.fileno() if stdin is not None else None
    except (AttributeError, OSError, ValueError):
        fd = None
    if fd is not None:
        try:
            os.fstat(fd)
        except OSError:
            fd = None
    return _SelectLines(fd, encoding)


def _client_options(args: argparse.Namespace) -> Dict[str, Any]:
    options: Dict[str, Any] = {
        "subprotocols": tuple(args.subprotocols),
        "additional_headers": tuple(args.headers),
        "origin": args.origin,
        "proxy": None if args.no_proxy else (args.proxy or True),
        "backend": args.backend,
        "open_timeout": args.open_timeout,
        "compression": None if args.no_compression else "deflate",
    }
    if args.insecure:
        if args.uri.startswith("wss://"):
            _status("wsframe: warning: --insecure: the server's certificate and host name are NOT verified; "
                    "anyone on the network path can read and change this connection (development only)")
        else:
            _status("wsframe: warning: --insecure has no effect on ws:// (the connection is not encrypted at all)")
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        options["ssl"] = context
    return options


def run_client(args: argparse.Namespace) -> int:
    """``wsframe connect``: the exit status (see the module docstring)."""
    from .protocol.errors import ConnectionClosed
    from .sync.client import connect

    logging.basicConfig(level=logging.WARNING, format="wsframe: %(message)s")
    uri: str = args.uri
    try:
        ws = connect(uri, **_client_options(args))
    except KeyboardInterrupt:
        _status("wsframe: interrupted")
        return 128 + signal.SIGINT
    except Exception as exc:
        _status(f"wsframe: {describe_error(exc, uri)}")
        return EXIT_ERROR

    printer = _Printer(sys.stdout)
    lines = _stdin_lines()
    failures: List[BaseException] = []
    stopped_by: List[int] = []  # the signal that asked us to stop

    def receive() -> None:
        try:
            for message in ws:
                printer.message(message)
                if printer.broken:
                    break
        except BaseException as exc:  # pragma: no cover - recv() raises nothing but ConnectionClosed here
            failures.append(exc)
        finally:
            lines.wake()

    def on_signal(signum: int, frame: Any) -> None:
        if stopped_by:  # a second one while closing: stop now
            raise KeyboardInterrupt
        stopped_by.append(signum)
        lines.wake()

    previous: Dict[int, Any] = {}
    previous_fd: Optional[int] = None
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, getattr(signal, "SIGTERM", None)):
            if signum is not None:
                previous[signum] = signal.signal(signum, on_signal)
        if lines.signal_fd() >= 0:
            previous_fd = signal.set_wakeup_fd(lines.signal_fd(), warn_on_full_buffer=False)
    connected = f"connected to {uri}"
    if ws.subprotocol is not None:
        connected += f" (subprotocol {ws.subprotocol})"
    elif args.subprotocols:
        connected += " (the server chose no subprotocol)"
    interactive = False
    try:
        interactive = sys.stdin is not None and sys.stdin.isatty()
    except (AttributeError, ValueError):  # pragma: no cover
        pass
    if interactive:
        connected += "; type a message and Enter to send it, Ctrl-D to close"
    _status(connected)

    receiver = threading.Thread(target=receive, name="wsframe-receive", daemon=True)
    try:
        receiver.start()
        try:
            end_of_input = False
            try:
                while not stopped_by:
                    line = lines.next_line()
                    if line is None:
                        end_of_input = True
                        break
                    ws.send(line)
            except (_Woken, ConnectionClosed):
                pass
            except Exception as exc:  # a send that timed out (the server does not read), ...
                if ws.open:
                    failures.append(exc)
            if end_of_input and args.wait:
                deadline = monotonic() + args.wait
                while receiver.is_alive() and not stopped_by and monotonic() < deadline:
                    receiver.join(min(0.05, max(0.0, deadline - monotonic())))
            ws.close(1000)  # after the server's close: nothing to do; else the closing handshake
            receiver.join(5.0)
        except KeyboardInterrupt:  # the second Ctrl-C: no more waiting
            ws.abort(1006, "interrupted")
            receiver.join(1.0)
            _status(_describe_close(ws.close_code, ws.close_reason))
            return 128 + (stopped_by[0] if stopped_by else signal.SIGINT)
    finally:
        if previous_fd is not None:
            signal.set_wakeup_fd(previous_fd)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if not receiver.is_alive():  # else it may still wake() it: the pipe goes with the process
            lines.close()

    code, reason = ws.close_code, ws.close_reason
    _status(_describe_close(code, reason))
    for failure in failures:
        _status(f"wsframe: {describe_error(failure, uri)}")
    if stopped_by:
        return 128 + stopped_by[0]
    if failures:
        return EXIT_ERROR
    return EXIT_OK if code in (1000, 1001) else EXIT_ERROR
