"""permessage-deflate (RFC 7692) end to end: echo throughput, memory per connection, compression ratio.

A plain script (pytest collects nothing from it)::

    python setup.py build_ext --inplace            # the compiled backend, from a checkout
    python benchmarks/bench_deflate.py             # everything, 3 rounds (about 12 minutes on 2 cores)
    python benchmarks/bench_deflate.py --only echo --servers wsframe-reactor:deflate,websockets-asyncio:deflate
    python benchmarks/bench_deflate.py --repeat 1 --duration 1      # a quick look

Servers are named ``IMPL:SETTING``: ``wsframe-threaded`` (``wsframe.serve(fn)``,
a thread per connection), ``wsframe-reactor`` (``wsframe.serve(EventHandler
subclass)``), ``websockets-asyncio``, ``websockets-sync``, ``aiohttp``; the
setting is wsframe's ``compression=`` name (``deflate``, ``stateless``,
``context``), ``deflate`` for the peers (their default: websockets' window of
2**12 and memLevel 5 with context takeover; aiohttp's ``compress=True``), or
``off``. A setting may end in ``+zlib`` or ``+zlib-ng``: the zlib the server
compresses with (wsframe through ``WSFRAME_ZLIB``, aiohttp through
``aiohttp.set_zlib_backend``; websockets has only the standard library's);
without it, wsframe takes zlib-ng where installed and the peers the standard
library's. ``raw-echo`` is bench_echo.py's C epoll server that returns bytes as
they come: the ceiling of the load generator.

The corpus (``corpus()``): 100 JSON-like text messages per size (1 KiB and 16
KiB exactly, ASCII), arrays of event records with the same keys and varied
values (ids, user names from a pool, timestamps, prices, tags, coordinates),
from a fixed seed: every run and every server gets the same bytes.

How it measures:

* **echo**: the server runs in its own process pinned to CPU 0, the load
  generator (``_load``, this file) in another pinned to CPU 1. The generator
  opens N connections with wsframe's sans-I/O ``ClientConnection`` offering
  ``permessage-deflate; client_no_context_takeover; client_max_window_bits``,
  so its messages are compressed each on its own: every message of the corpus
  is compressed and masked *once*, before the measurement, and those frames
  are sent as they are (the mask key is reused, which is fine for a
  benchmark). It keeps M messages in flight per connection with epoll, and of
  the replies it parses frame headers only, to count complete messages (and
  those with RSV1 set, i.e. compressed: the script warns if a server
  answered uncompressed); it never inflates. Correctness is checked once per
  server beforehand: a normal ``wsframe.connect()`` client with the same
  offer sends one message of each size and compares the inflated echo.
* Server CPU per message is the server process' user + system time (all its
  threads, from /proc) over the measured window, divided by the messages of
  the window; the generator reads it at the window's edges. It stays
  meaningful on a busy machine, where messages per second does not.
* Why the generator is not the bottleneck: its work per message is a slice of
  pre-built bytes to send and a header of 2-4 bytes to read, no zlib. The
  tables show it: the generator's own CPU per message and how busy its core
  was, for every row, and the ``raw-echo`` row (the same generator against a
  server that does no WebSocket work) is the most it can drive. A server row
  within a third of that ceiling gets a note, and so does a row where the
  generator's core was more than 80 % busy. On a noisy 2-core VM the
  generator used 13-26 µs of CPU per message (most of it the kernel's
  loopback TCP work, which a C generator pays too) against 50-450 µs for the
  servers with compression: the compressed rows measure the servers.
  Uncompressed 1 KiB echo costs a server about as much as the generator, so
  in the ``:off`` rows messages/s may be the generator's limit: compare
  their CPU per message, which does not depend on it.
* The 1 x 1 loads are latency-bound: messages/s there is round trips per
  second (both processes' wake-ups included), not a server's capacity.
* aiohttp compresses at zlib level 1 (``Z_BEST_SPEED``), the others at
  level 6: part of its lower CPU per message is a worse ratio (see the bytes
  received per message, and the ratio table).
* The reference rows with ``:off`` run the same loads uncompressed (the
  generator then offers no extension and sends plain masked frames).
* **memory**: 1000 connections (``--connections``), each sending one
  compressed 16 KiB message of the corpus and reading the compressed echo
  (inflated and compared), then staying open and idle; the server's RSS
  growth over them (from a settled state after one warm-up exchange) divided
  by their number. Twice per server: with a browser's offer
  (``permessage-deflate; client_max_window_bits``: the client keeps its
  context, so the server's decompressor keeps a window) and with wsframe's
  default client offer (``ClientDeflateFactory()``: no client context, the
  server's window at most 2**12).
* **ratio**: no network: each setting's server-side negotiation answers a
  browser's offer (wsframe's ``ServerDeflateFactory``, websockets'
  ``ServerPerMessageDeflateFactory`` with its defaults; aiohttp's
  ``ws_ext_parse``, then zlib with its writer's parameters), and the agreed
  extension objects compress the 100 messages of the corpus in sequence, in
  both directions (client to server: a browser-like client that keeps
  context unless told not to, with the window it is asked for). Ratio =
  compressed payload bytes / original bytes, over the 100 messages: context
  takeover matters there.

The output ends with Markdown tables for docs/benchmarks.md, with the command
line and the versions.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import resource
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench_echo  # noqa: E402  (ServerProcess, _pin, _median, build_loadgen, SRC, the CPU numbers)
from bench_echo import LOAD_CPU, SERVER_CPU, SRC, ServerProcess, _median, _pin  # noqa: E402

if (SRC / "wsframe").is_dir() and str(SRC) not in sys.path:  # benchmark the checkout, as the servers do
    sys.path.insert(0, str(SRC))

SIZES = (1024, 16384)
CORPUS_MESSAGES = 100
#: (label, connections, in flight per connection)
LOADS = [("16 conns x 4 in flight", 16, 4), ("1 conn x 1 in flight", 1, 1)]
ECHO_SERVERS = [
    "wsframe-threaded:deflate", "wsframe-reactor:deflate", "wsframe-reactor:context",
    "websockets-asyncio:deflate", "websockets-sync:deflate", "aiohttp:deflate",
    "wsframe-threaded:off", "wsframe-reactor:off", "websockets-asyncio:off", "websockets-sync:off",
]
MEMORY_SERVERS = [
    "wsframe-reactor:deflate", "wsframe-reactor:stateless", "wsframe-reactor:context", "wsframe-reactor:off",
    "wsframe-threaded:deflate", "websockets-asyncio:deflate",
]
REFERENCE = "websockets-asyncio:deflate"  # the ratios are against this row
CEILING = "raw-echo"


# -- the corpus ------------------------------------------------------------------------------

_EVENTS = ["view", "click", "scroll", "purchase", "login", "logout", "search", "add_to_cart"]
_TAGS = ["mobile", "desktop", "beta", "returning", "new", "promo", "eu", "us", "apac", "premium", "trial"]
_WORDS = ("lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut "
          "labore et dolore magna aliqua").split()


@functools.lru_cache(maxsize=None)
def corpus(size: int, count: int = CORPUS_MESSAGES, seed: int = 7692) -> Tuple[str, ...]:
    """``count`` JSON texts of exactly ``size`` ASCII bytes: event records, same keys, varied values."""
    rng = random.Random(seed * 100003 + size)
    users = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(5, 10))) for _ in range(200)]
    messages = []
    for seq in range(count):
        head = json.dumps({"type": "events", "seq": seq, "server": f"node-{rng.randint(1, 8)}"}, separators=(",", ":"))
        prefix, suffix = head[:-1] + ',"records":[', '],"note":"%s"}'
        records: List[str] = []
        used = len(prefix) + len(suffix) - 2  # without the note
        while True:
            record = json.dumps(_record(rng, users), separators=(",", ":"))
            extra = len(record) + (1 if records else 0)
            if used + extra > size:
                break
            records.append(record)
            used += extra
        note = ""
        while len(note) < size - used:
            note += rng.choice(_WORDS) + " "
        text = prefix + ",".join(records) + suffix % note[:size - used]
        assert len(text) == size and text.isascii() and json.loads(text)
        messages.append(text)
    return tuple(messages)


def _record(rng: random.Random, users: List[str]) -> Dict[str, Any]:
    return {
        "id": rng.randrange(10**9),
        "user": rng.choice(users),
        "event": rng.choice(_EVENTS),
        "ts": round(1_700_000_000 + rng.random() * 10**7, 3),
        "price": round(rng.uniform(0, 500), 2) if rng.random() < 0.4 else None,
        "tags": rng.sample(_TAGS, rng.randint(0, 3)),
        "active": rng.random() < 0.7,
        "geo": {"lat": round(rng.uniform(-90, 90), 4), "lon": round(rng.uniform(-180, 180), 4)},
    }


# -- the servers (each in its own process: ``bench_deflate.py _serve IMPL SETTING``) ----------


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def serve_main(impl: str, setting: str) -> None:
    """Run an echo server for text and binary messages, print "PORT n detail", stop on SIGTERM."""
    setting, _, zlib_name = setting.partition("+")
    if zlib_name:  # wsframe reads it at import; aiohttp is told below
        os.environ["WSFRAME_ZLIB"] = zlib_name
    _pin(SERVER_CPU)
    _raise_fd_limit()
    import logging

    logging.basicConfig(level=logging.CRITICAL)  # the load generator just disconnects
    compression = None if setting == "off" else setting
    if impl in ("wsframe-threaded", "wsframe-reactor"):
        _serve_wsframe(impl == "wsframe-reactor", compression)
    elif impl == "websockets-asyncio":
        _serve_websockets_asyncio(compression)
    elif impl == "websockets-sync":
        _serve_websockets_sync(compression)
    elif impl == "aiohttp":
        _serve_aiohttp(compression is not None)
    else:
        raise SystemExit(f"unknown server {impl}")


def _serve_wsframe(reactor: bool, compression: Optional[str]) -> None:
    import wsframe

    if reactor:
        class Echo(wsframe.EventHandler):
            def on_message(self, message: Any) -> None:
                self.send(message)

        handler: Any = Echo
    else:
        def handler(ws: Any) -> None:
            for message in ws:
                ws.send(message)

    server = wsframe.serve(handler, "127.0.0.1", 0, compression=compression, max_message_size=2 << 20,
                           max_connections=20000)
    signal.signal(signal.SIGTERM, lambda *_: server.shutdown())
    print(f"PORT {server.port} {server.backend}", flush=True)
    server.serve_forever()


def _serve_websockets_asyncio(compression: Optional[str]) -> None:
    import asyncio

    from websockets.asyncio.server import serve
    from websockets.exceptions import ConnectionClosed

    async def echo(ws: Any) -> None:
        try:
            async for message in ws:
                await ws.send(message)
        except ConnectionClosed:
            pass

    async def main() -> None:
        async with serve(echo, "127.0.0.1", 0, compression=compression, max_size=2 << 20) as server:
            stop = asyncio.get_running_loop().create_future()
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set_result, None)
            print(f"PORT {server.sockets[0].getsockname()[1]} asyncio", flush=True)
            await stop

    asyncio.run(main())


def _serve_websockets_sync(compression: Optional[str]) -> None:
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.server import serve

    def echo(ws: Any) -> None:
        try:
            for message in ws:
                ws.send(message)
        except ConnectionClosed:
            pass

    with serve(echo, "127.0.0.1", 0, compression=compression, max_size=2 << 20) as server:
        signal.signal(signal.SIGTERM, lambda *_: server.shutdown())
        print(f"PORT {server.socket.getsockname()[1]} threads", flush=True)
        server.serve_forever()


def _serve_aiohttp(compress: bool) -> None:
    import asyncio

    import aiohttp
    from aiohttp import WSMsgType, web

    if os.environ.get("WSFRAME_ZLIB") == "zlib-ng":
        from zlib_ng import zlib_ng

        aiohttp.set_zlib_backend(zlib_ng)

    async def echo(request: Any) -> Any:
        ws = web.WebSocketResponse(compress=compress, max_msg_size=2 << 20)
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                await ws.send_str(msg.data)
            elif msg.type == WSMsgType.BINARY:
                await ws.send_bytes(msg.data)
        return ws

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/", echo)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        stop = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set_result, None)
        print(f"PORT {runner.addresses[0][1]} asyncio", flush=True)
        await stop
        await runner.cleanup()

    asyncio.run(main())


LOADGEN_BIN = ""  # bench_echo's C program, for raw-echo; built in main()


def start_server(name: str) -> ServerProcess:
    impl, _, setting = name.partition(":")
    if impl == CEILING:
        server = ServerProcess([LOADGEN_BIN, "echo"])
    else:
        server = ServerProcess([sys.executable, __file__, "_serve", impl, setting or "deflate"])
    if hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) > 1:
        os.sched_setaffinity(server.process.pid, {SERVER_CPU})  # raw-echo does not pin itself
    return server


def available(name: str) -> bool:
    impl = name.partition(":")[0]
    module = {"websockets-asyncio": "websockets.asyncio.server", "websockets-sync": "websockets.sync.server",
              "aiohttp": "aiohttp.web"}.get(impl)
    if module is None:
        return impl in ("wsframe-threaded", "wsframe-reactor", CEILING)
    try:
        __import__(module)
    except ImportError:
        return False
    return True


# -- clients -------------------------------------------------------------------------------


def _deflate() -> Any:
    from wsframe.protocol import deflate

    return deflate


def load_offer() -> Any:
    """The load generator's offer: ``client_no_context_takeover; client_max_window_bits`` (no server limits)."""
    return _deflate().Deflate(no_context_takeover=True, peer_max_window_bits=None)


def browser_offer() -> Any:
    """A browser's offer, ``permessage-deflate; client_max_window_bits``: context kept, no limits asked."""
    return _deflate().Deflate(no_context_takeover=False, peer_max_window_bits=None)


def dial(port: int, settings: Any) -> Tuple[socket.socket, Any]:
    """A connected socket and its open sans-I/O ClientConnection, offering ``settings`` (None: no extension)."""
    from wsframe import Accepted, ClientConnection, Rejected

    factories = [] if settings is None else [_deflate().ClientDeflateFactory(settings)]
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn = ClientConnection(f"127.0.0.1:{port}", extensions=factories, max_message_size=None)
    sock.sendall(conn.handshake_request())
    while True:
        data = sock.recv(65536)
        conn.receive_data(data)
        for event in conn.events():
            if isinstance(event, Accepted):
                return sock, conn
            if isinstance(event, Rejected):
                raise RuntimeError(f"handshake refused: {event}")
        if not data:
            raise RuntimeError("connection closed during the handshake")


def dial_raw(port: int, settings: Any) -> Tuple[socket.socket, Any]:
    """For raw-echo (which echoes the request back): the socket, and a connection negotiated in memory."""
    from wsframe import ClientConnection, ServerConnection

    factories = [] if settings is None else [_deflate().ClientDeflateFactory(settings)]
    conn = ClientConnection(f"127.0.0.1:{port}", extensions=factories, max_message_size=None)
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    request = conn.handshake_request()
    sock.sendall(request)
    echoed = b""
    while len(echoed) < len(request):
        chunk = sock.recv(len(request) - len(echoed))
        if not chunk:
            raise RuntimeError("raw-echo closed the connection")
        echoed += chunk
    peer = ServerConnection(extensions=[_deflate().ServerDeflateFactory()] if factories else [])
    peer.receive_data(request)
    list(peer.events())
    conn.receive_data(peer.accept())
    list(conn.events())
    return sock, conn


def verify(name: str, port: int, compressed: bool) -> str:
    """One round trip per size with a normal wsframe client, inflated and compared; the agreed extension."""
    import wsframe

    with wsframe.connect(f"ws://127.0.0.1:{port}/", compression=load_offer() if compressed else None,
                         max_message_size=None, proxy=None) as ws:
        for size in SIZES:
            message = corpus(size)[0]
            ws.send(message)
            if ws.recv(timeout=10) != message:
                raise RuntimeError(f"{name}: the echo of a {size} B message differs")
        answer = ws.response_headers.get("Sec-WebSocket-Extensions") if ws.response_headers else None
    return answer or "(none)"


# -- the load generator (``bench_deflate.py _load JSON``, pinned to LOAD_CPU) ------------------


class _Conn:
    """One generator connection: pre-built frames to send, a header-only reader of replies."""

    __slots__ = ("sock", "frames", "next", "out", "rest", "skip", "tail", "rsv1", "writing")

    def __init__(self, sock: socket.socket, frames: List[bytes]) -> None:
        self.sock = sock
        self.frames = frames
        self.next = 0
        self.out = bytearray()
        self.rest = b""  # an incomplete frame header
        self.skip = 0  # payload bytes of the current frame still to come
        self.tail = (0, 0)  # (messages, compressed) the current frame completes when its last byte arrives
        self.rsv1 = 0  # RSV1 of the first frame of the message being received
        self.writing = False

    def queue(self, count: int) -> None:
        frames, i, n = self.frames, self.next, len(self.frames)
        for _ in range(count):
            self.out += frames[i]
            i = i + 1 if i + 1 < n else 0
        self.next = i

    def feed(self, data: bytes) -> Tuple[int, int]:
        """(complete messages, compressed ones) in ``data``; frame headers are read, payloads skipped."""
        if self.rest:
            data = self.rest + data
            self.rest = b""
        n = len(data)
        pos = self.skip
        if pos > n:
            self.skip = pos - n
            return 0, 0
        done, compressed = self.tail if pos else (0, 0)
        self.skip, self.tail = 0, (0, 0)
        while pos < n:
            if n - pos < 2:
                self.rest = data[pos:]
                break
            b0, length = data[pos], data[pos + 1] & 0x7F
            start = pos + 2 + (4 if data[pos + 1] & 0x80 else 0)  # raw-echo returns masked frames
            if length == 126:
                if n - pos < 4:
                    self.rest = data[pos:]
                    break
                length = int.from_bytes(data[pos + 2:pos + 4], "big")
                start += 2
            elif length == 127:
                if n - pos < 10:
                    self.rest = data[pos:]
                    break
                length = int.from_bytes(data[pos + 2:pos + 10], "big")
                start += 8
            opcode = b0 & 0x0F
            if opcode == 8:
                raise RuntimeError("the server closed the connection")
            if opcode in (1, 2):
                self.rsv1 = b0 & 0x40
            ends = (1, 1 if self.rsv1 else 0) if b0 & 0x80 and opcode < 8 else (0, 0)
            pos = start + length
            if pos > n:
                self.skip, self.tail = pos - n, ends
                break
            done += ends[0]
            compressed += ends[1]
        return done, compressed


def _proc_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def load_main(spec: Dict[str, Any]) -> Dict[str, float]:
    """Drive the echo load of ``spec``; the measured window's numbers."""
    _raise_fd_limit()
    messages = corpus(spec["size"])
    settings = load_offer() if spec["compress"] else None
    connect = dial_raw if spec["raw"] else dial
    conns: List[_Conn] = []
    frames_by_agreement: Dict[str, List[bytes]] = {}
    for _ in range(spec["conns"]):
        sock, conn = connect(spec["port"], settings)
        agreed = repr(conn.extensions)  # connections that agreed alike share the pre-built frames
        if agreed not in frames_by_agreement:
            frames_by_agreement[agreed] = [conn.send_text(m) for m in messages]
        sock.setblocking(False)
        conns.append(_Conn(sock, frames_by_agreement[agreed]))
    sent_bytes = sum(map(len, conns[0].frames)) / len(conns[0].frames)
    poller = select.epoll()
    by_fd = {}
    for c in conns:
        by_fd[c.sock.fileno()] = c
        poller.register(c.sock.fileno(), select.EPOLLIN)
    for c in conns:
        c.queue(spec["inflight"])
        _flush(c, poller)
    pid = spec["server_pid"]
    now = time.monotonic()
    measure_at, end_at = now + spec["warmup"], now + spec["warmup"] + spec["duration"]
    measuring = False
    count = compressed = received = 0
    while True:
        events = poller.poll(0.05)
        now = time.monotonic()
        if not measuring and now >= measure_at:
            measuring = True
            count = compressed = received = 0
            t0, own0, server0 = now, _own_cpu(), _proc_cpu(pid)
        if measuring and now >= end_at:
            break
        for fd, mask in events:
            c = by_fd[fd]
            if mask & (select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR):
                try:
                    data = c.sock.recv(1 << 20)
                except BlockingIOError:
                    data = None
                if data == b"":
                    raise RuntimeError("the server closed the connection")
                if data:
                    received += len(data)
                    done, comp = c.feed(data)
                    if done:
                        count += done
                        compressed += comp
                        c.queue(done)
            _flush(c, poller)
    own, server, seconds = _own_cpu() - own0, _proc_cpu(pid) - server0, now - t0
    for c in conns:
        c.sock.close()
    count = max(count, 1)
    return {
        "rate": count / seconds, "server_us": server * 1e6 / count, "gen_us": own * 1e6 / count,
        "gen_busy": own / seconds, "compressed": compressed / count, "reply_bytes": received / count,
        "sent_bytes": sent_bytes,
    }


def _flush(c: _Conn, poller: Any) -> None:
    if c.out:
        try:
            sent = c.sock.send(c.out)
        except BlockingIOError:
            sent = 0
        del c.out[:sent]
    want = bool(c.out)
    if want != c.writing:
        poller.modify(c.sock.fileno(), select.EPOLLIN | (select.EPOLLOUT if want else 0))
        c.writing = want


def run_load(server: ServerProcess, name: str, size: int, conns: int, inflight: int, opts: Any) -> Dict[str, float]:
    """Run the generator in its own process on LOAD_CPU against ``server``."""
    spec = {
        "port": server.port, "server_pid": server.process.pid, "size": size, "conns": conns, "inflight": inflight,
        "warmup": opts.warmup, "duration": opts.duration, "compress": not name.endswith(":off"),
        "raw": name == CEILING,
    }
    env = dict(os.environ)
    if (SRC / "wsframe").is_dir():
        env["PYTHONPATH"] = str(SRC) + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, __file__, "_load", json.dumps(spec)], capture_output=True, text=True,
                         env=env, timeout=opts.warmup + opts.duration + 120, preexec_fn=lambda: _pin(LOAD_CPU))
    if out.returncode:
        raise RuntimeError(f"load generator against {name} failed: {out.stderr.strip()[-2000:]}")
    result: Dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


# -- memory ----------------------------------------------------------------------------------


def memory_per_connection(server: ServerProcess, settings: Any, count: int) -> float:
    """KiB of server RSS per connection that exchanged one compressed 16 KiB message and then idles."""
    from wsframe import TextMessage

    message = corpus(16384)[1]

    def exchange() -> socket.socket:
        sock, conn = dial(server.port, settings)
        sock.sendall(conn.send_text(message))
        while True:
            data = sock.recv(1 << 16)
            if not data:
                raise RuntimeError("the server closed the connection")
            conn.receive_data(data)
            for event in conn.events():
                if isinstance(event, TextMessage):
                    if event.data != message:
                        raise RuntimeError("the echo differs")
                    return sock

    exchange().close()  # warm up (imports, pools, threads), then measure from a settled state
    time.sleep(1.0)
    before, _ = server.rss_kib()
    socks = [exchange() for _ in range(count)]
    time.sleep(2.0)
    after, _ = server.rss_kib()
    for sock in socks:
        sock.close()
    return (after - before) / count


# -- compression ratio -----------------------------------------------------------------------


def _browser_params() -> List[Tuple[str, Optional[str]]]:
    return [("client_max_window_bits", None)]


def ratio_wsframe(setting: str, messages: Sequence[str]) -> Tuple[float, float, str]:
    """(server-to-client ratio, client-to-server ratio, the answer) of a wsframe setting, browser offer."""
    deflate = _deflate()
    answer, server_ext = deflate.ServerDeflateFactory(deflate.SETTINGS[setting]).accept(_browser_params())
    client_ext = deflate.ClientDeflateFactory(browser_offer()).accept(answer)
    total = sum(len(m) for m in messages)
    down = sum(len(server_ext.encode(m.encode(), True, True, None)[1]) for m in messages)
    up = sum(len(client_ext.encode(m.encode(), True, True, None)[1]) for m in messages)
    return down / total, up / total, _params_text(answer)


def ratio_websockets(messages: Sequence[str]) -> Tuple[float, float, str]:
    """The same for websockets' default server settings (``compression="deflate"``)."""
    from websockets.extensions.permessage_deflate import enable_server_permessage_deflate
    from websockets.frames import Frame, Opcode

    factory = enable_server_permessage_deflate(None)[0]
    answer, server_ext = factory.process_request_params(_browser_params(), [])
    client_ext = _deflate().ClientDeflateFactory(browser_offer()).accept(list(answer))
    total = sum(len(m) for m in messages)
    down = sum(len(server_ext.encode(Frame(Opcode.TEXT, m.encode())).data) for m in messages)
    up = sum(len(client_ext.encode(m.encode(), True, True, None)[1]) for m in messages)
    return down / total, up / total, _params_text(answer)


def ratio_aiohttp(messages: Sequence[str]) -> Tuple[float, float, str]:
    """The same for aiohttp's ``compress=True``, with the zlib parameters of its writer.

    Its answer comes from aiohttp's own negotiation; its writer compresses with
    context takeover at level 1 (``Z_BEST_SPEED``), memLevel 8, a sync flush
    per message (the trailer removed), which is what this does.
    """
    from aiohttp._websocket.helpers import ws_ext_gen, ws_ext_parse

    offer = _params_text(_browser_params())
    bits, no_takeover = ws_ext_parse(offer, isserver=True)
    answer = ws_ext_gen(compress=bits, isserver=True, server_notakeover=no_takeover)
    params = [(p.split("=")[0], p.split("=")[1] if "=" in p else None) for p in answer.split("; ")[1:]]
    client_ext = _deflate().ClientDeflateFactory(browser_offer()).accept(params)
    compressor = zlib.compressobj(zlib.Z_BEST_SPEED, zlib.DEFLATED, -bits)
    total = sum(len(m) for m in messages)
    down = sum(len((compressor.compress(m.encode()) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]) for m in messages)
    up = sum(len(client_ext.encode(m.encode(), True, True, None)[1]) for m in messages)
    return down / total, up / total, answer


def _params_text(params: Sequence[Tuple[str, Optional[str]]]) -> str:
    return "; ".join(["permessage-deflate"] + [n if v is None else f"{n}={v}" for n, v in params])


# -- output ----------------------------------------------------------------------------------


def table(headers: List[str], rows: List[List[str]]) -> str:
    widths = [max(len(r[i]) for r in [headers] + rows) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(headers, widths)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |" for row in rows]
    return "\n".join(lines)


def versions() -> str:
    import wsframe

    parts = [f"wsframe {wsframe.__version__} (BACKEND {wsframe.BACKEND})"]
    for module in ("websockets", "aiohttp"):
        try:
            parts.append(f"{module} {__import__(module).__version__}")
        except ImportError:
            parts.append(f"{module} not installed")
    parts.append(f"zlib {zlib.ZLIB_RUNTIME_VERSION}")
    try:
        from importlib.metadata import version

        parts.append(f"zlib-ng {version('zlib-ng')} (wsframe.ZLIB {wsframe.ZLIB})")
    except Exception:  # importlib.metadata.PackageNotFoundError
        parts.append(f"zlib-ng not installed (wsframe.ZLIB {wsframe.ZLIB})")
    parts.append(f"Python {sys.version.split()[0]}")
    return ", ".join(parts)


def _rate(value: float) -> str:
    return f"{value / 1000:.1f}k/s" if value >= 1000 else f"{value:.0f}/s"


def _cases() -> List[Tuple[str, int, int, int]]:
    """(label, size, connections, in flight) of every echo case."""
    return [(f"{size // 1024} KiB, {label}", size, conns, inflight) for size in SIZES for label, conns, inflight in LOADS]


# -- the sections ----------------------------------------------------------------------------


def run_echo(servers: List[str], opts: Any, samples: Dict[Tuple[str, str], List[Dict[str, float]]],
             agreed: Dict[str, str], round_: int) -> None:
    for name in servers:
        server = start_server(name)
        try:
            if name not in agreed:
                agreed[name] = "-" if name == CEILING else verify(name, server.port, not name.endswith(":off"))
            line = []
            for label, size, conns, inflight in _cases():
                result = run_load(server, name, size, conns, inflight, opts)
                samples.setdefault((name, label), []).append(result)
                line.append(f"{_rate(result['rate'])} {result['server_us']:.0f}us")
            print(f"round {round_ + 1} echo {name:27s} " + " | ".join(line), flush=True)
        finally:
            server.stop()


def run_memory(servers: List[str], opts: Any, samples: Dict[Tuple[str, str], List[float]], round_: int) -> None:
    offers = [("browser offer", browser_offer()), ("wsframe client offer", _deflate().Deflate())]
    for name in servers:
        line = []
        for label, settings in offers:
            server = start_server(name)  # a fresh process per offer: the growth of one kind alone
            try:
                per = memory_per_connection(server, settings, opts.connections)
            finally:
                server.stop()
            samples.setdefault((name, label), []).append(per)
            line.append(f"{label}: {per:.1f} KiB")
        print(f"round {round_ + 1} memory {name:27s} " + " | ".join(line), flush=True)


def report_echo(servers: List[str], samples: Dict[Tuple[str, str], List[Dict[str, float]]],
                agreed: Dict[str, str]) -> None:
    cases = _cases()

    def med(name: str, label: str, key: str) -> float:
        return _median([s[key] for s in samples[(name, label)]])

    print("\n### Echo with permessage-deflate: server messages/s, server CPU µs per message\n")
    rows = [[name] + [f"{_rate(med(name, c[0], 'rate'))}, {med(name, c[0], 'server_us'):.1f} µs" for c in cases]
            for name in servers]
    print(table(["server"] + [c[0] for c in cases], rows))
    if REFERENCE in servers:
        print(f"\n### Ratios to {REFERENCE}: messages/s ours / theirs, and CPU per message theirs / ours "
              "(> 1: better)\n")
        rows = []
        for name in servers:
            if name in (REFERENCE, CEILING):
                continue
            rows.append([name] + [
                f"{med(name, c[0], 'rate') / med(REFERENCE, c[0], 'rate'):.2f}x, "
                f"{med(REFERENCE, c[0], 'server_us') / med(name, c[0], 'server_us'):.2f}x CPU" for c in cases])
        print(table(["server"] + [c[0] for c in cases], rows))
    print("\n### The load generator: its CPU µs per message, how busy its core was, bytes per message sent / "
          "received\n")
    rows = [[name] + [f"{med(name, c[0], 'gen_us'):.1f} µs, {med(name, c[0], 'gen_busy'):.0%}, "
                      f"{med(name, c[0], 'sent_bytes'):.0f} / {med(name, c[0], 'reply_bytes'):.0f} B" for c in cases]
            for name in servers]
    print(table(["server"] + [c[0] for c in cases], rows))
    print("\n### What each server agreed to (the generator's offer: permessage-deflate; "
          "client_no_context_takeover; client_max_window_bits)\n")
    print(table(["server", "Sec-WebSocket-Extensions"], [[name, agreed.get(name, "-")] for name in servers]))
    for name in servers:
        for c in cases:
            if not name.endswith(":off") and name != CEILING and med(name, c[0], "compressed") < 1.0:
                print(f"note: {name} answered {1 - med(name, c[0], 'compressed'):.0%} of '{c[0]}' uncompressed")
            ceiling = CEILING in servers and name != CEILING and c[2] * c[3] > 1  # 1 x 1 is latency-bound anyway
            if ceiling and med(name, c[0], "rate") > med(CEILING, c[0], "rate") / 3:
                print(f"note: {name} reached {med(name, c[0], 'rate') / med(CEILING, c[0], 'rate'):.0%} "
                      f"of the generator's ceiling on '{c[0]}'")
            if name != CEILING and med(name, c[0], "gen_busy") > 0.8:
                print(f"note: the generator's core was {med(name, c[0], 'gen_busy'):.0%} busy against {name} "
                      f"on '{c[0]}': that row may be the generator's limit")


def report_memory(servers: List[str], samples: Dict[Tuple[str, str], List[float]], count: int) -> None:
    print(f"\n### Memory: server RSS growth per connection, {count} connections that each exchanged one "
          "compressed 16 KiB message, then idle (KiB)\n")
    labels = ["browser offer", "wsframe client offer"]
    rows = [[name] + [f"{_median(samples[(name, label)]):.1f}" for label in labels] for name in servers]
    print(table(["server", "browser offer (client_max_window_bits)",
                 "wsframe client offer (client_no_context_takeover; server_max_window_bits=12; client_max_window_bits)"], rows))


def report_ratio() -> None:
    print(f"\n### Compression ratio: compressed / original bytes, {CORPUS_MESSAGES} messages in sequence on one "
          "connection, a browser's offer\n")
    headers = ["setting"] + [f"{size // 1024} KiB {way}" for size in SIZES for way in ("server→client", "client→server")]
    headers.append("answer to the browser's offer")
    rows = []
    settings: List[Tuple[str, Callable[[Sequence[str]], Tuple[float, float, str]]]] = [
        (f'wsframe "{s}"', functools.partial(ratio_wsframe, s)) for s in ("deflate", "stateless", "context")]
    if available("websockets-asyncio:deflate"):
        settings.append(("websockets default", ratio_websockets))
    if available("aiohttp:deflate"):
        settings.append(("aiohttp compress=True (same zlib parameters)", ratio_aiohttp))
    for label, measure in settings:
        row, answer = [label], ""
        for size in SIZES:
            down, up, answer = measure(corpus(size))
            row += [f"{down:.3f}", f"{up:.3f}"]
        rows.append(row + [answer])
    print(table(headers, rows))


# -- driver ----------------------------------------------------------------------------------


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_serve":
        serve_main(argv[1], argv[2])
        return 0
    if argv and argv[0] == "_load":
        print(json.dumps(load_main(json.loads(argv[1]))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", help=f"comma-separated IMPL:SETTING names (default: echo {ECHO_SERVERS}, "
                                          f"memory {MEMORY_SERVERS}); {CEILING} is always added to echo")
    parser.add_argument("--only", choices=["echo", "memory", "ratio"], help="run one section")
    parser.add_argument("--duration", type=float, default=2.0, help="seconds measured per echo case (default 2)")
    parser.add_argument("--warmup", type=float, default=0.5, help="seconds of load before measuring (default 0.5)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds, servers interleaved; medians (default 3)")
    parser.add_argument("--connections", type=int, default=1000, help="connections for the memory case (1000)")
    opts = parser.parse_args(argv)
    chosen = [s for s in (opts.servers or "").split(",") if s]
    for name in chosen:
        if name.partition(":")[0] not in ("wsframe-threaded", "wsframe-reactor", "websockets-asyncio",
                                          "websockets-sync", "aiohttp", CEILING):
            parser.error(f"unknown server {name}")
    echo_servers = [s for s in (chosen or ECHO_SERVERS) if s != CEILING and available(s)]
    memory_servers = [s for s in (chosen or MEMORY_SERVERS) if s != CEILING and available(s)]
    sections = [opts.only] if opts.only else ["echo", "memory", "ratio"]
    _raise_fd_limit()

    global LOADGEN_BIN
    folder = tempfile.mkdtemp(prefix="wsframe-bench-deflate-")
    try:
        if "echo" in sections:
            try:
                LOADGEN_BIN = bench_echo.build_loadgen(folder)
                echo_servers = [CEILING] + echo_servers
            except (SystemExit, subprocess.CalledProcessError) as exc:
                print(f"no {CEILING} row: {exc}")
        print(f"cpus: server on {SERVER_CPU}, load generator on {LOAD_CPU} (of {os.cpu_count()}); "
              f"{opts.duration:g} s per echo case after {opts.warmup:g} s warm-up; median of {opts.repeat} rounds; "
              f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
        echo_samples: Dict[Tuple[str, str], List[Dict[str, float]]] = {}
        memory_samples: Dict[Tuple[str, str], List[float]] = {}
        agreed: Dict[str, str] = {}
        for round_ in range(opts.repeat):
            if "echo" in sections:
                run_echo(echo_servers, opts, echo_samples, agreed, round_)
            if "memory" in sections:
                run_memory(memory_servers, opts, memory_samples, round_)
        print(f"load average after: {os.getloadavg()[0]:.2f}\n")
        print(f"Command: `python {shlex.join(['benchmarks/bench_deflate.py'] + list(argv))}`  ")
        print(f"Versions: {versions()}; {os.cpu_count()} CPUs, server on CPU {SERVER_CPU}, "
              f"load generator on CPU {LOAD_CPU}")
        if "echo" in sections and opts.repeat:
            report_echo(echo_servers, echo_samples, agreed)
        if "memory" in sections and opts.repeat:
            report_memory(memory_servers, memory_samples, opts.connections)
        if "ratio" in sections:
            report_ratio()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
