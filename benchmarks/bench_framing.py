"""Framing micro-benchmarks: both wsframe backends next to their peers, one group per case.

Cases (issue 2, "Benchmarks"):

* ``unmask <size>``: XOR with a 4-byte key, 8 B to 16 MiB. wsframe's copying
  ``mask`` (compiled and pure) and in-place ``mask_inplace`` (compiled), websockets' C
  ``apply_mask`` (copying), aiohttp's compiled mask (in place on a bytearray),
  the pure peers (websockets' big-int ``apply_mask``, wsproto's
  ``XorMaskerSimple``, aiohttp's ``translate`` mask) and two plain copies of
  the same size as the ceiling: ``bytes(bytearray)`` (allocate + memcpy: what a
  copying unmask also does, so the fair ceiling for it) and
  ``memoryview(dst)[:] = src`` into a preallocated bytearray (memcpy alone, the
  ceiling for an in-place pass).
* ``unmask 8 B x 1000 calls (C-driven loop)``: at 8 B the harness's own
  per-call cost is most of the time, so this group makes 1000 calls per
  operation through ``map()`` in C, resolving per-call overheads of a few ns.
* ``parse 10000 x <size>``: one receive buffer of 10,000 masked client frames
  (binary, FIN, a fresh random key each) parsed by one call per round, every
  payload delivered as ``bytes``. Fresh parser state for each round is made
  outside the timing (``benchmark.pedantic`` with a setup); what is timed is
  what happens after ``recv`` returned the buffer (see each parser below), and
  freeing one round's worth of delivered frames (``Parser.timed``), the same
  for all: per-frame objects cost when they go as well as when they come.
* ``encode <size> server|client``: one frame, unmasked (server) or masked
  with a given key (client).
* ``utf8 <size> ascii|cjk``: whole-buffer validation, and the incremental
  validator the reader uses, against ``bytes.decode("utf-8")``.

Peers are optional: a missing one skips its rows. Ratios against the targets
are printed at the end of the run by conftest.py.
"""

from __future__ import annotations

import asyncio
import logging
import math
import operator
import random
import socket
import struct
import time
from collections import deque
from itertools import repeat
from typing import Any, Callable, Dict, List, Tuple

import pytest

from wsframe.protocol import backend as _backend

BACKENDS = {name: _backend.load(name) for name in _backend.available()}
KEY = b"\x37\xfa\x21\x3d"
OP_BINARY = 0x2

KiB = 1024
MiB = 1024 * KiB
SIZES = [(8, "8 B"), (125, "125 B"), (KiB, "1 KiB"), (64 * KiB, "64 KiB"), (MiB, "1 MiB"), (16 * MiB, "16 MiB")]

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def backend(name: str) -> Any:
    if name not in BACKENDS:
        pytest.skip(f"wsframe {name} backend not built")
    return BACKENDS[name]


def need(module: str, attr: str = "") -> Any:
    """Import an optional peer (``module`` or ``module:attr``), skipping when absent."""
    mod = pytest.importorskip(module)
    return getattr(mod, attr) if attr else mod


_DATA: Dict[int, bytes] = {}


def data(n: int) -> bytes:
    if n not in _DATA:
        _DATA[n] = random.Random(n).randbytes(n)
    return _DATA[n]


def info(benchmark: Any, case: str, impl: str, order: int = 0, **extra: Any) -> None:
    benchmark.extra_info.update(suite="framing", case=case, impl=impl, order=order, **extra)


def rounds_for(benchmark: Any, seconds_per_round: float) -> int:
    """Rounds for a pedantic benchmark, sized as pytest-benchmark sizes its own (max-time, min-rounds)."""
    max_time = float(getattr(benchmark, "_max_time", 1.0))
    min_rounds = int(getattr(benchmark, "_min_rounds", 5))
    return max(min_rounds, min(100_000, math.ceil(max_time / max(seconds_per_round, 1e-9))))


# ---------------------------------------------------------------------------
# unmask


def reference_mask(payload: bytes, key: bytes) -> bytes:
    """XOR by big-integer arithmetic, independent of every implementation measured."""
    n = len(payload)
    pad = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(pad, "little")).to_bytes(n, "little")


def unmask_impl(impl: str, n: int) -> Tuple[Callable[..., Any], tuple]:
    """(function, args) so the harness calls the function itself, with no wrapper in between."""
    src = data(n)
    if impl == "wsframe cython mask":
        return backend("cython").mask, (src, KEY)
    if impl == "wsframe cython mask_inplace":
        return backend("cython").mask_inplace, (bytearray(src), KEY)
    if impl == "wsframe python mask":
        return backend("python").mask, (src, KEY)
    if impl == "websockets C apply_mask":
        return need("websockets.speedups", "apply_mask"), (src, KEY)
    if impl == "aiohttp C mask (in place)":
        return need("aiohttp._websocket.mask", "_websocket_mask_cython"), (KEY, bytearray(src))
    if impl == "copy: bytes(bytearray)":
        return bytes, (bytearray(src),)
    if impl == "copy: memoryview(dst)[:] = src":
        # memcpy into a preallocated buffer. (bytearray slice assignment from bytes
        # first copies the bytes into a temporary bytearray: two copies, not a ceiling.)
        return memoryview(bytearray(n)).__setitem__, (slice(None), src)
    if impl == "websockets pure apply_mask":
        return need("websockets.utils", "apply_mask"), (src, KEY)
    if impl == "wsproto XorMaskerSimple":
        masker_class = need("wsproto.frame_protocol", "XorMaskerSimple")

        def wsproto_mask(payload: bytes, key: bytes, masker_class: Any = masker_class) -> bytearray:
            # What wsproto does per frame: a masker for the frame's key, then process().
            return masker_class(key).process(payload)

        return wsproto_mask, (src, KEY)
    if impl == "aiohttp pure mask (in place)":
        return need("aiohttp._websocket.helpers", "_websocket_mask_python"), (KEY, bytearray(src))
    if impl == "harness: C call doing nothing":
        return operator.is_, (src, KEY)
    raise AssertionError(impl)


UNMASK_IMPLS = [
    "wsframe cython mask",
    "wsframe cython mask_inplace",
    "wsframe python mask",
    "websockets C apply_mask",
    "aiohttp C mask (in place)",
    "copy: bytes(bytearray)",
    "copy: memoryview(dst)[:] = src",
    "websockets pure apply_mask",
    "wsproto XorMaskerSimple",
    "aiohttp pure mask (in place)",
]


def _unmask_params() -> List[Any]:
    params = []
    for order, (n, label) in enumerate(SIZES):
        impls = UNMASK_IMPLS + (["harness: C call doing nothing"] if n == 8 else [])
        for impl in impls:
            params.append(pytest.param(n, label, impl, order, id=f"{label.replace(' ', '')}-{impl}"))
    return params


@pytest.mark.parametrize("n, label, impl, order", _unmask_params())
def test_unmask(benchmark: Any, n: int, label: str, impl: str, order: int) -> None:
    fn, args = unmask_impl(impl, n)
    if not impl.startswith(("copy", "harness")):
        expect = reference_mask(data(n), KEY)
        if "in place" in impl or "inplace" in impl:
            buf = args[0] if isinstance(args[0], bytearray) else args[1]
            fn(*args)
            assert buf == expect
            fn(*args)  # and back
            assert buf == data(n)
        else:
            assert bytes(fn(*args)) == expect
    benchmark.group = f"unmask {label}"
    info(benchmark, "unmask", impl, order, bytes=n)
    benchmark(fn, *args)


CALLS = 1000
SMALL_CALL_IMPLS = [
    "wsframe cython mask",
    "wsframe cython mask_inplace",
    "websockets C apply_mask",
    "aiohttp C mask (in place)",
    "harness: C call doing nothing",
]


@pytest.mark.parametrize("impl", SMALL_CALL_IMPLS)
def test_unmask_8b_calls(benchmark: Any, impl: str) -> None:
    """1000 calls on 8 bytes driven by map() in C: per-call cost without the harness's own ~30 ns per call."""
    fn, (a, b) = unmask_impl(impl, 8)

    def calls(fn: Any = fn, a: Any = a, b: Any = b) -> None:
        deque(map(fn, repeat(a, CALLS), repeat(b, CALLS)), maxlen=0)

    benchmark.group = f"unmask 8 B x {CALLS} calls (C-driven loop)"
    info(benchmark, "unmask", impl, len(SIZES), bytes=8 * CALLS)
    benchmark(calls)


# ---------------------------------------------------------------------------
# batch parsing

N_FRAMES = 10_000
_FRAMES: Dict[int, Tuple[bytes, List[bytes]]] = {}


def client_frames(size: int) -> Tuple[bytes, List[bytes]]:
    """10,000 masked binary frames of ``size``-byte payloads (and the payloads), built here by hand."""
    if size not in _FRAMES:
        rng = random.Random(size)
        parts, payloads = [], []
        for _ in range(N_FRAMES):
            payload = rng.randbytes(size)
            key = rng.randbytes(4)
            masked = reference_mask(payload, key)
            if size < 126:
                head = struct.pack("!BB", 0x80 | OP_BINARY, 0x80 | size)
            elif size < 65536:
                head = struct.pack("!BBH", 0x80 | OP_BINARY, 0x80 | 126, size)
            else:
                head = struct.pack("!BBQ", 0x80 | OP_BINARY, 0x80 | 127, size)
            parts.append(head + key + masked)
            payloads.append(payload)
        _FRAMES[size] = (b"".join(parts), payloads)
    return _FRAMES[size]


class Parser:
    """One parser driven over one buffer: ``setup()`` -> args (untimed), ``run(*args)`` (timed)."""

    def __init__(self, buf: bytes) -> None:
        self.buf = buf

    def setup(self) -> tuple:
        raise NotImplementedError

    def run(self, *args: Any) -> Any:
        raise NotImplementedError

    def payloads(self, result: Any) -> List[bytes]:
        raise NotImplementedError

    def check(self, result: Any, expected: List[bytes]) -> bool:
        return self.payloads(result) == expected

    def hold(self, result: Any) -> Any:
        """What keeps the delivered frames alive once the parser state is gone."""
        return result

    def timed(self, *args: Any) -> None:
        # Parse, then free the frames delivered by the previous round: freeing
        # per-frame objects is part of their cost, so it is timed, once per
        # round, for every parser alike. The previous round's frames, not this
        # one's: this round's sit above them in the heap, so freeing the older
        # ones leaves reusable memory below instead of handing the top of the
        # heap back to the OS, to be faulted in again by the next round (an
        # allocator artefact of holding 10 MB of 1 KiB payloads at once, which
        # no server receiving frame by frame sees).
        kept = self.hold(self.run(*args))
        self.kept, old = kept, getattr(self, "kept", None)
        del old


class WsframeParser(Parser):
    """``FrameReader(require_mask=True).feed(buf)``: a list of Frame objects, payloads unmasked ``bytes``."""

    def __init__(self, buf: bytes, name: str) -> None:
        super().__init__(buf)
        self.reader_class = backend(name).FrameReader

    def setup(self) -> tuple:
        return (self.reader_class(require_mask=True),), {}

    def run(self, reader: Any) -> Any:
        return reader.feed(self.buf)

    def payloads(self, frames: Any) -> List[bytes]:
        assert all(f.opcode == OP_BINARY and f.fin and type(f.payload) is bytes for f in frames)
        return [f.payload for f in frames]


class _PausingProtocol:
    _reading_paused = False

    def pause_reading(self) -> None:
        self._reading_paused = True

    def resume_reading(self) -> None:
        self._reading_paused = False


class AiohttpParser(Parser):
    """aiohttp's compiled ``WebSocketReader.feed_data(buf)``, messages into its ``WebSocketDataQueue``.

    The compiled reader types its queue as the compiled ``WebSocketDataQueue``,
    so the real queue is used (limit high enough never to pause); a fresh
    reader and queue per round, since the queue's size counter only drains
    through its async ``read()``.
    """

    def __init__(self, buf: bytes) -> None:
        super().__init__(buf)
        reader_c = need("aiohttp._websocket.reader_c")
        self.queue_class = reader_c.WebSocketDataQueue
        self.reader_class = reader_c.WebSocketReader

    def setup(self) -> tuple:
        queue = self.queue_class(_PausingProtocol(), 2**30, loop=None)
        reader = self.reader_class(queue, 4 * MiB, compress=False, decode_text=False)
        return (reader, queue), {}

    def run(self, reader: Any, queue: Any) -> Any:
        reader.feed_data(self.buf)
        return queue

    def payloads(self, queue: Any) -> List[bytes]:
        msgs = [m for m, _size in queue._buffer]
        assert all(type(m.data) is bytes for m in msgs)
        return [m.data for m in msgs]

    def hold(self, queue: Any) -> Any:
        return queue._buffer  # the deque of messages, not the queue (freed with the reader)


class _FakeTransport:
    """Just enough of an asyncio transport for picows' WSProtocol (no network)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # never connected
        self.written: List[bytes] = []

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.sock if name == "socket" else default

    def get_write_buffer_size(self) -> int:
        return 0

    def write(self, data: Any) -> None:
        self.written.append(bytes(data))

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        self.sock.close()

    abort = close


class PicowsParser(Parser):
    """picows' Cython parser inside ``WSProtocol`` (an asyncio BufferedProtocol), driven directly.

    The protocol is built in an event loop with a fake transport and completes
    a real server handshake; then each round copies the buffer into
    ``get_buffer()`` (untimed: that is the ``recv_into`` a BufferedProtocol
    gets from the loop) and times ``buffer_updated(len(buf))``, which parses
    every frame, unmasks in place and calls ``on_ws_frame`` of a Python
    listener that keeps ``frame.get_payload_as_bytes()``.
    """

    REQUEST = (
        b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )

    def __init__(self, buf: bytes, copy: bool = True) -> None:
        super().__init__(buf)
        picows = need("picows")
        from picows.picows import WSListener, WSProtocol

        class Collect(WSListener):
            def __init__(self) -> None:
                self.payloads: List[Any] = []

            def on_ws_frame(self, transport: Any, frame: Any) -> None:
                self.payloads.append(frame.get_payload_as_bytes())

        class Count(Collect):
            # The floor of any picows application: its parser plus one Python
            # callback per frame, the payload left in the receive buffer.
            def on_ws_frame(self, transport: Any, frame: Any) -> None:
                self.payloads.append(None)

        self.copy = copy
        self.listener = Collect() if copy else Count()
        self.transport = _FakeTransport()
        self.loop = asyncio.new_event_loop()

        async def make() -> Any:
            proto = WSProtocol(
                None, None, False,  # host_port, ws_path, is_client_side
                lambda request: self.listener,
                logging.getLogger("bench.picows"),
                True, None,  # disconnect_on_exception, handshake timeout
                False, 10.0, 10.0, picows.WSAutoPingStrategy.PING_WHEN_IDLE,  # no auto ping
                True,  # auto pong
                1 << 30,  # max_frame_size
                None,  # extra_headers
                2 * len(buf) + 4096,  # read buffer: the whole receive buffer fits, no regrowth
            )
            proto.connection_made(self.transport)
            self._feed(proto, self.REQUEST)
            return proto

        self.proto = self.loop.run_until_complete(make())
        assert self.transport.written and self.transport.written[0].startswith(b"HTTP/1.1 101")

    @staticmethod
    def _feed(proto: Any, chunk: bytes) -> None:
        view = proto.get_buffer(-1)
        view[: len(chunk)] = chunk
        proto.buffer_updated(len(chunk))

    def setup(self) -> tuple:
        self.listener.payloads = []
        view = self.proto.get_buffer(-1)
        assert len(view) >= len(self.buf)
        view[: len(self.buf)] = self.buf
        return (self.proto.buffer_updated, len(self.buf)), {}

    def run(self, buffer_updated: Any, n: int) -> Any:
        buffer_updated(n)
        return self.listener.payloads

    def payloads(self, result: Any) -> List[Any]:
        return result

    def check(self, result: Any, expected: List[bytes]) -> bool:
        return result == expected if self.copy else len(result) == len(expected)


    def close(self) -> None:
        self.transport.close()
        self.loop.close()


class WebsocketsParser(Parser):
    """websockets' ``Frame.parse`` generator over its ``StreamReader``, as its ``Protocol`` drives it.

    ``feed_data`` (a copy into the reader's bytearray) is timed, as
    ``Protocol.receive_data`` does it. ``pure=True`` swaps the C
    ``apply_mask`` for its pure fallback (the test monkeypatches it).
    """

    def __init__(self, buf: bytes) -> None:
        super().__init__(buf)
        frames = need("websockets.frames")
        self.parse = frames.Frame.parse
        self.reader_class = need("websockets.streams").StreamReader

    def setup(self) -> tuple:
        return (self.reader_class(),), {}

    def run(self, reader: Any) -> Any:
        reader.feed_data(self.buf)
        parse, read_exact, frames = self.parse, reader.read_exact, []
        while reader.buffer:
            gen = parse(read_exact, mask=True, max_size=MiB, extensions=None)
            try:
                next(gen)
            except StopIteration as done:
                frames.append(done.value)
            else:
                break
        return frames

    def payloads(self, frames: Any) -> List[bytes]:
        return [bytes(f.data) for f in frames]


class WsprotoParser(Parser):
    """wsproto's ``FrameProtocol`` (server side): ``receive_bytes(buf)`` then ``received_frames()``."""

    def __init__(self, buf: bytes) -> None:
        super().__init__(buf)
        self.fp_class = need("wsproto.frame_protocol").FrameProtocol

    def setup(self) -> tuple:
        return (self.fp_class(client=False, extensions=[]),), {}

    def run(self, fp: Any) -> Any:
        fp.receive_bytes(self.buf)
        return list(fp.received_frames())

    def payloads(self, frames: Any) -> List[bytes]:
        assert all(type(f.payload) is bytes for f in frames)
        return [f.payload for f in frames]


@pytest.fixture
def steady_heap() -> Any:
    """Keep glibc from handing freed heap back to the OS during the parse benchmarks.

    Each round allocates and frees 10,000 payloads at once (10 MB at 1 KiB).
    With glibc's defaults the free can shrink the heap (trim threshold 128 KiB)
    and the next round faults the pages back in: milliseconds of kernel time,
    landing at random on one parser or another. A server receiving frames one
    by one keeps a warm heap, which is what this reproduces. No-op elsewhere.
    """
    import ctypes
    import ctypes.util

    M_TRIM_THRESHOLD, M_TOP_PAD = -1, -2
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or None).mallopt
    except (OSError, AttributeError):
        yield
        return
    mallopt(M_TRIM_THRESHOLD, 1 << 30)
    mallopt(M_TOP_PAD, 64 << 20)
    try:
        yield
    finally:
        mallopt(M_TRIM_THRESHOLD, 128 * 1024)  # glibc's defaults
        mallopt(M_TOP_PAD, 0)


PARSERS = {
    "wsframe cython FrameReader": lambda buf: WsframeParser(buf, "cython"),
    "wsframe python FrameReader": lambda buf: WsframeParser(buf, "python"),
    "aiohttp C WebSocketReader": AiohttpParser,
    "picows C WSProtocol": PicowsParser,
    "picows C WSProtocol (listener keeps no payload)": lambda buf: PicowsParser(buf, copy=False),
    "websockets Frame.parse (C apply_mask)": WebsocketsParser,
    "websockets Frame.parse (pure)": WebsocketsParser,
    "wsproto FrameProtocol": WsprotoParser,
}


@pytest.mark.parametrize("size, label, order", [(16, "16 B", 0), (KiB, "1 KiB", 1)], ids=["16B", "1KiB"])
@pytest.mark.parametrize("impl", list(PARSERS))
def test_parse(
    benchmark: Any, monkeypatch: pytest.MonkeyPatch, steady_heap: Any, impl: str, size: int, label: str, order: int
) -> None:
    buf, expected = client_frames(size)
    if impl == "websockets Frame.parse (pure)":
        monkeypatch.setattr(need("websockets.frames"), "apply_mask", need("websockets.utils", "apply_mask"))
    parser = PARSERS[impl](buf)
    try:
        # One untimed run: checks every payload, and sizes the rounds.
        args, kwargs = parser.setup()
        t0 = time.perf_counter()
        result = parser.run(*args, **kwargs)
        elapsed = time.perf_counter() - t0
        assert parser.check(result, expected)
        benchmark.group = f"parse {N_FRAMES} x {label}"
        info(benchmark, "parse", impl, order, frames=N_FRAMES, bytes=len(buf))
        benchmark.pedantic(parser.timed, setup=parser.setup, rounds=rounds_for(benchmark, elapsed), warmup_rounds=1)
    finally:
        if hasattr(parser, "close"):
            parser.close()


# ---------------------------------------------------------------------------
# encoding


def encode_impl(impl: str, n: int, client: bool, monkeypatch: pytest.MonkeyPatch) -> Tuple[Callable[..., Any], tuple]:
    payload = data(n)
    key_args = (True, 0, KEY) if client else ()
    if impl.startswith("wsframe"):
        ns = backend(impl.split()[1])
        if impl.endswith("encode_frame_into"):
            out = bytearray(ns.frame_size(n, client))
            return ns.encode_frame_into, (out, 0, OP_BINARY, payload) + key_args
        return ns.encode_frame, (OP_BINARY, payload) + key_args
    if impl.startswith("websockets Frame.serialize"):
        frames = need("websockets.frames")
        if impl.endswith("(pure)"):
            monkeypatch.setattr(frames, "apply_mask", need("websockets.utils", "apply_mask"))
        frame_class, opcode = frames.Frame, frames.Opcode.BINARY

        def ws_serialize(payload: bytes = payload, mask: bool = client) -> bytes:
            # What websockets' Protocol.send_binary does: a Frame, then serialize
            # (which draws its own mask key with secrets.token_bytes).
            return frame_class(opcode, payload).serialize(mask=mask)

        return ws_serialize, ()
    if impl == "wsproto send_data":
        fp = need("wsproto.frame_protocol").FrameProtocol(client=client, extensions=[])
        return fp.send_data, (payload,)  # masks with its own os.urandom(4) key when client
    raise AssertionError(impl)


ENCODE_IMPLS = [
    "wsframe cython encode_frame",
    "wsframe cython encode_frame_into",
    "wsframe python encode_frame",
    "wsframe python encode_frame_into",
    "websockets Frame.serialize",
    "websockets Frame.serialize (pure)",
    "wsproto send_data",
]


def _encode_params() -> List[Any]:
    params = []
    order = 0
    for n, label in [(16, "16 B"), (64 * KiB, "64 KiB")]:
        for side in ("server", "client"):
            for impl in ENCODE_IMPLS:
                if side == "server" and impl.endswith("(pure)"):
                    continue  # unmasked: no apply_mask to swap
                params.append(pytest.param(n, label, side, impl, order, id=f"{label.replace(' ', '')}-{side}-{impl}"))
            order += 1
    return params


@pytest.mark.parametrize("n, label, side, impl, order", _encode_params())
def test_encode(
    benchmark: Any, monkeypatch: pytest.MonkeyPatch, n: int, label: str, side: str, impl: str, order: int
) -> None:
    client = side == "client"
    fn, args = encode_impl(impl, n, client, monkeypatch)
    size = backend("python").frame_size(n, client)
    out = fn(*args)
    assert (out if isinstance(out, int) else len(out)) == size
    benchmark.group = f"encode {label} {side}"
    info(benchmark, "encode", impl, order, frames=1, bytes=n)
    benchmark(fn, *args)


# ---------------------------------------------------------------------------
# UTF-8 validation

_TEXTS: Dict[Tuple[int, str], bytes] = {}


def text(n: int, kind: str) -> bytes:
    """``n`` bytes of valid UTF-8: English-like ASCII, or Chinese with ASCII spaces, digits and punctuation."""
    if (n, kind) not in _TEXTS:
        rng = random.Random(n)
        chunks: List[str] = []
        size = 0
        while size < n:
            if kind == "ascii":
                word = "".join(rng.choice("etaoinshrdlucmfwypvbgkjqxz") for _ in range(rng.randint(1, 9)))
                piece = word + rng.choice("     ,.")
            else:
                # 6 to 20 common Han characters (U+4E00..U+9FA5), then one ASCII separator.
                han = "".join(chr(rng.randint(0x4E00, 0x9FA5)) for _ in range(rng.randint(6, 20)))
                piece = han + rng.choice([", ", ". ", " ", "! ", "? ", "; ", str(rng.randint(0, 999))])
            chunks.append(piece)
            size += len(piece.encode("utf-8"))
        raw = "".join(chunks).encode("utf-8")[:n]
        # Cut back to a character boundary, pad with spaces to exactly n bytes.
        while True:
            try:
                raw.decode("utf-8")
                break
            except UnicodeDecodeError:
                raw = raw[:-1]
        _TEXTS[(n, kind)] = raw + b" " * (n - len(raw))
    return _TEXTS[(n, kind)]


def _incremental(ns: Any, payload: bytes) -> Callable[[], None]:
    validator = ns.Utf8Validator()
    reset, feed, finish = validator.reset, validator.feed, validator.finish

    def validate() -> None:
        # A whole text message through the incremental validator, as FrameReader uses it.
        reset()
        feed(payload)
        finish()

    return validate


UTF8_IMPLS = [
    "wsframe cython validate_utf8",
    "wsframe cython Utf8Validator",
    "wsframe python validate_utf8",
    "wsframe python Utf8Validator",
    "bytes.decode('utf-8')",
]


@pytest.mark.parametrize("impl", UTF8_IMPLS)
@pytest.mark.parametrize(
    "n, label, kind, order",
    [(KiB, "1 KiB", "ascii", 0), (KiB, "1 KiB", "cjk", 1), (MiB, "1 MiB", "ascii", 2), (MiB, "1 MiB", "cjk", 3)],
    ids=["1KiB-ascii", "1KiB-cjk", "1MiB-ascii", "1MiB-cjk"],
)
def test_utf8(benchmark: Any, impl: str, n: int, label: str, kind: str, order: int) -> None:
    payload = text(n, kind)
    if impl == "bytes.decode('utf-8')":
        fn, args = bytes.decode, (payload,)
    else:
        ns = backend(impl.split()[1])
        if impl.endswith("validate_utf8"):
            fn, args = ns.validate_utf8, (payload,)
            assert fn(payload) is True
        else:
            fn, args = _incremental(ns, payload), ()
    fn(*args)
    benchmark.group = f"utf8 {label} {kind}"
    info(benchmark, "utf8", impl, order, bytes=n)
    benchmark(fn, *args)
