"""Server options: the limits, timeouts and hooks that every connection of a server shares.

A plain value object, checked once at construction, so that connections and
the server read their settings from one place and never validate them again.
"""

from __future__ import annotations

import ssl
from typing import Any, Callable, Iterable, Optional, Sequence

from .protocol import handshake as hs
from .protocol.connection import DEFAULT_MAX_MESSAGE_SIZE

__all__ = ["Config"]


class Config:
    """Limits, timeouts and hooks shared by every connection of a server.

    Times are in seconds; ``None`` disables a timeout (or keepalive).
    """

    __slots__ = (
        "max_message_size", "max_connections", "handshake_timeout", "ping_interval", "ping_timeout",
        "close_timeout", "write_limit", "send_timeout", "ssl_context", "origins", "subprotocols",
        "backend", "process_request", "max_request_line", "max_request_headers", "max_request_size",
        "thread_stack_size", "batch_writes",
    )

    def __init__(
        self,
        *,
        max_message_size: Optional[int] = DEFAULT_MAX_MESSAGE_SIZE,
        max_connections: Optional[int] = 1024,
        handshake_timeout: Optional[float] = 10.0,
        ping_interval: Optional[float] = 20.0,
        ping_timeout: Optional[float] = 20.0,
        close_timeout: Optional[float] = 10.0,
        write_limit: int = 256 * 1024,
        send_timeout: Optional[float] = 10.0,
        ssl_context: Optional[ssl.SSLContext] = None,
        origins: Optional[Iterable[Optional[str]]] = None,
        subprotocols: Sequence[str] = (),
        backend: Optional[str] = None,
        process_request: Optional[Callable[[hs.Request], Any]] = None,
        max_request_line: int = 8190,
        max_request_headers: int = 128,
        max_request_size: int = 65536,
        thread_stack_size: Optional[int] = 512 * 1024,
        batch_writes: bool = True,
    ) -> None:
        for name, value in (
            ("handshake_timeout", handshake_timeout), ("ping_interval", ping_interval),
            ("ping_timeout", ping_timeout), ("close_timeout", close_timeout), ("send_timeout", send_timeout),
        ):
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive or None")
        if write_limit < 0:
            raise ValueError("write_limit must be >= 0")
        if max_connections is not None and max_connections < 1:
            raise ValueError("max_connections must be >= 1 or None")
        if isinstance(subprotocols, str):
            raise TypeError("subprotocols must be a sequence of str, not a str")
        if backend is not None:
            from .protocol import backend as _backend

            _backend.load(backend)  # fail now (ImportError/ValueError), not per connection
        self.max_message_size = max_message_size
        self.max_connections = max_connections
        self.handshake_timeout = handshake_timeout
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.close_timeout = close_timeout
        self.write_limit = write_limit
        self.send_timeout = send_timeout
        self.ssl_context = ssl_context
        self.origins = None if origins is None else list(origins)
        self.subprotocols = list(subprotocols)
        self.backend = backend
        self.process_request = process_request
        self.max_request_line = max_request_line
        self.max_request_headers = max_request_headers
        self.max_request_size = max_request_size
        self.thread_stack_size = thread_stack_size
        self.batch_writes = batch_writes
