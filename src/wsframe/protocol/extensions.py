"""WebSocket extensions (RFC 6455 section 9): the one place they are negotiated and applied.

An extension has two halves. A *factory* takes part in the opening
handshake: on the server it answers one offer of the client's
``Sec-WebSocket-Extensions`` header, on the client it writes the offer and
checks the server's answer. What both produce is an :class:`Extension`, the
per-connection object that :class:`~wsframe.protocol.connection.Connection`
runs every data message through: :meth:`Extension.decode` on the way in
(after the frame reader), :meth:`Extension.encode` on the way out (before
the frame is written). Control frames never pass through an extension.

permessage-deflate (:mod:`.deflate`) is the one extension wsframe ships;
another plugs in by implementing the three protocols below.
"""

from __future__ import annotations

from typing import List, Optional, Protocol, Sequence, Tuple

from .errors import HandshakeError

__all__ = [
    "Params", "Offer", "Extension", "ServerExtensionFactory", "ClientExtensionFactory", "NegotiationError",
    "negotiate_server", "offer_header", "negotiate_client", "serialize",
]

#: Parameters of one offer or answer, in order: ``[(name, value or None), ...]``.
Params = List[Tuple[str, Optional[str]]]
#: One element of a Sec-WebSocket-Extensions header: ``(extension name, params)``.
Offer = Tuple[str, Params]


class NegotiationError(HandshakeError):
    """The server's answer to the client's offer breaks the extension's rules (the client fails the connection)."""

    def __init__(self, reason: str) -> None:
        super().__init__(0, reason)


class Extension(Protocol):
    """A negotiated extension, owned by one connection; called by one thread at a time."""

    #: The registered name (``"permessage-deflate"``).
    name: str
    #: The RSV bits it claims, as the 3-bit field of ``Frame.rsv`` (RSV1 is 0x4).
    rsv: int

    @property
    def shared_key(self) -> Optional[Tuple[object, ...]]:
        """Equal for extensions that encode any message into the same bytes (None: this one's are its own).

        Broadcasting encodes a message once per key.
        """
        ...

    def decode(self, data: bytes, rsv: int, fin: bool, limit: int) -> bytes:
        """The payload of one data frame as the application sees it.

        ``rsv`` is the RSV field of the message's first frame (the frame
        reader allows RSV bits on continuation frames to no extension), ``fin``
        ends the message, ``limit`` bounds the bytes this call may return (-1
        for none). Raises :class:`~wsframe.protocol.errors.ProtocolError` with
        the close code to fail the connection with (1009 over ``limit``).
        """
        ...

    def encode(self, data: bytes, first: bool, fin: bool, compress: Optional[bool]) -> Tuple[int, bytes]:
        """The RSV bits and the payload to send for one data frame of a message.

        ``first`` and ``fin`` place the frame in its message; ``compress`` is
        the sender's per-message choice (None: the extension decides), read on
        the first frame.
        """
        ...

    def release(self) -> None:
        """Give back what the extension holds (the connection is over); idempotent."""
        ...


class ServerExtensionFactory(Protocol):
    """The server half of the negotiation of one extension."""

    name: str
    rsv: int

    def accept(self, params: Params) -> Optional[Tuple[Params, Extension]]:
        """Answer one offer: the response parameters and the extension, or None to decline it.

        The RFC 7692 rule holds for every extension: an offer with an unknown,
        duplicated or invalid parameter is declined, so that the next offer
        (a fallback) may be taken.
        """
        ...


class ClientExtensionFactory(Protocol):
    """The client half of the negotiation of one extension."""

    name: str
    rsv: int

    def offer(self) -> Params:
        """The parameters of the client's offer."""
        ...

    def accept(self, params: Params) -> Extension:
        """The extension the server's answer agreed on; :class:`NegotiationError` if the answer is invalid."""
        ...


def serialize(offers: Sequence[Offer]) -> str:
    """A Sec-WebSocket-Extensions value: ``name; param; param=value, name2``."""
    parts = []
    for name, params in offers:
        parts.append("; ".join([name] + [p if v is None else f"{p}={v}" for p, v in params]))
    return ", ".join(parts)


def negotiate_server(
    factories: Sequence[ServerExtensionFactory], offers: Sequence[Offer]
) -> Tuple[Optional[str], List[Extension]]:
    """The server's Sec-WebSocket-Extensions answer (None: no header) and the extensions it agreed to.

    Offers are taken in the client's order (RFC 6455 9.1: it lists them by
    preference); the first offer a factory accepts settles that extension,
    later ones for it are ignored, and no two extensions may claim an RSV bit.
    """
    answers: List[Offer] = []
    agreed: List[Extension] = []
    taken_rsv = 0
    for name, params in offers:
        for factory in factories:
            if factory.name != name or factory.rsv & taken_rsv:
                continue
            result = factory.accept(params)
            if result is not None:
                answers.append((name, result[0]))
                agreed.append(result[1])
                taken_rsv |= factory.rsv
            break
    return (serialize(answers) if answers else None), agreed


def offer_header(factories: Sequence[ClientExtensionFactory]) -> Optional[str]:
    """The client's Sec-WebSocket-Extensions offer (None: no header)."""
    return serialize([(f.name, f.offer()) for f in factories]) or None


def negotiate_client(factories: Sequence[ClientExtensionFactory], answers: Sequence[Offer]) -> List[Extension]:
    """The extensions the server's answer agreed to, in its order; NegotiationError if it is not one we can use.

    Every answered extension must have been offered and be answered once
    (RFC 6455 9.1); each factory checks its own parameters.
    """
    by_name = {f.name: f for f in factories}
    agreed: List[Extension] = []
    seen = set()
    for name, params in answers:
        factory = by_name.get(name)
        if factory is None:
            raise NegotiationError(f"the server answered with extension {name!r}, which was not offered")
        if name in seen:
            raise NegotiationError(f"the server answered with extension {name!r} twice")
        seen.add(name)
        agreed.append(factory.accept(params))
    return agreed
