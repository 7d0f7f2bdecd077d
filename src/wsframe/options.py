"""Options: the limits, timeouts and hooks of a connection, as one typed, frozen value.

Every driver (the threaded server, and later the client and other drivers)
reads its settings from an :class:`Options`, checked once when it is made:
a wrong type or an out-of-range value is a ``TypeError``/``ValueError`` at
``serve()`` time, never a traceback per connection. The list below is the
only place an option is written: ``Server``'s docstring, the README table
and the command line are checked against it (``tests/test_options.py``).
"""

from __future__ import annotations

import dataclasses
import ssl
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, Optional, Sequence, Tuple, Union

from . import __version__
from .protocol import deflate
from .protocol import extensions as ext
from .protocol import handshake as hs
from .protocol.connection import DEFAULT_MAX_MESSAGE_SIZE

__all__ = ["Options", "Accept", "Refuse", "HTTPAnswer", "option_docs"]

#: What ``process_request`` returns to answer a plain HTTP request: ``(status, headers, body)``.
HTTPAnswer = Tuple[int, Union[Iterable[Tuple[str, str]], Dict[str, str]], Union[str, bytes]]


@dataclass(frozen=True)
class Accept:
    """``process_upgrade``'s answer: accept the upgrade, adding ``headers`` to the 101 response."""

    headers: Sequence[Tuple[str, str]] = ()


@dataclass(frozen=True)
class Refuse:
    """``process_upgrade``'s answer: refuse the upgrade with this HTTP response (401, 403, 302 ...)."""

    status: int
    headers: Sequence[Tuple[str, str]] = ()
    body: Union[str, bytes] = b""

    def __post_init__(self) -> None:
        if not isinstance(self.status, int) or not 200 <= self.status <= 599 or self.status == 101:
            raise ValueError(f"Refuse needs an HTTP status from 200 to 599, not {self.status!r}")


UpgradeHook = Callable[[hs.Request], Union[Accept, Refuse, None]]
SubprotocolHook = Callable[[hs.Request, Sequence[str]], Optional[str]]
RequestHook = Callable[[hs.Request], Optional[HTTPAnswer]]

#: The User-Agent a client sends by default.
USER_AGENT = f"wsframe/{__version__} Python/{sys.version_info[0]}.{sys.version_info[1]}"


def _doc(text: str, *, cli: Optional[str] = None) -> Dict[str, Any]:
    return {"doc": text, "cli": cli}


_TIMES = ("open_timeout", "ping_interval", "ping_timeout", "close_timeout", "send_timeout")
_SIZES = ("max_message_size", "max_fragments", "write_limit", "max_request_line", "max_request_headers",
          "max_request_size", "max_redirects")


@dataclass(frozen=True)
class Options:
    """Limits, timeouts and hooks of a connection. Times in seconds; ``None`` disables a limit or timer."""

    max_message_size: Optional[int] = field(default=DEFAULT_MAX_MESSAGE_SIZE, metadata=_doc(
        "largest message accepted, in bytes; a bigger one closes the connection with 1009", cli="--max-size"))
    max_fragments: Optional[int] = field(default=128 * 1024, metadata=_doc(
        "most frames in one message; more closes the connection with 1009"))
    open_timeout: Optional[float] = field(default=10.0, metadata=_doc(
        "time for TLS and the HTTP upgrade to complete (slowloris protection)"))
    ping_interval: Optional[float] = field(default=20.0, metadata=_doc(
        "keepalive: ping a peer that has been silent this long", cli="--ping-interval"))
    ping_timeout: Optional[float] = field(default=20.0, metadata=_doc(
        "keepalive: close with 1011 when nothing arrives this long after a ping"))
    close_timeout: Optional[float] = field(default=10.0, metadata=_doc(
        "time the peer has to answer a close frame before TCP is cut"))
    write_limit: int = field(default=256 * 1024, metadata=_doc(
        "outgoing buffer high-water mark, in bytes: above it send() waits and the connection stops reading"))
    send_timeout: Optional[float] = field(default=10.0, metadata=_doc(
        "how long send() waits above write_limit (and reading stays stopped) before dropping the peer with 1008"))
    ssl: Optional[ssl.SSLContext] = field(default=None, metadata=_doc(
        "an ssl.SSLContext with the certificate loaded, for wss://", cli="--certfile"))
    origins: Optional[Sequence[Optional[str]]] = field(default=None, metadata=_doc(
        "server: allowed Origin values (None: any; include None to admit clients sending none)"))
    subprotocols: Sequence[str] = field(default=(), metadata=_doc(
        "server: the subprotocols it speaks, in preference order"))
    select_subprotocol: Optional[SubprotocolHook] = field(default=None, metadata=_doc(
        "server: select_subprotocol(request, offered) -> str | None, instead of the first match in subprotocols"))
    process_upgrade: Optional[UpgradeHook] = field(default=None, metadata=_doc(
        "server: process_upgrade(request) -> None | Accept(headers) | Refuse(status, headers, body), "
        "for every valid upgrade request"))
    process_request: Optional[RequestHook] = field(default=None, metadata=_doc(
        "server: process_request(request) -> None | (status, headers, body) for plain HTTP requests "
        "(None: 426 Upgrade Required)"))
    max_connections: Optional[int] = field(default=1024, metadata=_doc(
        "server: connections at once, handshaking or open; more get HTTP 503", cli="--max-connections"))
    max_request_line: int = field(default=8190, metadata=_doc("server: longest request line (431 beyond)"))
    max_request_headers: int = field(default=128, metadata=_doc("server: most request header fields (431 beyond)"))
    max_request_size: int = field(default=65536, metadata=_doc("server: largest request head in bytes (431 beyond)"))
    additional_headers: Sequence[Tuple[str, str]] = field(default=(), metadata=_doc(
        "client: extra request headers, (name, value) pairs or a dict"))
    origin: Optional[str] = field(default=None, metadata=_doc("client: the Origin header to send, if any"))
    user_agent: Optional[str] = field(default=USER_AGENT, metadata=_doc(
        "client: the User-Agent header (None: none)"))
    proxy: Union[str, bool, None] = field(default=True, metadata=_doc(
        "client: a proxy URL (http://, socks5://, socks4://), True for the *_proxy environment "
        "variables, None for none"))
    max_redirects: int = field(default=10, metadata=_doc(
        "client: redirects followed at most (301, 302, 303, 307, 308; never from wss:// to ws://)"))
    compression: Union[str, deflate.Deflate, None] = field(default="deflate", metadata=_doc(
        "permessage-deflate: 'deflate', 'stateless', 'context' (see the README), a Deflate(...) of one's own, "
        "or None for none", cli="--no-compression"))
    batch_writes: bool = field(default=True, metadata=_doc(
        "write replies to messages already received in one system call"))
    backend: Optional[str] = field(default=None, metadata=_doc(
        "framing backend: 'cython', 'python', or None for the active one", cli="--backend"))

    def __post_init__(self) -> None:
        for name in _TIMES:
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{name} must be a number of seconds or None, not {type(value).__name__}")
            if not value > 0:  # also refuses NaN
                raise ValueError(f"{name} must be positive or None, not {value!r}")
        for name in _SIZES:
            value = getattr(self, name)
            if value is None and name in ("max_message_size", "max_fragments"):
                continue
            if name == "max_fragments" and isinstance(value, int) and value < 1:
                raise ValueError("max_fragments must be >= 1 or None")
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, not {type(value).__name__}")
            if value < 0:
                raise ValueError(f"{name} must be >= 0, not {value}")
        if self.max_connections is not None:
            if isinstance(self.max_connections, bool) or not isinstance(self.max_connections, int):
                raise TypeError("max_connections must be an int or None")
            if self.max_connections < 1:
                raise ValueError("max_connections must be >= 1 or None")
        if self.ssl is not None and not isinstance(self.ssl, ssl.SSLContext):
            raise TypeError(f"ssl must be an ssl.SSLContext, not {type(self.ssl).__name__}")
        if isinstance(self.subprotocols, str) or not all(isinstance(p, str) for p in self.subprotocols):
            raise TypeError("subprotocols must be a sequence of str")
        object.__setattr__(self, "subprotocols", tuple(self.subprotocols))
        if self.origins is not None:
            if isinstance(self.origins, str) or not all(o is None or isinstance(o, str) for o in self.origins):
                raise TypeError("origins must be a sequence of str (or None entries), or None")
            object.__setattr__(self, "origins", tuple(self.origins))
        for name in ("select_subprotocol", "process_upgrade", "process_request"):
            hook = getattr(self, name)
            if hook is not None and not callable(hook):
                raise TypeError(f"{name} must be callable or None")
        headers = self.additional_headers
        if isinstance(headers, dict):
            headers = tuple(headers.items())
        if isinstance(headers, (str, bytes)) or not all(
            isinstance(h, tuple) and len(h) == 2 and all(isinstance(x, str) for x in h) for h in headers
        ):
            raise TypeError("additional_headers must be (name, value) pairs of str, or a dict")
        object.__setattr__(self, "additional_headers", tuple(headers))
        for name in ("origin", "user_agent"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise TypeError(f"{name} must be a str or None")
        if self.proxy is not None and not isinstance(self.proxy, (str, bool)):
            raise TypeError("proxy must be a URL, True (from the environment) or None")
        deflate.settings_for(self.compression)  # TypeError/ValueError now
        if not isinstance(self.batch_writes, bool):
            raise TypeError("batch_writes must be a bool")
        if self.backend is not None:
            from .protocol import backend as _backend

            _backend.load(self.backend)  # fail now (ImportError/ValueError), not per connection

    def server_extensions(self) -> Tuple[ext.ServerExtensionFactory, ...]:
        """The extension factories a server connection negotiates with."""
        settings = deflate.settings_for(self.compression)
        return () if settings is None else (deflate.ServerDeflateFactory(settings),)

    def client_extensions(self) -> Tuple[ext.ClientExtensionFactory, ...]:
        """The extension factories a client connection offers."""
        settings = deflate.settings_for(self.compression)
        return () if settings is None else (deflate.ClientDeflateFactory(settings),)

    @classmethod
    def of(cls, options: Dict[str, Any]) -> "Options":
        """Options from keyword arguments; an unknown name is a TypeError that lists the known ones."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise TypeError(f"unknown option(s) {', '.join(unknown)}; the options are: {', '.join(sorted(known))}")
        return cls(**options)


def option_docs() -> Iterable[Tuple[str, Any, str, Optional[str]]]:
    """``(name, default, description, CLI flag)`` of every option, in declaration order."""
    for f in dataclasses.fields(Options):
        yield f.name, f.default, f.metadata["doc"], f.metadata["cli"]
