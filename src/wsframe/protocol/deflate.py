"""permessage-deflate (RFC 7692): negotiation for both roles, and bounded compression of messages.

Choose a setting by name or build a :class:`Deflate`:

``"deflate"`` (the default)
    Our messages are compressed (zlib's fast level) without context takeover by a compressor
    shared between connections (a small pool), so sending costs no memory
    per connection. The peer keeps its context; where its offer lets the
    server limit its window (``client_max_window_bits``, as Chromium's does)
    the window is 2**12 bytes and receiving costs about 11 KiB per connection
    once a compressed message has arrived (nothing before); otherwise
    (Firefox) the window is 2**15, about 40 KiB.
``"stateless"``
    No context takeover in either direction (the server also asks the
    client for ``client_no_context_takeover``): the compressor is shared,
    the decompressor lives for one message, and an idle connection holds
    no zlib state.
``"context"``
    Context takeover both ways, windows of 2**12 bytes, level 6 and memory
    level 5 (``websockets``' default): the best ratio on many small similar messages,
    at about 50 KiB per connection that has sent and received one.

Inflating is bounded before it happens: a message may never inflate past
the connection's ``max_message_size`` (1009, at the limit, whatever the
ratio), and compressed text is validated as UTF-8 frame by frame as it
inflates (1007 at the frame that brings the first invalid byte, before the
rest of the message is read). zlib cannot compress with a window of 8 bits; where the
peer limits our window to 8 bits we agree and send our messages
uncompressed, which RFC 7692 always allows.

:data:`ZLIB` is zlib-ng's drop-in module where the PyPI package ``zlib-ng``
is installed (``pip install wsframe[zlib-ng]``: the same format, less CPU
per message), else the standard library's; ``WSFRAME_ZLIB=zlib`` forces the
standard library's, ``WSFRAME_ZLIB=zlib-ng`` requires zlib-ng. It compresses
and inflates where no state outlives a message (the shared compressors, a
decompressor without context takeover). zlib-ng's state is larger (measured:
an inflater that has inflated 16 KiB at a window of 2**12 about 29 KiB of
RSS, against 12 KiB; a compressor at window 2**12 and memory level 5 about 164 KiB
against 37 KiB), so what a connection keeps between messages is always the
standard library's.
"""

from __future__ import annotations

import os
import re
import zlib
from collections import deque
from dataclasses import dataclass
from typing import Any, Deque, Dict, List, Optional, Tuple, Type, Union, cast

from .constants import CLOSE_INVALID_PAYLOAD, CLOSE_TOO_BIG, RSV1
from .errors import ProtocolError
from .extensions import Extension, NegotiationError, Params

__all__ = [
    "NAME", "ZLIB", "Deflate", "SETTINGS", "settings_for", "PerMessageDeflate",
    "ServerDeflateFactory", "ClientDeflateFactory",
]

NAME = "permessage-deflate"
_TRAILER = b"\x00\x00\xff\xff"  # the end of a sync flush: removed on send, put back on receive (RFC 7692 7.2)
_BITS = re.compile(r"[89]|1[0-5]")  # RFC 7692 7.1.2: 8 to 15, decimal, no leading zero
_POOL_IDLE = 8  # idle zlib objects kept per pool

# -- which zlib ----------------------------------------------------------------------

#: The zlib of the shared compressors and one-message inflaters: ``"zlib-ng"`` or ``"zlib"``
#: (the standard library's, which keeps the state that lives as long as a connection).
ZLIB = "zlib"
_z: Any = zlib
_ERRORS: Tuple[Type[BaseException], ...] = (zlib.error,)  # what inflating raises, from either zlib
#: The level a :class:`Deflate` with ``level=None`` compresses at: the fastest with at least the
#: ratio of the standard library's level 1 (zlib-ng's level 1 is a different, coarser method).
_FAST_LEVEL = {"zlib": 1, "zlib-ng": 2}


def _use_zlib(name: str) -> None:
    """Use ``name`` ("zlib" or "zlib-ng") from now on, at import (and in tests, before any connection)."""
    global ZLIB, _z, _ERRORS
    if name == "zlib-ng":
        from zlib_ng import zlib_ng  # type: ignore[import-not-found, unused-ignore]

        _z, _ERRORS = zlib_ng, (zlib.error, cast(Type[BaseException], zlib_ng.error))
    elif name == "zlib":
        _z, _ERRORS = zlib, (zlib.error,)
    else:
        raise ValueError(f"WSFRAME_ZLIB must be 'zlib' or 'zlib-ng', not {name!r}")
    ZLIB = name
    _pools.clear()


def _zlib_for(kept: bool) -> Tuple[Any, str]:
    """The zlib module and name for an object a connection keeps between messages (the standard
    library's: its state is smaller) or one that outlives no message (:data:`ZLIB`)."""
    return (zlib, "zlib") if kept else (_z, ZLIB)


def _chosen_zlib() -> str:
    wanted = os.environ.get("WSFRAME_ZLIB", "")
    if wanted:
        return wanted
    try:
        from zlib_ng import zlib_ng  # type: ignore[import-not-found, unused-ignore]  # noqa: F401
    except ImportError:
        return "zlib"
    return "zlib-ng"


@dataclass(frozen=True)
class Deflate:
    """permessage-deflate settings for one side of a connection.

    ``no_context_takeover``: our compressor keeps nothing between messages
    (then it is shared: no memory per connection). ``peer_no_context_takeover``:
    ask the peer for the same (then our decompressor is shared too).
    ``max_window_bits``: our compressor's window, 9-15 (8 means "send
    uncompressed"). ``peer_max_window_bits``: the window we ask the peer to
    stay within when its offer allows it (None: the peer's choice, up to 15);
    it sets the memory our decompressor takes per connection. ``level`` and ``mem_level`` are
    zlib's. ``level=None`` is the fast level of the compressor's zlib: 1 with
    the standard library's (half the CPU of zlib's default 6 on 16 KiB of
    JSON-like text for 16% more bytes), 2 with zlib-ng's (its level 1 trades
    much of the ratio for speed). Memory level 6 keeps the reset after each
    message (no context takeover) cheap for small messages.
    Messages shorter than ``threshold`` bytes are sent uncompressed.
    """

    no_context_takeover: bool = True
    peer_no_context_takeover: bool = False
    max_window_bits: int = 15
    peer_max_window_bits: Optional[int] = 12
    level: Optional[int] = None
    mem_level: int = 6
    threshold: int = 1024

    def __post_init__(self) -> None:
        for name in ("no_context_takeover", "peer_no_context_takeover"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"Deflate.{name} must be a bool")
        for name, low, high, value in (
            ("max_window_bits", 8, 15, self.max_window_bits),
            ("peer_max_window_bits", 8, 15, self.peer_max_window_bits),
            ("level", -1, 9, self.level),
            ("mem_level", 1, 9, self.mem_level),
            ("threshold", 0, None, self.threshold),
        ):
            if value is None and name in ("peer_max_window_bits", "level"):
                continue
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"Deflate.{name} must be an int")
            if value < low or (high is not None and value > high):
                raise ValueError(f"Deflate.{name} must be in {low}..{high if high is not None else 'any'}, not {value}")


#: The named settings: what ``compression="..."`` means.
SETTINGS: Dict[str, Deflate] = {
    "deflate": Deflate(),
    "stateless": Deflate(peer_no_context_takeover=True, peer_max_window_bits=None),
    "context": Deflate(no_context_takeover=False, max_window_bits=12, peer_max_window_bits=12, level=6, mem_level=5),
}


def settings_for(compression: Union[None, str, Deflate]) -> Optional[Deflate]:
    """The :class:`Deflate` a ``compression`` option names (None: compression off)."""
    if compression is None or isinstance(compression, Deflate):
        return compression
    if isinstance(compression, str):
        try:
            return SETTINGS[compression]
        except KeyError:
            raise ValueError(f"compression must be one of {', '.join(map(repr, SETTINGS))}, None or a Deflate, "
                             f"not {compression!r}") from None
    raise TypeError(f"compression must be a str, a Deflate or None, not {type(compression).__name__}")


# -- zlib objects, lazily made and pooled when they carry no context ------------------


class _Pool:
    """Idle zlib objects with the same parameters, taken and given back by connections of any thread."""

    __slots__ = ("_make", "_idle")

    def __init__(self, make: Any) -> None:
        self._make = make
        self._idle: Deque[Any] = deque()

    def take(self) -> Any:
        try:
            return self._idle.pop()  # deque.pop and append are atomic: no lock needed
        except IndexError:
            return self._make()

    def give(self, obj: Any) -> None:
        if len(self._idle) < _POOL_IDLE:
            self._idle.append(obj)


_pools: Dict[Tuple[Any, ...], _Pool] = {}


def _compressor(z: Any, bits: int, level: int, mem_level: int) -> Any:
    return z.compressobj(level, zlib.DEFLATED, -bits, mem_level)


def _decompressor(z: Any, bits: int, window: bytes = b"") -> Any:
    if window:
        return z.decompressobj(-max(bits, 9), zdict=window)
    return z.decompressobj(-max(bits, 9))  # 9 for 8: peers compress with zlib's 9 when 8 is agreed


def _pool(key: Tuple[Any, ...]) -> _Pool:
    """The pool of compressors for ``("c", bits, level, mem_level)``.

    Sharing is safe for compressors only: a full flush ends each message, so
    no output refers to another connection's data.
    """
    pool = _pools.get(key)
    if pool is None:
        pool = _pools.setdefault(key, _Pool(lambda: _compressor(_zlib_for(False)[0], key[1], key[2], key[3])))
    return pool


class PerMessageDeflate:
    """The negotiated permessage-deflate of one connection (an :class:`~.extensions.Extension`).

    ``send_bits`` is our compressor's window (8: we send uncompressed),
    ``recv_bits`` the peer's. zlib objects are made on first use. Without
    context takeover, the compressor comes from a shared pool for one message
    and goes back after it, and the decompressor lives for one message.
    """

    name = NAME
    rsv = RSV1
    __slots__ = ("send_bits", "send_no_context", "recv_bits", "recv_no_context", "level", "mem_level", "threshold",
                 "_compressor", "_decompressor", "_deflating", "_after_final", "_inflated", "_window")

    def __init__(
        self, send_bits: int, send_no_context: bool, recv_bits: int, recv_no_context: bool,
        level: Optional[int] = None, mem_level: int = 6, threshold: int = 1024,
    ) -> None:
        self.send_bits = send_bits
        self.send_no_context = send_no_context
        self.recv_bits = recv_bits
        self.recv_no_context = recv_no_context
        # None: the fast level of the zlib this side compresses with (shared compressors: ZLIB)
        self.level = level if level is not None else _FAST_LEVEL[_zlib_for(not send_no_context)[1]]
        self.mem_level = mem_level
        self.threshold = threshold
        self._compressor: Any = None
        self._decompressor: Any = None
        self._deflating = False
        self._after_final: Any = None  # checks what follows a final block, until the message ends
        self._inflated: List[bytes] = []  # this message's output, with context takeover (for after BFINAL)
        self._window = b""  # the window the next decompressor starts from (after a BFINAL only)

    def __repr__(self) -> str:
        return (f"PerMessageDeflate(send_bits={self.send_bits}, send_no_context={self.send_no_context}, "
                f"recv_bits={self.recv_bits}, recv_no_context={self.recv_no_context})")

    @property
    def shared_key(self) -> Optional[Tuple[object, ...]]:
        """Equal for connections whose compressed frames are byte-identical (no context kept); else None.

        ``broadcast()`` compresses a message once per key.
        """
        if not self.send_no_context or self.send_bits < 9:
            return None
        return ("c", self.send_bits, self.level, self.mem_level, self.threshold)

    # -- receiving -------------------------------------------------------------------

    def decode(self, data: bytes, rsv: int, fin: bool, limit: int) -> bytes:
        if not rsv & RSV1:
            return data  # an uncompressed message
        d = self._decompressor
        if d is None:
            z = _zlib_for(not self.recv_no_context)[0]
            d = self._decompressor = _decompressor(z, self.recv_bits, self._window)
            self._window = b""
        if self._after_final is not None:  # the message's deflate stream ended in an earlier frame
            out = b""
            self._check_after_final(data)
        else:
            out = _inflate(d, data, limit)
            if not self.recv_no_context:
                self._inflated.append(out)
            if d.eof:
                self._start_after_final(d)
        if fin:
            if self._after_final is None:
                rest = limit - len(out) if limit >= 0 else -1
                tail = _inflate(d, _TRAILER, rest)
                if tail:
                    out += tail
                    if not self.recv_no_context:
                        self._inflated.append(tail)
                if d.eof:
                    self._start_after_final(d)
            else:
                self._check_after_final(_TRAILER)
            if self._after_final is not None:
                # BFINAL ended the peer's stream, not its window (RFC 7692 7.2.2): the next
                # message's decompressor starts from what this message inflated to.
                self._after_final = None
                self._decompressor = None
                if not self.recv_no_context:
                    self._window = b"".join(self._inflated)[-(1 << max(self.recv_bits, 9)):]
            elif self.recv_no_context:
                # Nothing is carried over: a new message, a new decompressor. One is never shared
                # (that would let a peer breaking its promise refer to other connections' messages).
                self._decompressor = None
            self._inflated = []
        return out

    def _start_after_final(self, d: Any) -> None:
        """After a final block (BFINAL), the rest of the message may only be empty stored blocks."""
        self._after_final = zlib.decompressobj(-15)
        self._check_after_final(d.unused_data)

    def _check_after_final(self, data: bytes) -> None:
        sink = self._after_final
        while data:
            try:
                if sink.decompress(data, 1):
                    raise ProtocolError(CLOSE_INVALID_PAYLOAD, "data after the end of the deflate stream")
            except zlib.error:
                raise ProtocolError(CLOSE_INVALID_PAYLOAD, "invalid data after the end of the deflate stream") from None
            data = sink.unconsumed_tail
            if sink.eof:  # another (empty) final block: what follows it is checked the same way
                data = sink.unused_data + data
                sink = self._after_final = zlib.decompressobj(-15)

    # -- sending ---------------------------------------------------------------------

    def encode(self, data: bytes, first: bool, fin: bool, compress: Optional[bool]) -> Tuple[int, bytes]:
        if first:
            wanted = len(data) >= self.threshold if compress is None else bool(compress)
            self._deflating = wanted and self.send_bits >= 9
        if not self._deflating:
            return 0, data
        c = self._compressor
        if c is None:
            if self.send_no_context:
                c = self._send_pool().take()
            else:
                c = _compressor(_zlib_for(True)[0], self.send_bits, self.level, self.mem_level)
            self._compressor = c
        if not fin:
            return (RSV1 if first else 0), c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
        # A full flush forgets the window: the next message refers to nothing before it.
        out = c.compress(data) + c.flush(zlib.Z_FULL_FLUSH if self.send_no_context else zlib.Z_SYNC_FLUSH)
        if self.send_no_context:
            self._send_pool().give(c)
            self._compressor = None
        return (RSV1 if first else 0), out[:-4] if out.endswith(_TRAILER) else out

    def _send_pool(self) -> _Pool:
        return _pool(("c", self.send_bits, self.level, self.mem_level))

    def release(self) -> None:
        """Pooled objects of an unfinished message are dropped (their state is mid-message)."""
        self._compressor = None
        self._decompressor = None
        self._after_final = None
        self._inflated = []
        self._window = b""


def _inflate(d: Any, data: bytes, limit: int) -> bytes:
    """Inflate ``data``, producing at most ``limit`` bytes (-1: no limit); 1009 past it, 1007 on bad data."""
    try:
        out: bytes = d.decompress(data, limit + 1 if 0 <= limit < 2**62 else 0)  # 0: no limit (zlib's ssize_t)
    except _ERRORS as exc:
        raise ProtocolError(CLOSE_INVALID_PAYLOAD, f"invalid compressed data: {exc}") from None
    if limit >= 0 and len(out) > limit:
        raise ProtocolError(CLOSE_TOO_BIG, "message inflates past the size limit")  # before inflating more
    return out


# -- negotiation ---------------------------------------------------------------------


_PARAMS = ("server_no_context_takeover", "client_no_context_takeover",
           "server_max_window_bits", "client_max_window_bits")


def _read_params(params: Params, *, response: bool) -> Optional[Dict[str, Optional[str]]]:
    """The parameters as a dict, or None when one is unknown, repeated or has an invalid value.

    In an offer ``client_max_window_bits`` may come without a value; in a
    response every window size has one (RFC 7692 7.1).
    """
    found: Dict[str, Optional[str]] = {}
    for name, value in params:
        if name not in _PARAMS or name in found:
            return None
        if name.endswith("no_context_takeover"):
            if value is not None:
                return None
        elif value is None:
            if response or name == "server_max_window_bits":
                return None
        elif not _BITS.fullmatch(value):
            return None
        found[name] = value
    return found


class ServerDeflateFactory:
    """The server side of the negotiation (RFC 7692 7.1), from :class:`Deflate` settings."""

    name = NAME
    rsv = RSV1

    def __init__(self, settings: Deflate = SETTINGS["deflate"]) -> None:
        self.settings = settings

    def accept(self, params: Params) -> Optional[Tuple[Params, Extension]]:
        offer = _read_params(params, response=False)
        if offer is None:
            return None  # RFC 7692 5.1: decline an invalid offer (the next one may do)
        s = self.settings
        answer: Params = []
        send_no_context = s.no_context_takeover or "server_no_context_takeover" in offer
        if send_no_context:
            answer.append(("server_no_context_takeover", None))
        # A client that says it keeps no context is taken at its word: our decompressor then lives
        # for one message only, and an idle connection holds no zlib state.
        recv_no_context = s.peer_no_context_takeover or "client_no_context_takeover" in offer
        if recv_no_context:
            answer.append(("client_no_context_takeover", None))
        # A smaller window than the client's inflater allows is always fine, so our own limit is
        # only said when the client asked for one (some clients refuse an unasked-for value).
        send_bits = s.max_window_bits
        offered = offer.get("server_max_window_bits")
        if offered is not None:
            send_bits = min(send_bits, int(offered))
            answer.append(("server_max_window_bits", str(send_bits)))
        recv_bits = 15
        if "client_max_window_bits" in offer:
            hint = offer["client_max_window_bits"]
            recv_bits = min(15 if hint is None else int(hint), s.peer_max_window_bits or 15)
            answer.append(("client_max_window_bits", str(recv_bits)))
        ext = PerMessageDeflate(send_bits, send_no_context, recv_bits, recv_no_context,
                                s.level, s.mem_level, s.threshold)
        return answer, ext


class ClientDeflateFactory:
    """The client side of the negotiation (RFC 7692 7.1): the offer, and the checks of the answer."""

    name = NAME
    rsv = RSV1

    def __init__(self, settings: Deflate = SETTINGS["deflate"]) -> None:
        self.settings = settings

    def offer(self) -> Params:
        s = self.settings
        params: Params = []
        if s.peer_no_context_takeover:
            params.append(("server_no_context_takeover", None))
        if s.no_context_takeover:
            params.append(("client_no_context_takeover", None))
        if s.peer_max_window_bits is not None and s.peer_max_window_bits < 15:
            params.append(("server_max_window_bits", str(s.peer_max_window_bits)))
        params.append(("client_max_window_bits", str(s.max_window_bits) if s.max_window_bits < 15 else None))
        return params

    def accept(self, params: Params) -> Extension:
        answer = _read_params(params, response=True)
        if answer is None:
            raise NegotiationError(f"invalid {NAME} answer: {params!r}")
        s = self.settings
        recv_no_context = "server_no_context_takeover" in answer
        if s.peer_no_context_takeover and not recv_no_context:
            raise NegotiationError(f"{NAME}: the server did not agree to server_no_context_takeover")
        # Without server_max_window_bits in the answer the server may use a window of 15 (some
        # servers ignore the request: the connection works, at the cost of a larger inflater).
        recv_bits = 15
        if "server_max_window_bits" in answer:
            recv_bits = int(answer["server_max_window_bits"] or 15)
            if s.peer_max_window_bits is not None and s.peer_max_window_bits < 15 and recv_bits > s.peer_max_window_bits:
                raise NegotiationError(f"{NAME}: server_max_window_bits={recv_bits} is more than offered")
        send_bits = s.max_window_bits
        if "client_max_window_bits" in answer:
            send_bits = min(send_bits, int(answer["client_max_window_bits"] or 15))
        send_no_context = s.no_context_takeover or "client_no_context_takeover" in answer
        return PerMessageDeflate(send_bits, send_no_context, recv_bits, recv_no_context,
                                 s.level, s.mem_level, s.threshold)


_use_zlib(_chosen_zlib())
