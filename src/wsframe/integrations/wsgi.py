"""A WebSocket endpoint inside a WSGI application, on the server it already runs on.

WSGI has no WebSocket support, but two common threaded servers give the
application the request's socket: gunicorn (``environ["gunicorn.socket"]``,
its ``gthread`` worker) and the werkzeug development server
(``environ["werkzeug.socket"]``, what ``flask run`` starts). :func:`accept`
takes that socket over from inside a view: it rebuilds the upgrade request
from the environ, checks it with the same rules, limits and hooks as
:func:`wsframe.serve`, answers 101 and returns the same
:class:`~wsframe.sync.connection.WebSocket` that ``serve()`` handlers get::

    from wsframe.integrations import wsgi

    def app(environ, start_response):          # any WSGI application
        try:
            ws = wsgi.accept(environ, max_message_size=2**20)
        except wsgi.Refused as refusal:        # not a valid upgrade: a plain HTTP answer
            return refusal(environ, start_response)
        with ws:                               # the closing handshake happens at the end
            for message in ws:
                ws.send(message)
        return wsgi.finish(ws, start_response)

or, the same in one line, ``app = wsgi.websocket_app(handler, **options)``.

How the WSGI response ends. When the WebSocket is over (``close()``, the
end of ``with``), the connection is finished at the TCP level: input still
unread is drained (so the kernel does not answer it with a reset that could
eat our last frames), then the socket is shut down in both directions. The
server can no longer put a byte on it or read another request from it,
whatever the application returns: its attempt to write the response head
fails with EPIPE, which gunicorn and werkzeug treat as a client that went
away (quietly), and its next read sees end of file, so the connection is
never reused for keep-alive. Both servers then close the socket as usual.
:func:`finish` returns a ``101 Switching Protocols`` response with no body
(so access logs show 101); a framework's own empty response works the same.

Early frames. Bytes the server read past the request head (a client may
send frames right behind its request) are taken from the server's buffer
and given to the WebSocket: gunicorn's parser keeps them in its unreader,
werkzeug in the ``BufferedReader`` that is ``wsgi.input``. Other servers'
buffers are not known: bytes they read ahead would be lost.

TLS. When the server terminates TLS itself (``gunicorn --certfile``, the
werkzeug server's ``ssl_context``), the socket is an ``ssl.SSLSocket``
whose TLS state lives inside it and cannot be moved to the memory-BIO TLS
of wsframe's transport. The WebSocket then runs on one end of a socket
pair, and one relay thread per connection carries the bytes between the
other end and the ``SSLSocket`` (all TLS calls in that one thread, as
OpenSSL requires).

Threads. A WebSocket holds the server thread that runs the view for its
whole life (one gunicorn ``--threads`` slot, one werkzeug request thread),
plus the relay thread with TLS; keepalive and slow writes are done by one
maintenance thread shared by every connection of the process. Use
gunicorn's ``gthread`` worker with enough ``--threads``: its sync worker
runs one request at a time and is killed by the arbiter after ``--timeout``.

Servers that give the application no socket (waitress, uWSGI, mod_wsgi,
wsgiref and Django's ``runserver``) get :class:`UnsupportedServer`, which
names the server; so do green (gevent, eventlet) workers.
"""

from __future__ import annotations

import functools
import io
import logging
import socket
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple, TypeVar, Union, overload

from ..hooks import plain_http_response
from ..options import Options
from ..protocol import handshake as hs
from ..protocol.connection import ServerConnection
from ..sync.connection import WebSocket
from ..sync.server import _as_handler, format_address, run_handler
from ._handoff import negotiate, read_ahead, read_response, take_over

__all__ = [
    "accept", "finish", "websocket_app", "server_socket", "request_from_environ",
    "Refused", "UnsupportedServer", "SOCKET_KEYS",
]

logger = logging.getLogger("wsframe.server")

#: A WSGI environ, ``start_response`` and application (PEP 3333).
WSGIEnvironment = Dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApplication = Callable[[WSGIEnvironment, StartResponse], Iterable[bytes]]
Handler = Callable[[WebSocket], Any]
H = TypeVar("H", bound=Callable[..., Any])

#: Where servers put the request's socket in the environ, in the order they are looked up.
SOCKET_KEYS: Tuple[str, ...] = ("gunicorn.socket", "werkzeug.socket")

#: Response headers a WSGI application may not set (PEP 3333); ``Upgrade`` stays: a 426 must name it.
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
                         "trailers", "transfer-encoding"})

class UnsupportedServer(RuntimeError):
    """The WSGI server gives the application no socket to take over (or one wsframe cannot use)."""

    def __init__(self, software: Optional[str], why: str) -> None:
        self.software = software
        name = repr(software) if software else "this WSGI server (SERVER_SOFTWARE is not set)"
        super().__init__(
            f"{name} {why}: a WebSocket endpoint needs a server that hands over the request's socket "
            f"(environ {' or '.join(SOCKET_KEYS)}): gunicorn with -k gthread, or the werkzeug development "
            "server (flask run); or run wsframe.serve() on a port of its own"
        )


class Refused(hs.HandshakeError):
    """:func:`accept` did not open a WebSocket; answer the request with :attr:`response` instead.

    Raised before the socket is touched, so the server answers it as any
    other response (keep-alive included). It is a WSGI application itself:
    ``return refusal(environ, start_response)``. ``status``, ``reason``,
    ``headers`` (without hop-by-hop fields, as WSGI requires) and ``body``
    are what a framework's response needs; they are the bytes
    :func:`wsframe.serve` would have sent: 400/405/426/431 for an invalid
    request, 403 for a refused Origin, the ``process_upgrade`` or
    ``process_request`` hook's answer, 426 for a plain HTTP request.
    """

    def __init__(self, response: hs.Response) -> None:
        headers = [(n, v) for n, v in response.headers if n.lower() not in _HOP_BY_HOP]
        super().__init__(response.status, response.reason, headers)
        #: The HTTP response to answer with.
        self.response = response
        #: The response body (bytes).
        self.body = response.body

    @property
    def status_line(self) -> str:
        """``"426 Upgrade Required"``: the status for ``start_response``."""
        return f"{self.status} {self.reason}"

    def __str__(self) -> str:
        text = self.body[:200].decode("utf-8", "replace").strip()
        return f"{self.status_line}: {text}" if text else self.status_line

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> List[bytes]:
        """Answer the request with the refusal (a WSGI application)."""
        start_response(self.status_line, list(self.headers))
        return [self.body]


# -- the API -----------------------------------------------------------------------------


def accept(environ: WSGIEnvironment, **options: Any) -> WebSocket:
    """Take over the connection of this WSGI request and open a WebSocket on it.

    Call it from a view; use the result as a context manager, so that the
    closing handshake happens before the view returns, and return
    :func:`finish` (or any empty response: see the module's docstring).
    ``options`` are :class:`wsframe.options.Options` fields, with the same
    meaning as for :func:`wsframe.serve` (``subprotocols``, ``origins``,
    ``select_subprotocol``, ``process_upgrade``, ``process_request``,
    ``max_message_size``, the request-head limits, timeouts, keepalive,
    ``write_limit``, ``backend``); ``ssl`` and ``max_connections`` belong
    to the WSGI server here and are refused. The WebSocket lives only while
    the view runs: the server closes the socket when the request ends.

    Raises :class:`Refused` (nothing sent yet: answer it) when the request is
    not an acceptable upgrade, and :class:`UnsupportedServer` when the server
    does not expose the socket.
    """
    return _accept(environ, _options(options))


def finish(ws: WebSocket, start_response: StartResponse) -> List[bytes]:
    """End the WSGI response of a request taken over by :func:`accept`: what the view returns.

    Closes ``ws`` first if it is still open (1000, waiting for the peer's
    close up to ``close_timeout``), which finishes the connection (see the
    module's docstring). The response is ``101 Switching Protocols``, empty.
    """
    ws.close_quietly(1000, "")
    start_response("101 Switching Protocols", [])
    return []


@overload
def websocket_app(handler: Handler, /, **options: Any) -> WSGIApplication: ...
@overload
def websocket_app(handler: None = None, /, **options: Any) -> Callable[[Handler], WSGIApplication]: ...


def websocket_app(
    handler: Optional[Handler] = None, /, **options: Any
) -> Union[WSGIApplication, Callable[[Handler], WSGIApplication]]:
    """A WSGI application that runs ``handler(ws)`` for each WebSocket, like :func:`wsframe.serve`.

    Use it as a decorator, with or without options (``@websocket_app`` or
    ``@websocket_app(subprotocols=["chat"])``), or call it; mount the result
    wherever the framework takes a WSGI application. The handler runs in the
    server's request thread; when it returns the connection is closed with
    1000, when it raises with 1011 (logged). Requests that are not valid
    upgrades get the HTTP answer :func:`wsframe.serve` would give.
    """
    opts = _options(options)

    def make(fn: Handler) -> WSGIApplication:
        run = _as_handler(fn)  # refuses an async function now

        def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
            try:
                ws = _accept(environ, opts)
            except Refused as refusal:
                return refusal(environ, start_response)
            run_handler(run, ws)
            return finish(ws, start_response)

        functools.update_wrapper(app, fn)
        return app

    return make if handler is None else make(handler)


def server_socket(environ: WSGIEnvironment) -> socket.socket:
    """The request's socket as the WSGI server exposes it; :class:`UnsupportedServer` when it does not."""
    software = environ.get("SERVER_SOFTWARE")
    for key in SOCKET_KEYS:
        sock = environ.get(key)
        if sock is not None:
            break
    else:
        raise UnsupportedServer(software, f"does not expose the request's socket (no {' or '.join(SOCKET_KEYS)})")
    module = type(sock).__module__
    if module.startswith(("gevent", "eventlet")):
        raise UnsupportedServer(software, f"runs green threads ({module} sockets); wsframe's WebSocket needs OS threads")
    if not isinstance(sock, socket.socket):
        raise UnsupportedServer(software, f"exposes a {type(sock).__name__}, not a socket.socket")
    return sock


def request_from_environ(environ: WSGIEnvironment, options: Optional[Options] = None) -> hs.Request:
    """The request head as the client sent it, rebuilt from the environ and read like ``serve()`` reads one.

    Method, target (``RAW_URI`` / ``REQUEST_URI`` when the server keeps it,
    else the quoted ``SCRIPT_NAME`` + ``PATH_INFO`` and ``QUERY_STRING``),
    version, every ``HTTP_*`` field and ``CONTENT_TYPE`` / ``CONTENT_LENGTH``
    are written out as a head and read by the same reader with the same
    limits (``max_request_line``, ``max_request_headers``,
    ``max_request_size``): :class:`~wsframe.HandshakeError` 400 or 431 as
    ``serve()`` would answer. Field names come back in canonical case
    (``Sec-Websocket-Key``: lookups ignore case) and a field the client
    repeated comes as one, joined with commas, as the servers give it.
    """
    opts = options if options is not None else Options()
    lines = [f"{environ.get('REQUEST_METHOD', 'GET')} {_target(environ)} {environ.get('SERVER_PROTOCOL', 'HTTP/1.0')}"]
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            name = "-".join(part.capitalize() for part in key[5:].split("_"))
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
            name = "Content-Type" if key == "CONTENT_TYPE" else "Content-Length"
        else:
            continue
        if not isinstance(value, str):
            continue  # not a header (a server's own object)
        lines.append(f"{name}: {value}")
    if any("\r" in line or "\n" in line for line in lines):  # would end a line of the rebuilt head
        raise hs.HandshakeError(400, "control character in head")
    text = "\r\n".join(lines)
    try:
        head = (text + "\r\n\r\n").encode("latin-1")
    except UnicodeEncodeError:  # PEP 3333 strings are latin-1: a server bug, or a middleware's
        raise hs.HandshakeError(400, "invalid character in head") from None
    reader = hs.HeadReader(opts.max_request_line, opts.max_request_headers, opts.max_request_size)
    reader.feed(head)
    return hs.parse_request(reader)


# -- the handshake -----------------------------------------------------------------------


def _options(options: Dict[str, Any]) -> Options:
    opts = Options.of(options)
    for name in ("ssl", "max_connections"):
        if name in options and options[name] is not None:
            raise TypeError(f"{name} is the WSGI server's business here (gunicorn --certfile, --threads)")
    return opts


def _accept(environ: WSGIEnvironment, opts: Options) -> WebSocket:
    sock = server_socket(environ)
    label = f"wsgi {format_address(_peer(environ, sock))}"
    if environ.get("HTTP_VERSION") == "2" or str(environ.get("SERVER_PROTOCOL", "")).startswith("HTTP/2"):
        # The socket carries other streams; WebSocket over HTTP/2 (RFC 8441) is not supported.
        raise Refused(hs.error_response(hs.HandshakeError(400, "WebSocket needs HTTP/1.1")))
    try:
        request = request_from_environ(environ, opts)
    except hs.HandshakeError as exc:
        logger.info("%s bad request: %s", label, exc)
        raise Refused(hs.error_response(exc)) from None
    if not request.wants_websocket:
        raise Refused(read_response(plain_http_response(label, request, opts)))
    conn, data = negotiate(request, opts, label)
    if conn is None:
        raise Refused(read_response(data))
    return _take_over(environ, sock, conn, request, data, opts)


def _target(environ: WSGIEnvironment) -> str:
    for key in ("RAW_URI", "REQUEST_URI"):  # gunicorn, werkzeug: the target as sent
        raw = environ.get(key)
        if isinstance(raw, str) and raw:
            return raw
    from urllib.parse import quote

    path = (environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")).encode("latin-1", "replace")
    target = quote(path, safe="/;=,!$&'()*+@:~") or "/"
    query = environ.get("QUERY_STRING")
    return f"{target}?{query}" if query else target


def _peer(environ: WSGIEnvironment, sock: socket.socket) -> Any:
    try:
        return sock.getpeername()
    except OSError:
        return (environ.get("REMOTE_ADDR"), environ.get("REMOTE_PORT"))


_warned_sync = False


def _warn_single_threaded(environ: WSGIEnvironment) -> None:
    global _warned_sync
    if not _warned_sync and "gunicorn.socket" in environ and environ.get("wsgi.multithread") is False:
        _warned_sync = True
        logger.warning("a WebSocket on gunicorn's sync worker blocks the whole worker, and the arbiter kills it "
                       "after --timeout: run gunicorn with -k gthread --threads N")


# -- taking the socket over --------------------------------------------------------------


def _take_over(environ: WSGIEnvironment, sock: socket.socket, conn: ServerConnection, request: hs.Request,
               response: bytes, opts: Options) -> WebSocket:
    _warn_single_threaded(environ)
    leftover = _buffered_input(environ, sock)
    return take_over(sock, conn, request, response, opts, _peer(environ, sock), leftover,
                     via=f"wsgi, {environ.get('SERVER_SOFTWARE', '?')}")


def _buffered_input(environ: WSGIEnvironment, sock: socket.socket) -> bytes:
    """Bytes the server read past the request head (early frames), taken out of its buffer."""
    stream = environ.get("wsgi.input")
    # gunicorn: wsgi.input is a Body over a reader over the parser's unreader, whose buffer holds the read-ahead.
    unreader = getattr(getattr(stream, "reader", None), "unreader", None)
    if unreader is not None:
        take = getattr(unreader, "take_buffered", None)
        if callable(take):
            return bytes(take())
        buf = getattr(unreader, "buf", None)
        if isinstance(buf, io.BytesIO):  # gunicorn before take_buffered()
            data = buf.getvalue()
            unreader.buf = io.BytesIO()
            return data
        return b""
    # werkzeug (http.server): wsgi.input is the BufferedReader over the socket.
    ahead = read_ahead(stream, sock)
    if ahead is not None:
        return ahead
    if stream is not None:
        logger.debug("wsgi.input is a %s: bytes it read ahead cannot be recovered", type(stream).__name__)
    return b""
