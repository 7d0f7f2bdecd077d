"""WebSocket routes in a Flask application, on the server Flask already runs on.

::

    from flask import Flask
    from wsframe.integrations.flask import Sock

    app = Flask(__name__)
    sock = Sock(app, max_message_size=2**20)   # options: wsframe.options.Options fields

    @sock.route("/echo")
    def echo(ws):                              # ws: wsframe.WebSocket, in the request's thread
        for message in ws:
            ws.send(message)

Run it with ``flask run`` (the werkzeug development server) or gunicorn's
``gthread`` worker (``gunicorn -k gthread --threads 32 module:app``): see
:mod:`wsframe.integrations.wsgi` for how the connection is taken over and
handed back, TLS and threads. The handler runs inside the request context
(``flask.request``, ``flask.session``, ``flask.g`` work) and gets the URL's
variables as keyword arguments: ``@sock.route("/room/<name>")`` calls
``handler(ws, name=...)``. When it returns the connection is closed with
1000, when it raises with 1011 (logged).

A route is a werkzeug ``websocket=True`` rule: it matches upgrade
requests only, so an HTTP view can share its path, and a plain HTTP request
to a WebSocket-only path gets werkzeug's 400 (werkzeug's router sends
upgrade requests to websocket rules only, so there is no other choice). An
upgrade refused by the checks or hooks (``origins``, ``subprotocols``,
``process_upgrade``, the limits) gets the response :func:`wsframe.serve`
would send.
"""

from __future__ import annotations

import functools
import itertools
from typing import Any, Callable, Optional, TypeVar

import flask

from ..sync.connection import WebSocket
from ..sync.server import _as_handler, run_handler
from .wsgi import Refused, _accept, _options

__all__ = ["Sock"]

F = TypeVar("F", bound=Callable[..., Any])

_names = itertools.count(1)


class Sock:
    """WebSocket routes for a Flask application (or for several, with :meth:`init_app`).

    ``options`` are :class:`wsframe.options.Options` fields for every route
    of this object, checked now; ``app.config["WSFRAME_OPTIONS"]`` (a dict)
    adds to them per application.
    """

    def __init__(self, app: Optional[flask.Flask] = None, **options: Any) -> None:
        self.options = dict(options)
        self._opts = _options(self.options)  # a wrong option fails here, not per request
        self.app = app
        self.blueprint: Optional[flask.Blueprint] = None
        if app is None:  # routes go on a blueprint that init_app() registers
            self.blueprint = flask.Blueprint(f"wsframe_sock_{next(_names)}", __name__)

    def init_app(self, app: flask.Flask) -> None:
        """Add this object's routes to ``app`` (when it was made without one)."""
        if self.blueprint is not None:
            app.register_blueprint(self.blueprint)

    def route(self, rule: str, **route_options: Any) -> Callable[[F], F]:
        """Decorator: ``handler(ws, **view_args)`` serves WebSocket connections to ``rule``.

        ``route_options`` go to Flask's ``route()`` (``endpoint``,
        ``defaults``, ``subdomain`` ...). Returns the handler unchanged.
        """
        if route_options.get("websocket", True) is not True:
            raise ValueError("a Sock route is a websocket rule: werkzeug sends upgrade requests to those only")
        route_options["websocket"] = True

        def decorator(handler: F) -> F:
            _as_handler(handler)  # refuses an async function now

            @functools.wraps(handler)
            def view(**view_args: Any) -> flask.Response:
                environ = flask.request.environ
                extra = flask.current_app.config.get("WSFRAME_OPTIONS")
                opts = _options({**self.options, **extra}) if extra else self._opts
                try:
                    ws = _accept(environ, opts)
                except Refused as refusal:
                    return flask.Response(refusal.body, status=refusal.status, headers=refusal.headers)

                def run(w: WebSocket) -> None:
                    handler(w, **view_args)

                run_handler(run, ws)
                # The connection is finished (see wsframe.integrations.wsgi): the server's attempt to
                # write this response fails at once as if the client had gone; 101 is for access logs.
                return flask.Response(status=101)

            target: Any = self.app if self.app is not None else self.blueprint
            target.route(rule, **route_options)(view)
            return handler

        return decorator
