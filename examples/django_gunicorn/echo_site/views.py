"""Django views that turn their request into a WebSocket (wsframe.integrations.wsgi.accept).

The view runs the whole conversation in gunicorn's request thread, then
returns. By then the connection is finished (drained, shut down both ways),
so the response the view returns is never written: gunicorn's attempt fails
at once as if the client had gone. Status 101 is for the access log.
"""

from __future__ import annotations

import json

from django.http import HttpRequest, HttpResponse

from wsframe.integrations import wsgi


def index(request: HttpRequest) -> HttpResponse:
    return HttpResponse("plain Django view, served while WebSockets are open\n", content_type="text/plain")


def echo(request: HttpRequest) -> HttpResponse:
    try:
        ws = wsgi.accept(request.environ, max_message_size=2**20)
    except wsgi.Refused as refusal:  # not a valid upgrade: answered like any response
        return HttpResponse(refusal.body, status=refusal.status, headers=refusal.headers)
    with ws:  # closing handshake at the end of the block (1011 if it raises)
        for message in ws:
            ws.send(message)
    return HttpResponse(status=101)


def chat(request: HttpRequest, room: str) -> HttpResponse:
    """The URL's variables, the query string and the headers are Django's as usual."""
    try:
        ws = wsgi.accept(request.environ, subprotocols=["chat.v1"])
    except wsgi.Refused as refusal:
        return HttpResponse(refusal.body, status=refusal.status, headers=refusal.headers)
    with ws:
        ws.send(json.dumps({"room": room, "user": request.GET.get("user"), "subprotocol": ws.subprotocol}))
        for message in ws:
            ws.send(f"{room}: {message}")
    return HttpResponse(status=101)
