"""A plain WSGI application with a WebSocket endpoint, for gunicorn's gthread worker.

    cd examples/wsgi_gunicorn
    gunicorn -k gthread --threads 16 -b 127.0.0.1:8000 app:app
    python -m websockets ws://127.0.0.1:8000/echo      # or any WebSocket client

``/echo`` echoes every message, ``/info`` first sends the request's path,
query, subprotocol, a header and the framing backend as JSON, and every other path is plain HTTP,
served by the same workers while WebSockets are open. Each open WebSocket
holds one of the ``--threads`` for its whole life.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Iterable

import wsframe
from wsframe.integrations import wsgi

OPTIONS: dict = {"subprotocols": ["chat"], "max_message_size": 2**20}


def echo(ws: Any) -> None:
    for message in ws:
        ws.send(message)


def info(ws: Any) -> None:
    ws.send(json.dumps({
        "path": ws.path, "query": ws.query, "subprotocol": ws.subprotocol,
        "x_test": ws.request_headers.get("X-Test"), "backend": wsframe.BACKEND,
    }))
    for message in ws:
        ws.send(message)


ROUTES = {"/echo": wsgi.websocket_app(echo, **OPTIONS), "/info": wsgi.websocket_app(info, **OPTIONS)}


def app(environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
    route = ROUTES.get(environ.get("PATH_INFO", ""))
    if route is not None:
        return route(environ, start_response)
    body = f"plain HTTP on {environ.get('PATH_INFO')}\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
