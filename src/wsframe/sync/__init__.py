"""Blocking I/O over the sans-I/O core: a thread per connection and one maintenance thread.

``connection`` is the per-connection object handlers use; it is composed of
a ``transport`` (socket, TLS, bounded outgoing buffer) and ``timers``
(keepalive, close), all waiting done by the ``maintenance`` thread;
``opening`` drives the server side of the handshake; ``server`` is the
``socketserver`` server.
"""

from .connection import WebSocket
from .server import EventHandler, Server, serve

__all__ = ["WebSocket", "EventHandler", "Server", "serve"]
