"""A blocking WebSocket client: ``with wsframe.connect("ws://host/path") as ws: ...``.

The client side of the same :class:`~.connection.WebSocket` the server's
handlers get (role: client), over a socket opened here: directly (each
address of the name in turn, within ``open_timeout``), through a proxy
(HTTP ``CONNECT``, or SOCKS with the optional ``python-socks``), or on a
Unix domain socket; TLS for ``wss://`` verifies the certificate and the host
name by default. Keepalive and timeouts run on the process-wide maintenance
thread: no thread per client.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import ipaddress
import logging
import socket
import ssl
import threading
import urllib.parse
import urllib.request
from dataclasses import dataclass
from time import monotonic
from typing import Any, Iterator, List, Optional, Sequence, Tuple

from ..options import Options
from ..protocol import handshake as hs
from ..protocol.connection import ClientConnection
from ..protocol.events import Accepted, Rejected
from .connection import WebSocket
from .maintenance import shared

__all__ = ["connect", "parse_uri", "URI", "InvalidURI", "InvalidStatus", "InvalidHandshake", "ProxyError"]

logger = logging.getLogger("wsframe.client")

_REDIRECTS = (301, 302, 303, 307, 308)
_MAX_BODY = 65536  # of an HTTP error response kept for InvalidStatus
#: Request headers that carry credentials: never sent on to another origin (as urllib3 and requests drop them).
_CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})


class InvalidURI(ValueError):
    """The URI is not a ws:// or wss:// URI (or a redirect pointed somewhere a client may not follow)."""


class InvalidHandshake(hs.HandshakeError):
    """The server's answer broke RFC 6455: a wrong Sec-WebSocket-Accept, an unrequested subprotocol or extension."""

    def __init__(self, reason: str) -> None:
        super().__init__(0, reason)


class InvalidStatus(hs.HandshakeError):
    """The server answered the upgrade with another HTTP status; ``response`` holds it, ``body`` its body."""

    def __init__(self, response: hs.Response) -> None:
        super().__init__(response.status, f"server rejected the upgrade: HTTP {response.status} {response.reason}",
                         response.headers.items())
        self.response = response

    @property
    def body(self) -> bytes:
        return self.response.body


class ProxyError(ConnectionError):
    """The proxy refused or failed the tunnel."""


@dataclass(frozen=True)
class URI:
    """A parsed ws:// or wss:// URI."""

    secure: bool
    host: str
    port: int
    resource: str  # path and query: the request target
    user_info: Optional[Tuple[str, str]] = None

    @property
    def host_header(self) -> str:
        """The Host header value: the port only when it is not the scheme's default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.secure else 80
        return host if self.port == default else f"{host}:{self.port}"

    def __str__(self) -> str:
        return f"{'wss' if self.secure else 'ws'}://{self.host_header}{self.resource}"


def parse_uri(uri: str) -> URI:
    """Parse a WebSocket URI (RFC 6455 section 3); :class:`InvalidURI` if it is not one."""
    try:
        parts = urllib.parse.urlsplit(uri)
        port = parts.port
    except ValueError as exc:
        raise InvalidURI(f"{uri!r} is not a valid URI: {exc}") from None
    if parts.scheme not in ("ws", "wss"):
        raise InvalidURI(f"{uri!r} is not a ws:// or wss:// URI")
    if parts.fragment:
        raise InvalidURI(f"{uri!r}: a WebSocket URI has no fragment")
    if not parts.hostname:
        raise InvalidURI(f"{uri!r} has no host")
    secure = parts.scheme == "wss"
    resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    user_info = None
    if parts.username is not None or parts.password is not None:
        user_info = (urllib.parse.unquote(parts.username or ""), urllib.parse.unquote(parts.password or ""))
    return URI(secure, parts.hostname, port or (443 if secure else 80), resource, user_info)


def connect(
    uri: str,
    *,
    sock: Optional[socket.socket] = None,
    unix_path: Optional[str] = None,
    server_hostname: Optional[str] = None,
    **options: Any,
) -> WebSocket:
    """Open a WebSocket connection to ``uri``; use the result as a context manager.

    ``sock`` is an already connected socket to use, ``unix_path`` a Unix
    domain socket to connect to (the URI still gives the Host header and
    the path); ``server_hostname`` overrides the name TLS checks. ``options``
    are :class:`wsframe.options.Options` fields (``subprotocols``,
    ``additional_headers``, ``origin``, ``user_agent``, ``proxy``, timeouts,
    limits, ``ssl`` ...). User info in the URI (``ws://user:pass@host/``) is
    sent as HTTP Basic ``Authorization``, unless ``additional_headers`` has
    an ``Authorization`` of its own.

    ``open_timeout`` bounds the whole opening: name lookup, TCP, the proxy,
    TLS, the handshake, and every redirect together.

    Redirects (301, 302, 303, 307, 308) are followed up to ``max_redirects``,
    never from wss:// to ws://. Credentials follow a redirect only within the
    origin (same scheme, host and port): to another origin the URI's user
    info and the ``Authorization``, ``Proxy-Authorization`` and ``Cookie``
    headers of ``additional_headers`` are dropped, for the rest of the
    redirects. A connection over ``unix_path``, or with ``server_hostname``
    (the name TLS checks is no longer the URI's host), follows redirects
    within the origin only (another origin is :class:`InvalidURI`, as in
    websockets), and one over ``sock`` none (:class:`InvalidStatus`).

    Raises :class:`InvalidURI`, :class:`InvalidStatus` (the HTTP response
    is on it), :class:`InvalidHandshake`, ``TimeoutError`` after
    ``open_timeout``, and ``OSError`` naming the address and the stage.
    """
    opts = Options.of(options)
    target = parse_uri(uri)
    headers = _header_items(opts.additional_headers)
    deadline = None if opts.open_timeout is None else monotonic() + opts.open_timeout
    for _ in range(opts.max_redirects + 1):
        ws = _new_websocket(sock if sock is not None else open_socket(target, opts, deadline, unix_path), opts,
                            deadline, target)
        try:
            location = ClientHandshake(ws, opts, target, server_hostname, headers).run(deadline)
        except BaseException:
            ws.release()
            raise
        if location is None:
            return ws
        ws.release()
        if sock is not None:
            raise InvalidStatus(hs.Response(302, "Found", hs.Headers([("Location", location)])))
        new = _redirect_target(target, location)
        if target.secure and not new.secure:
            raise InvalidURI(f"refusing a redirect from {target} down to {new}")
        if _same_origin(target, new):
            new = dataclasses.replace(new, user_info=new.user_info or target.user_info)
        elif unix_path is not None:
            raise InvalidURI(f"cannot follow the redirect from {target} to another origin, {new}, "
                             f"over the Unix socket {unix_path}")
        elif server_hostname is not None:  # TLS would check the new host against a name meant for the old one
            raise InvalidURI(f"cannot follow the redirect from {target} to another origin, {new}, "
                             f"with server_hostname={server_hostname!r} overriding the host name TLS checks")
        else:
            headers = [(name, value) for name, value in headers if name.lower() not in _CREDENTIAL_HEADERS]
        logger.info("redirected from %s to %s", target, new)
        target = new
    raise InvalidHandshake(f"more than {opts.max_redirects} redirects")


def _new_websocket(sock: socket.socket, options: Options, deadline: Optional[float], target: URI) -> WebSocket:
    """The client :class:`WebSocket` on ``sock``; its open timer fires at ``deadline``. ``sock`` is closed if this fails."""
    with _closing_on_error(sock):
        peer = _peer(sock)
        if deadline is not None:
            where = f"{target} at {_show(peer)}" if isinstance(peer, tuple) else str(target)
            left = _remaining(deadline, f"the opening handshake with {where}")
            options = dataclasses.replace(options, open_timeout=left)
        return WebSocket(sock, options, shared(), peer, release_on_close=True)


@contextlib.contextmanager
def _closing_on_error(sock: socket.socket) -> Iterator[socket.socket]:
    """Close ``sock`` when the block raises: no failure path leaks a descriptor."""
    try:
        yield sock
    except BaseException:
        sock.close()
        raise


def _same_origin(a: URI, b: URI) -> bool:
    """Same scheme, host and port (RFC 6454): what credentials may follow a redirect within."""
    return (a.secure, a.host.lower(), a.port) == (b.secure, b.host.lower(), b.port)


def _basic(user: str, password: str) -> str:
    """An HTTP Basic credentials value (RFC 7617), UTF-8 encoded."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode("utf-8")).decode("ascii")


def _redirect_target(current: URI, location: str) -> URI:
    """Where a redirect's Location points, relative to ``current``; http(s) URLs name ws(s) endpoints."""
    base = str(current).replace("ws", "http", 1)  # urljoin knows http's rules for relative references
    joined = urllib.parse.urljoin(base, location)
    scheme, rest = joined.split(":", 1) if ":" in joined else ("", joined)
    scheme = {"http": "ws", "https": "wss"}.get(scheme.lower(), scheme.lower())
    return parse_uri(f"{scheme}:{rest}")


def _peer(sock: socket.socket) -> Any:
    try:
        return sock.getpeername()
    except OSError:
        return None


class ClientHandshake:
    """Runs the opening handshake of one client-side :class:`WebSocket` (TLS, request, response)."""

    __slots__ = ("ws", "options", "target", "server_hostname", "additional_headers")

    def __init__(self, ws: WebSocket, options: Options, target: URI, server_hostname: Optional[str],
                 additional_headers: Sequence[Tuple[str, str]]) -> None:
        self.ws = ws
        self.options = options
        self.target = target
        self.server_hostname = server_hostname
        #: The caller's extra request headers, less those a cross-origin redirect dropped.
        self.additional_headers = additional_headers

    def run(self, deadline: Optional[float]) -> Optional[str]:
        """Open the connection; the Location of a redirect instead, or an exception."""
        ws, options, target = self.ws, self.options, self.target
        with ws._read_lock:
            with ws._lock:
                ws.timers.start_open_locked()  # the timer shuts the socket down at the deadline: every read ends
            try:
                return self._run(ws, options, target)
            except (OSError, ssl.SSLError, EOFError) as exc:
                if deadline is not None and monotonic() >= deadline - 0.01:
                    raise TimeoutError(f"opening handshake with {target} timed out") from None
                if isinstance(exc, EOFError):
                    raise InvalidHandshake("the server closed the connection during the opening handshake") from None
                raise

    def _run(self, ws: WebSocket, options: Options, target: URI) -> Optional[str]:
        if target.secure:
            context = options.ssl if options.ssl is not None else ssl.create_default_context()
            if not ws.transport.start_tls(context, server_side=False,
                                          server_hostname=self.server_hostname or target.host):
                raise EOFError
        headers = list(self.additional_headers)
        if target.user_info is not None and not any(name.lower() == "authorization" for name, _ in headers):
            headers.append(("Authorization", _basic(*target.user_info)))
        if options.user_agent is not None:
            headers.append(("User-Agent", options.user_agent))
        conn = ClientConnection(
            target.host_header, target.resource, origin=options.origin, subprotocols=options.subprotocols,
            extra_headers=headers, max_message_size=options.max_message_size, max_fragments=options.max_fragments,
            backend=options.backend, extensions=options.client_extensions(),
        )
        request = conn.handshake_request()
        reader = hs.HeadReader()
        reader.feed(request)
        ws.request = hs.parse_request(reader)
        with ws._lock:
            ws.transport.write_locked(request)
        received = bytearray()
        head = hs.HeadReader()
        while True:
            chunk = ws.transport.read_plain()
            if not chunk:
                raise EOFError
            received += chunk
            if head.feed(chunk):
                break
        response = hs.parse_response(head)
        if response.status in _REDIRECTS and response.headers.get("Location"):
            return response.headers["Location"]
        if response.status != 101:
            body = self._read_body(response, head.rest)
            raise InvalidStatus(hs.Response(response.status, response.reason, response.headers, body))
        conn.receive_data(bytes(received))
        with ws._lock:
            for event in conn.events():
                if isinstance(event, Accepted):
                    ws.response = event.response
                    ws.opened_locked(conn)
                    return None
                if isinstance(event, Rejected):
                    raise InvalidHandshake(event.reason)
        raise InvalidHandshake("incomplete handshake response")  # pragma: no cover - a complete head decides

    def _read_body(self, response: hs.Response, rest: bytes) -> bytes:
        """The body of an error response, as far as Content-Length says (at most 64 KiB)."""
        try:
            length = min(int(response.headers.get("Content-Length") or 0), _MAX_BODY)
        except ValueError:
            length = 0
        body = bytearray(rest[:length])
        while len(body) < length:
            try:
                chunk = self.ws.transport.read_plain()
            except OSError:
                break
            if not chunk:
                break
            body += chunk[: length - len(body)]
        return bytes(body)


def _header_items(headers: Any) -> List[Tuple[str, str]]:
    if headers is None:
        return []
    if isinstance(headers, dict):
        return [(str(k), str(v)) for k, v in headers.items()]
    if isinstance(headers, hs.Headers):
        return headers.items()
    return [(str(k), str(v)) for k, v in headers]


# -- opening the socket ---------------------------------------------------------------------


def open_socket(target: URI, options: Options, deadline: Optional[float], unix_path: Optional[str] = None) -> socket.socket:
    """A connected socket to ``target``: through ``unix_path``, a proxy, or each address of the name in turn."""
    if unix_path is not None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with _closing_on_error(sock):
            sock.settimeout(_remaining(deadline))
            try:
                sock.connect(unix_path)
            except socket.timeout:
                raise TimeoutError(f"timed out connecting to the Unix socket {unix_path}") from None
            except OSError as exc:
                raise type(exc)(exc.errno, f"cannot connect to the Unix socket {unix_path}: {exc.strerror or exc}") from None
            return sock
    proxy = proxy_for(target, options.proxy)
    if proxy is not None:
        return _through_proxy(proxy, target, deadline)
    return _tcp_connect(target.host, target.port, deadline, "connect")


def _remaining(deadline: Optional[float], before: str = "the next step of the opening") -> Optional[float]:
    """The time left of the opening; ``TimeoutError`` naming what it ran out ``before`` when none is."""
    if deadline is None:
        return None
    remaining = deadline - monotonic()
    if remaining <= 0:
        raise TimeoutError(f"open_timeout ran out before {before}")
    return remaining


def _tcp_connect(host: str, port: int, deadline: Optional[float], stage: str) -> socket.socket:
    """Try every address of ``host`` in turn (IPv6 and IPv4 interleaved) until one connects."""
    try:
        infos = _resolve(host, port, deadline)
    except socket.gaierror as exc:
        raise socket.gaierror(exc.errno, f"cannot resolve {host!r} ({stage}): {exc.strerror}") from None
    except TimeoutError:
        raise TimeoutError(f"timed out resolving {host!r} ({stage})") from None
    by_family: List[List[Any]] = [[i for i in infos if i[0] == socket.AF_INET6], [i for i in infos if i[0] != socket.AF_INET6]]
    ordered = [i for pair in _zip_longest(*by_family) for i in pair if i is not None]
    errors: List[str] = []
    for family, kind, proto, _, address in ordered:
        sock = socket.socket(family, kind, proto)
        with _closing_on_error(sock):
            try:
                sock.settimeout(_remaining(deadline))
                sock.connect(address)
            except (socket.timeout, TimeoutError):
                raise TimeoutError(f"timed out connecting to {_show(address)} ({stage})") from None
            except OSError as exc:
                sock.close()
                errors.append(f"{_show(address)}: {exc.strerror or exc}")
                continue
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
    raise ConnectionRefusedError(f"cannot connect to {host}:{port} ({stage}): " + "; ".join(errors))


def _resolve(host: str, port: int, deadline: Optional[float]) -> List[Any]:
    """``getaddrinfo`` within ``deadline``, which it has no timeout of its own for.

    A name (not an address literal) is looked up on a daemon thread, left
    to finish on its own when the deadline passes first.
    """
    if deadline is None or _is_address(host):
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    outcome: List[Any] = []
    done = threading.Event()

    def lookup() -> None:
        try:
            outcome.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except BaseException as exc:  # handed to the caller
            outcome.append(exc)
        done.set()

    threading.Thread(target=lookup, name=f"wsframe-resolve {host}", daemon=True).start()
    if not done.wait(_remaining(deadline)):
        raise TimeoutError(f"timed out resolving {host!r}")
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    infos: List[Any] = outcome[0]
    return infos


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _zip_longest(a: List[Any], b: List[Any]) -> List[Tuple[Any, Any]]:
    n = max(len(a), len(b))
    return [(a[i] if i < len(a) else None, b[i] if i < len(b) else None) for i in range(n)]


def _show(address: Any) -> str:
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def proxy_for(target: URI, proxy: Any) -> Optional[str]:
    """The proxy URL to reach ``target`` through: ``proxy`` itself, or the environment's when True.

    The environment: ``https_proxy`` for wss://, ``http_proxy`` for ws://,
    then ``all_proxy``; ``no_proxy`` exempts hosts, as ``requests`` and
    ``websockets`` read them.
    """
    if proxy is None or proxy is False:
        return None
    if isinstance(proxy, str):
        return proxy
    proxies = urllib.request.getproxies()
    bypass = getattr(urllib.request, "proxy_bypass_environment")  # not in typeshed, but public since 2.7
    if "no" in proxies and bypass(target.host, proxies):
        return None
    return proxies.get("https" if target.secure else "http") or proxies.get("all") or None


def _through_proxy(proxy: str, target: URI, deadline: Optional[float]) -> socket.socket:
    parts = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    scheme = parts.scheme.lower()
    if scheme in ("socks5", "socks5h", "socks4", "socks4a"):
        return _through_socks(proxy, target, deadline)
    if scheme not in ("http", "https"):
        raise InvalidURI(f"unsupported proxy scheme {scheme!r} in {proxy!r}")
    if scheme == "https":
        raise InvalidURI("TLS to the proxy itself (https:// proxies) is not supported; use http://")
    if not parts.hostname:
        raise InvalidURI(f"proxy {proxy!r} has no host")
    sock = _tcp_connect(parts.hostname, parts.port or 8080, deadline, f"proxy {parts.hostname}")
    with _closing_on_error(sock):
        authority = f"[{target.host}]:{target.port}" if ":" in target.host else f"{target.host}:{target.port}"
        lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
        if parts.username is not None:
            lines.append("Proxy-Authorization: " + _basic(urllib.parse.unquote(parts.username),
                                                          urllib.parse.unquote(parts.password or "")))
        try:
            sock.settimeout(_remaining(deadline))
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            head = hs.HeadReader()
            while True:
                sock.settimeout(_remaining(deadline))  # what is left of the opening, not a fresh timeout per recv
                chunk = sock.recv(4096)
                if not chunk:
                    raise ProxyError(f"proxy {parts.hostname} closed the connection before answering CONNECT")
                if head.feed(chunk):
                    break
        except (socket.timeout, TimeoutError):
            raise TimeoutError(f"timed out opening a tunnel through proxy {parts.hostname}") from None
        response = hs.parse_response(head)
        if not 200 <= response.status < 300:  # any 2xx opens the tunnel (RFC 9110 section 9.3.6)
            raise ProxyError(f"proxy {parts.hostname} refused CONNECT {authority}: {response.status} {response.reason}")
        if head.rest:
            raise ProxyError(f"proxy {parts.hostname} sent data before the tunnel was open")
        sock.settimeout(None)
        return sock


#: SOCKS URL schemes: the python-socks proxy type, and whether the proxy resolves the target's name (rdns).
#: socks5:// keeps python-socks' default (None: the proxy resolves), as before socks5h:// and socks4a:// were read.
_SOCKS = {"socks5": ("SOCKS5", None), "socks5h": ("SOCKS5", True), "socks4": ("SOCKS4", False),
          "socks4a": ("SOCKS4", True)}


def _through_socks(proxy: str, target: URI, deadline: Optional[float]) -> socket.socket:
    """A socket tunnelled to ``target`` through a SOCKS proxy, all of it within ``deadline``.

    The TCP connection to the proxy is made here (the proxy's name looked up
    and each address tried within the deadline, as for a direct connection);
    python-socks then negotiates over it, each send and receive given only
    what is left of the deadline, so a proxy answering a byte at a time cannot
    stretch the opening. A target name the client resolves itself (socks4://)
    is looked up here too, within the deadline.
    """
    try:
        from python_socks import ProxyType
        from python_socks.sync import Proxy
    except ImportError:
        raise ImportError("a SOCKS proxy needs python-socks: pip install 'wsframe[socks]'") from None
    parts = urllib.parse.urlsplit(proxy)
    kind, rdns = _SOCKS[parts.scheme.lower()]
    try:
        proxy_port = parts.port or 1080
    except ValueError:
        raise InvalidURI(f"proxy {proxy!r} has an invalid port") from None
    if not parts.hostname:
        raise InvalidURI(f"proxy {proxy!r} has no host")
    name = f"SOCKS proxy {_show((parts.hostname, proxy_port))}"
    dest = f"{target.host}:{target.port}"
    sock = _tcp_connect(parts.hostname, proxy_port, deadline, name)
    with _closing_on_error(sock):
        dest_host = target.host
        if rdns is False and not _is_address(dest_host):  # python-socks would look it up with no bound
            try:
                infos = _resolve(dest_host, target.port, deadline)
            except socket.gaierror as exc:
                raise socket.gaierror(exc.errno, f"cannot resolve {dest_host!r} (for {name}): {exc.strerror}") from None
            except TimeoutError:
                raise TimeoutError(f"timed out resolving {dest_host!r} (for {name})") from None
            ipv4 = [info[4][0] for info in infos if info[0] == socket.AF_INET]
            if not ipv4:
                raise ProxyError(f"{name}: {dest_host!r} has no IPv4 address, which SOCKS4 needs")
            dest_host = ipv4[0]
        settings: Any = dict(proxy_type=getattr(ProxyType, kind), host=parts.hostname, port=proxy_port,
                             username=urllib.parse.unquote(parts.username) if parts.username is not None else None,
                             password=urllib.parse.unquote(parts.password) if parts.password is not None else None,
                             rdns=rdns)
        bounded = _DeadlineSocket(sock, deadline, f"negotiating with {name} for {dest}")
        try:
            left = _remaining(deadline, f"negotiating with {name} for {dest}")
            forward: Any = _Connected(bounded)  # python-socks >= 3 asks `forward` for the socket: only connect()
            Proxy(**settings, forward=forward).connect(dest_host, target.port, timeout=left)
        except Exception as exc:
            if isinstance(exc, TimeoutError):
                raise TimeoutError(f"timed out negotiating with {name} for {dest}") from None
            raise ProxyError(f"{name} could not reach {dest}: {exc}") from None
        sock.settimeout(None)
        return sock  # already TCP_NODELAY: _tcp_connect made it


class _DeadlineSocket:
    """``sock`` as python-socks uses it (sendall, recv, close), each call bounded by what is left of ``deadline``."""

    def __init__(self, sock: socket.socket, deadline: Optional[float], stage: str) -> None:
        self.sock = sock
        self.deadline = deadline
        self.stage = stage

    def sendall(self, data: bytes, flags: int = 0) -> None:
        self.sock.settimeout(_remaining(self.deadline, self.stage))
        self.sock.sendall(data, flags)

    def recv(self, size: int, flags: int = 0) -> bytes:
        self.sock.settimeout(_remaining(self.deadline, self.stage))
        return self.sock.recv(size, flags)

    def settimeout(self, timeout: Optional[float]) -> None:
        pass  # the deadline decides, call by call

    def close(self) -> None:
        self.sock.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)


class _Connected:
    """What python-socks 3 takes as the ``forward`` proxy: it hands over the socket already connected to the proxy."""

    def __init__(self, sock: _DeadlineSocket) -> None:
        self.sock = sock

    def connect(self, *args: Any, **kwargs: Any) -> Any:
        return self.sock
