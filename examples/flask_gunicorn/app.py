"""A Flask application with WebSocket routes (wsframe.integrations.flask.Sock).

Development server::

    cd examples/flask_gunicorn
    flask --app app run                         # ws://127.0.0.1:5000/echo

Production, gunicorn's threaded worker (one thread per open WebSocket)::

    gunicorn -k gthread --threads 32 -b 127.0.0.1:8000 app:app

With TLS terminated by gunicorn (wss://127.0.0.1:8000/echo)::

    gunicorn -k gthread --threads 32 --certfile cert.pem --keyfile key.pem -b 127.0.0.1:8000 app:app
"""

from __future__ import annotations

from typing import Any

import flask

from wsframe.integrations.flask import Sock

app = flask.Flask(__name__)
sock = Sock(app, max_message_size=2**20)


@app.route("/")
def index() -> str:
    return "plain HTTP, served while WebSockets are open\n"


@app.route("/echo")  # the same path, for plain HTTP: WebSocket routes match upgrades only
def echo_page() -> str:
    return "connect with a WebSocket client to echo\n"


@sock.route("/echo")
def echo(ws: Any) -> None:
    for message in ws:
        ws.send(message)


@sock.route("/room/<name>")
def room(ws: Any, name: str) -> None:
    ws.send(f"welcome to {name}, {flask.request.args.get('user', 'anonymous')}")
    for message in ws:
        ws.send(f"{name}: {message}")
