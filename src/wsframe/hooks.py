"""How a server's hooks decide about a request, for every driver (threads, the reactor, integrations).

``process_request`` answers plain HTTP requests; ``process_upgrade`` and
``select_subprotocol`` decide about valid upgrade requests. A hook that
raises or returns something else gets the client a 500, never a hang.
"""

from __future__ import annotations

import logging
from typing import Iterable, Optional, Tuple, Union

from .options import Accept, Options, Refuse
from .protocol import handshake as hs

__all__ = ["decide_upgrade", "plain_http_response"]

logger = logging.getLogger("wsframe.server")

#: The verdict on an upgrade: a refusal, or the subprotocol and extra headers to accept with.
Decision = Union[Refuse, Tuple[Optional[str], Iterable[Tuple[str, str]]]]


def decide_upgrade(label: str, request: hs.Request, options: Options) -> Decision:
    """Run ``process_upgrade`` and ``select_subprotocol`` for a valid upgrade request."""
    try:
        verdict = None if options.process_upgrade is None else options.process_upgrade(request)
        if isinstance(verdict, Refuse):
            logger.info("%s upgrade refused by process_upgrade: %d", label, verdict.status)
            return verdict
        if verdict is not None and not isinstance(verdict, Accept):
            raise TypeError(f"process_upgrade returned {verdict!r}, not None, Accept or Refuse")
        headers = verdict.headers if verdict is not None else ()
        subprotocol = None
        if options.select_subprotocol is not None:
            subprotocol = options.select_subprotocol(request, request.subprotocols)
            if subprotocol is not None and not isinstance(subprotocol, str):
                raise TypeError(f"select_subprotocol returned {subprotocol!r}, not a str or None")
        return subprotocol, headers
    except Exception:  # a broken hook still gets the client an answer
        logger.exception("%s an upgrade hook failed", label)
        return Refuse(500, (), "500 Internal Server Error\n")


def plain_http_response(label: str, request: hs.Request, options: Options) -> bytes:
    """The answer to a plain HTTP request: the ``process_request`` hook's, or 426 Upgrade Required."""
    hook = options.process_request
    try:
        result = None if hook is None else hook(request)
        if result is None:
            response = hs.reject(
                426, "426 Upgrade Required: this is a WebSocket endpoint\n",
                [("Upgrade", "websocket"), ("Sec-WebSocket-Version", "13")],
            )
        else:
            status, headers, body = result
            if isinstance(headers, dict):
                headers = list(headers.items())
            if not isinstance(body, (str, bytes, bytearray, memoryview)):
                raise TypeError(f"process_request returned a {type(body).__name__} body")
            response = hs.reject(status, bytes(body) if not isinstance(body, str) else body, headers)
    except Exception:  # a broken hook still gets the client an answer
        logger.exception("%s process_request failed", label)
        response = hs.reject(500, "500 Internal Server Error\n")
    logger.info("%s %s %s -> %d", label, request.method, request.target, response.status)
    data = response.serialize()
    if request.method == "HEAD" and response.body:
        data = data[: -len(response.body)]
    return data
