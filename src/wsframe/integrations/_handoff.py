"""Taking a connection over from a server that owns its socket (http.server, gunicorn, werkzeug).

One job, shared by :func:`wsframe.integrations.http_server.upgrade` and the
WSGI integration: another server accepted the connection and parsed the
request head; here the upgrade is decided with the same rules and hooks as
:func:`wsframe.serve` (:func:`negotiate`), the bytes that server read past
the head are recovered (:func:`read_ahead`), and the socket becomes a
:class:`~wsframe.sync.connection.WebSocket` (:func:`take_over`).

Why a relay for TLS: an ``ssl.SSLSocket`` keeps its TLS state inside it, and
it cannot be moved to the memory-BIO TLS of wsframe's transport. The
WebSocket then runs on one end of a socket pair and one :class:`TLSRelay`
thread per connection carries the bytes to and from the ``SSLSocket``.

Why the connection is finished on release (:class:`Handoff`): the server
still holds the socket and would write a response on it, or read the next
request; draining unread input (:func:`drain`) and shutting it down both
ways leaves it nothing to do but close it.
"""

from __future__ import annotations

import io
import logging
import selectors
import socket
import ssl
import threading
from time import monotonic
from typing import Any, Dict, Optional, Tuple

from ..options import Options
from ..protocol import handshake as hs
from ..protocol.connection import ServerConnection
from ..sync.connection import WebSocket
from ..sync.maintenance import shared
from ..sync.opening import negotiate_upgrade, new_server_connection
from ..sync.server import format_address

__all__ = [
    "negotiate", "read_response", "read_ahead", "take_over", "HandedOver", "Handoff", "TLSRelay", "drain",
    "tcp_shutdown", "RELAY_LIMIT",
]

logger = logging.getLogger("wsframe.server")

RELAY_CHUNK = 65536  # bytes per read or write
RELAY_LIMIT = 256 * 1024  # bytes the TLS relay holds at most in each direction; at most as much read ahead
DRAIN_READS = 16  # reads of unread input before the socket is shut down


# -- deciding the upgrade ----------------------------------------------------------------


def negotiate(request: hs.Request, options: Options, label: str) -> Tuple[Optional[ServerConnection], bytes]:
    """Decide on an upgrade request another server parsed, exactly as ``serve()`` decides.

    A fresh core (``new_server_connection``: limits, subprotocols, origins,
    compression) and ``negotiate_upgrade`` (the RFC 6455 checks, then
    ``process_upgrade`` and ``select_subprotocol``). ``(conn, response)``: the
    101 to send and the open core; ``(None, response)``: the refusal to send.
    """
    conn = new_server_connection(options)
    accepted, data = negotiate_upgrade(conn, request, options, label)
    return (conn if accepted else None), data


def read_response(data: bytes) -> hs.Response:
    """A serialized response (what :func:`negotiate` refused with) as a Response with its body."""
    reader = hs.HeadReader(len(data) + 2, len(data) + 1, len(data) + 2)
    reader.feed(data)
    head = hs.parse_response(reader)
    return hs.Response(head.status, head.reason, head.headers, reader.rest)


# -- bytes the server read ahead ---------------------------------------------------------


def read_ahead(stream: Any, sock: socket.socket) -> Optional[bytes]:
    """What a ``BufferedReader`` over ``sock`` read past the request head (early frames), without waiting.

    http.server's ``rfile`` (and werkzeug's ``wsgi.input``, the same object)
    buffers ahead; ``read1`` returns what it holds, or reads once if it holds
    nothing, so the socket is non-blocking meanwhile. None when ``stream`` is
    not a ``BufferedReader``: its read-ahead cannot be recovered.
    """
    if not isinstance(stream, io.BufferedReader):
        return None
    timeout = sock.gettimeout()
    try:
        sock.setblocking(False)
        data = stream.read1(RELAY_LIMIT)
    except (OSError, ValueError):
        data = b""
    finally:
        sock.settimeout(timeout)
    return data or b""


# -- the WebSocket on the taken socket ---------------------------------------------------


def take_over(sock: socket.socket, conn: ServerConnection, request: hs.Request, response: bytes,
              options: Options, remote_address: Any, leftover: bytes, *, via: str) -> WebSocket:
    """The open WebSocket on a server's socket, after :func:`negotiate` accepted (``response``: the 101).

    ``leftover``: bytes read past the head, given to the WebSocket first. An
    ``SSLSocket`` gets a :class:`TLSRelay`. When the WebSocket is released
    the connection is finished (:class:`Handoff`): unread input drained and
    the socket shut down both ways, so the server can neither reuse it nor
    reset it by closing over unread bytes. ``via`` names the integration in the log.
    """
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
    relay = TLSRelay(sock) if isinstance(sock, ssl.SSLSocket) else None
    # All TLS calls in the relay's thread; the WebSocket owns its end of the pair, never the server's socket.
    ws = HandedOver(sock if relay is None else relay.inner, options, shared(), remote_address,
                    owns_socket=relay is not None, release_on_close=True)
    ws._handoff = Handoff(sock, relay, options.close_timeout or 10.0)
    ws.request = request
    with ws._lock:
        ws.opened_locked(conn, response)
        if leftover:  # frames that came with the request, read ahead by the server
            conn.receive_data(leftover)
    if relay is not None:
        relay.start(ws.id)
    logger.info("%s open %s from %s (%s%s)", ws.id, request.target, format_address(remote_address), via,
                ", TLS relay" if relay is not None else "")
    return ws


class HandedOver(WebSocket):
    """A WebSocket on a socket taken from another server: when it is released, the connection is finished."""

    __slots__ = ("_handoff",)
    _handoff: Optional[Handoff]

    def release(self) -> None:
        super().release()
        handoff: Optional[Handoff] = getattr(self, "_handoff", None)
        if handoff is not None and handoff.finish():
            logger.info("%s closed %s %s", self.id, self.close_code, self.close_reason)


class Handoff:
    """The server's socket while a WebSocket uses it, and how it is given back finished."""

    __slots__ = ("sock", "relay", "linger", "_lock", "_done")

    def __init__(self, sock: socket.socket, relay: Optional[TLSRelay], linger: float) -> None:
        self.sock = sock
        self.relay = relay
        self.linger = linger
        self._lock = threading.Lock()
        self._done = False

    def finish(self) -> bool:
        """Drain unread input, shut the socket down both ways: the server can neither write nor reuse it.

        True the first time (later calls do nothing).
        """
        with self._lock:
            if self._done:
                return False
            self._done = True
        sock = self.sock
        if self.relay is not None:
            self.relay.stop(self.linger)
        else:
            drain(sock)
        try:
            sock.shutdown(socket.SHUT_RDWR)  # an SSLSocket also forgets its TLS state: later writes fail plainly
        except OSError:
            pass
        return True


def drain(sock: socket.socket) -> None:
    """Read what arrived and nobody will read, without waiting: closing over it would send a reset."""
    timeout = sock.gettimeout()
    try:
        sock.setblocking(False)
        for _ in range(DRAIN_READS):
            if not socket.socket.recv(sock, RELAY_CHUNK):  # raw bytes, also under an SSLSocket
                break
    except OSError:
        pass
    finally:
        try:
            sock.settimeout(timeout)
        except OSError:
            pass


def tcp_shutdown(sock: socket.socket, how: int) -> None:
    """TCP shutdown without touching an SSLSocket's TLS state (its own shutdown() forgets it)."""
    try:
        socket.socket.shutdown(sock, how)
    except OSError:
        pass


# -- TLS ---------------------------------------------------------------------------------


class TLSRelay:
    """Carries bytes between the server's ``SSLSocket`` and a socket pair whose other end the WebSocket uses.

    One thread makes every TLS call (OpenSSL objects are not safe to use
    from two threads at once). Each direction holds at most ``RELAY_LIMIT``
    bytes, so backpressure reaches the WebSocket (its writes wait on the
    pair) and the client (TCP). When the WebSocket shuts its end for
    writing (the server closes first, after the closing handshake), the relay
    sends TLS close_notify and a FIN; :meth:`stop` ends it.
    """

    def __init__(self, tls: ssl.SSLSocket) -> None:
        self.tls = tls
        self.inner, self._outer = socket.socketpair()
        self._wake_r, self._wake_w = socket.socketpair()
        self._stopping: Optional[float] = None  # deadline for what the WebSocket wrote to get out
        self._thread: Optional[threading.Thread] = None

    def start(self, label: str) -> None:
        self._thread = threading.Thread(target=self._run, name=f"wsframe-{label}-tls", daemon=True)
        self._thread.start()

    def stop(self, linger: float) -> None:
        """The WebSocket let go: flush what it wrote (at most ``linger`` s), drain, and end the thread."""
        self._stopping = monotonic() + linger
        try:
            self._wake_w.send(b"\0")
        except OSError:
            pass
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(linger + 1.0)
            if thread.is_alive():  # pragma: no cover - a relay stuck in a system call
                logger.warning("%s: the TLS relay did not stop", thread.name)
        self._wake_r.close()
        self._wake_w.close()

    def _run(self) -> None:
        tls, outer = self.tls, self._outer
        timeout = tls.gettimeout()
        sel = selectors.DefaultSelector()
        down = bytearray()  # decrypted from the client, for the WebSocket
        up = bytearray()  # from the WebSocket, for the client
        retry: Optional[bytes] = None  # a TLS write to repeat exactly (SSL_ERROR_WANT_WRITE)
        tls_in = tls_out = True  # the client may still send / we may still send to it
        outer_in = outer_out = True  # the WebSocket may still write / still take bytes
        down_shut = False
        registered: Dict[int, int] = {}

        def interest(fileobj: socket.socket, mask: int) -> None:
            fd = fileobj.fileno()
            old = registered.get(fd, 0)
            if mask == old:
                return
            if not mask:
                sel.unregister(fileobj)
                del registered[fd]
            elif not old:
                sel.register(fileobj, mask)
                registered[fd] = mask
            else:
                sel.modify(fileobj, mask)
                registered[fd] = mask

        try:
            tls.setblocking(False)
            outer.setblocking(False)
            sel.register(self._wake_r, selectors.EVENT_READ)
            while True:
                progress = True
                while progress:
                    progress = False
                    # client -> WebSocket (recv also returns what OpenSSL already decrypted: pending())
                    while tls_in and len(down) < RELAY_LIMIT:
                        try:
                            data = tls.recv(RELAY_CHUNK)
                        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                            break
                        except OSError:  # close_notify, EOF without it, a reset, a TLS error
                            data = b""
                        if not data:
                            tls_in = False
                            break
                        down += data
                        progress = True
                    if down and outer_out:
                        try:
                            n = outer.send(down)
                        except BlockingIOError:
                            n = 0
                        except OSError:  # the WebSocket is gone: nobody will read these
                            n, outer_out = 0, False
                            down.clear()
                        if n:
                            del down[:n]
                            progress = True
                    if not outer_out:
                        down.clear()
                    if not tls_in and not down and not down_shut:
                        down_shut = True
                        tcp_shutdown(outer, socket.SHUT_WR)  # the WebSocket sees the client's EOF
                    # WebSocket -> client
                    while outer_in and len(up) < RELAY_LIMIT:
                        try:
                            data = outer.recv(RELAY_CHUNK)
                        except BlockingIOError:
                            break
                        except OSError:
                            data = b""
                        if not data:
                            outer_in = False
                            break
                        up += data
                        progress = True
                    while tls_out and (retry is not None or up):
                        chunk = retry if retry is not None else bytes(up[:RELAY_CHUNK])
                        try:
                            n = tls.send(chunk)
                        except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
                            retry = chunk
                            break
                        except OSError:  # the client is gone
                            tls_out = tls_in = False
                            retry = None
                            up.clear()
                            break
                        retry = None
                        del up[:n]
                        progress = True
                    if not tls_out:
                        up.clear()
                    if tls_out and not outer_in and not up and retry is None:
                        tls_out = False  # the WebSocket closed its side: so do we, TLS first
                        try:
                            tls.unwrap()  # sends close_notify; without the client's yet, "want read"
                        except (OSError, ValueError):
                            pass
                        else:
                            tls_in = False  # both close_notify done: the socket is plain now
                        tcp_shutdown(tls, socket.SHUT_WR)
                        progress = True
                stopping = self._stopping
                if stopping is not None and (
                    (not outer_in and not up and retry is None) or not tls_out or monotonic() >= stopping
                ):
                    break
                if not tls_in and not tls_out and not outer_in and not outer_out:
                    break
                if not tls_in and not tls_out and not outer_in and down_shut and not down:
                    break
                mask_tls = (selectors.EVENT_READ if tls_in and len(down) < RELAY_LIMIT else 0) | (
                    selectors.EVENT_WRITE if tls_out and (retry is not None or up) else 0)
                mask_outer = (selectors.EVENT_READ if outer_in and len(up) < RELAY_LIMIT else 0) | (
                    selectors.EVENT_WRITE if outer_out and down else 0)
                interest(tls, mask_tls)
                interest(outer, mask_outer)
                wait = None if stopping is None else max(0.0, stopping - monotonic())
                for key, _ in sel.select(wait):
                    if key.fileobj is self._wake_r:
                        try:
                            self._wake_r.recv(64)
                        except OSError:
                            pass
        except Exception:  # pragma: no cover - never leave the WebSocket waiting on a dead relay
            logger.exception("TLS relay failed")
        finally:
            sel.close()
            drain(tls)
            outer.close()
            try:
                tls.settimeout(timeout)
            except OSError:
                pass
