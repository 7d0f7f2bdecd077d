"""Shared pieces of the wsframe fuzz targets (atheris).

Every target imports wsframe through this module only, under atheris's import
instrumentation (Python coverage for the pure backend, the connection and the
handshake code; the compiled backend brings its own libFuzzer counters when it
was built by ``fuzz/build_asan.sh``). Nothing here depends on where a module
lives inside the package beyond the public API and the defensive loaders
below, which know both the old (``wsframe._backend``) and the new
(``wsframe.protocol.backend``) layout.

A *finding* is raised as :class:`Finding` (an AssertionError: libFuzzer saves
the input as a crash artifact). Set ``FUZZ_KNOWN=cat1,cat2`` to let a campaign
go on past categories already recorded; the categories are the strings passed
to :func:`finding`.
"""

from __future__ import annotations

import os
import sys

import atheris

with atheris.instrument_imports(include=["wsframe"]):
    import wsframe

    try:
        from wsframe.protocol.backend import load
    except ImportError:  # the layout before the src/ restructuring
        from wsframe._backend import load
    try:
        from wsframe.protocol import handshake as hs
    except ImportError:
        from wsframe import handshake as hs

ProtocolError = wsframe.ProtocolError
InvalidState = wsframe.InvalidState
HandshakeError = wsframe.HandshakeError

P = load("python")
try:
    C = load("cython")
except ImportError:
    if os.environ.get("FUZZ_ALLOW_PURE") != "1":
        sys.exit("wsframe's compiled backend is not built here (run fuzz/build_asan.sh); FUZZ_ALLOW_PURE=1 to go on")
    C = None

#: (name, backend module) pairs every differential target runs.
BACKENDS = [("python", P)] + ([("cython", C)] if C is not None else [])

KNOWN = {c.strip() for c in os.environ.get("FUZZ_KNOWN", "").split(",") if c.strip()}


class Finding(AssertionError):
    """A divergence between backends, chunkings or the reference, or a broken invariant."""


def finding(category: str, message: str) -> None:
    """Report a finding of ``category``, unless FUZZ_KNOWN lists it."""
    if category in KNOWN:
        return
    raise Finding(f"[{category}] {message}")


def check_equal(category: str, what: str, results: dict) -> None:
    """All values of ``results`` (label -> value) must be equal."""
    items = list(results.items())
    first_label, first = items[0]
    for label, value in items[1:]:
        if value != first:
            finding(category, f"{what} differ:\n  {first_label}: {first!r}\n  {label}: {value!r}")


# --- chunking --------------------------------------------------------------------------


def consume_chunking(fdp: atheris.FuzzedDataProvider):
    """A chunking plan read from the input: how to cut a byte stream into reads."""
    kind = fdp.ConsumeIntInRange(0, 3)
    if kind == 0:  # explicit cut points
        cuts = [fdp.ConsumeIntInRange(0, 0xFFFF) for _ in range(fdp.ConsumeIntInRange(0, 8))]
        return ("cuts", cuts)
    if kind == 1:
        return ("every", 1)
    if kind == 2:
        return ("every", fdp.ConsumeIntInRange(2, 17))
    return ("whole", 0)


def split(data: bytes, plan) -> list:
    """``data`` cut into pieces according to ``plan`` (no piece is empty)."""
    kind, arg = plan
    n = len(data)
    if not n:
        return []
    if kind == "every":
        arg = max(arg, -(-n // 4096))  # at most 4096 pieces: long streams stay fast
        return [data[i : i + arg] for i in range(0, n, arg)]
    if kind == "whole":
        return [data]
    points = sorted({c % (n + 1) for c in arg} | {0, n})
    return [data[a:b] for a, b in zip(points, points[1:]) if b > a]


# --- helpers shared by the connection targets ------------------------------------------------


class FakeUrandom:
    """Deterministic stand-in for os.urandom: the same bytes for every backend's run."""

    def __init__(self) -> None:
        self.seed = 0
        self.counter = 0

    def reset(self, seed: int) -> None:
        self.seed = seed
        self.counter = 0

    def __call__(self, n: int) -> bytes:
        import hashlib

        out = bytearray()
        while len(out) < n:
            block = hashlib.sha256(b"%d:%d" % (self.seed, self.counter)).digest()
            self.counter += 1
            out += block
        if self.seed == 0:  # seed 0: all-zero keys (a legal mask key)
            return bytes(n)
        return bytes(out[:n])


URANDOM = FakeUrandom()
_real_urandom = os.urandom


def patch_urandom() -> None:
    """Make Sec-WebSocket-Key and mask keys deterministic (modules call ``os.urandom`` at call time)."""
    os.urandom = URANDOM


def accept_value(key: str) -> str:
    """Sec-WebSocket-Accept computed here, independently of wsframe."""
    import base64
    import hashlib

    digest = hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode("ascii")).digest()
    return base64.b64encode(digest).decode("ascii")


def norm_event(e) -> tuple:
    """An event as a plain, comparable tuple (HTTP heads flattened)."""
    name = type(e).__name__
    if name == "Request":
        r = e.request
        return (name, r.method, r.target, r.version, tuple(r.headers.items()))
    if name == "Accepted":
        r = e.response
        return (name, e.subprotocol, r.status, r.reason, tuple(r.headers.items()), r.body)
    return (name,) + tuple(e)


def parse_written(data: bytes, masked: bool):
    """Frames a connection wrote: [(fin, rsv, opcode, payload)], decoded here independently.

    Raises Finding when the bytes are not a sequence of whole frames masked as the role requires.
    """
    frames = []
    pos = 0
    n = len(data)
    while pos < n:
        if n - pos < 2:
            finding("written.truncated", f"truncated frame header at {pos} in {data!r}")
            return frames
        b0, b1 = data[pos], data[pos + 1]
        length = b1 & 0x7F
        p = pos + 2
        if length == 126:
            length = int.from_bytes(data[p : p + 2], "big")
            p += 2
        elif length == 127:
            length = int.from_bytes(data[p : p + 8], "big")
            p += 8
        if bool(b1 & 0x80) != masked:
            finding("written.mask", f"frame at {pos} masked={bool(b1 & 0x80)}, expected {masked}: {data!r}")
        key = b"\0\0\0\0"
        if b1 & 0x80:
            key = data[p : p + 4]
            p += 4
        payload = data[p : p + length]
        if len(payload) != length or p > n:
            finding("written.truncated", f"truncated frame at {pos} in {data!r}")
            return frames
        payload = bytes(b ^ key[i & 3] for i, b in enumerate(payload))
        frames.append((bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0x0F, payload))
        pos = p + length
    return frames


def sendable_close_code(code: int) -> bool:
    return code in (1000, 1001, 1002, 1003) or 1007 <= code <= 1014 or 3000 <= code <= 4999


def run(test_one_input) -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
