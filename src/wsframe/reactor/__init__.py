"""The reactor driver: event-style handlers for many connections on one thread.

``loop`` is the selector and timer loop, ``connection`` one connection's
non-blocking I/O over the sans-I/O core, ``server`` the listening side.
"""

from .server import ReactorServer

__all__ = ["ReactorServer"]
