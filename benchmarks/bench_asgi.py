"""uvicorn with wsframe's ASGI WebSocket protocol against uvicorn with its own three, on one echo app.

A plain script (server and load generator are separate processes on separate cores)::

    python benchmarks/bench_asgi.py                       # every case, 3 rounds
    python benchmarks/bench_asgi.py --impls wsframe,wsproto --repeat 5
    python benchmarks/bench_asgi.py --impls wsframe,wsframe@/tmp/before --cases '1 MiB'

How it measures:

* The server is uvicorn's own ``Server`` (``Config(app, ws=IMPL, http="httptools",
  ws_per_message_deflate=False)``, uvloop when installed, as uvicorn's
  ``auto`` picks), on a socket bound to 127.0.0.1:0, pinned to CPU 1. The app
  is the same raw ASGI echo for every implementation: accept, then send back
  each ``websocket.receive`` until the disconnect.
* Implementations: ``wsframe`` (``wsframe.integrations.asgi:WsframeProtocol``,
  the active framing backend; ``wsframe-python`` forces the pure one) and
  uvicorn's ``websockets-sansio``, ``wsproto`` and ``websockets`` (legacy).
  ``NAME@TREE`` runs a wsframe one from another checkout's ``src/`` (built
  in place), for before/after runs.
* The load generator is bench_echo.py's C program (epoll, pre-encoded masked
  binary frames, N messages in flight per connection), pinned to CPU 0.
* Cases (issue 11's matrix): 16 B and 1 KiB at 1, 16 and 128 connections,
  with 1 message in flight per connection (window 1: every message waits for
  its echo) and with 16; 1 MiB at one connection, window 1.
* Reported: messages per second, the server's CPU microseconds per message
  (user + system from /proc: meaningful on a busy machine, where wall-clock
  throughput is not), and wsframe's ratio to each of uvicorn's own, on
  medians over the rounds (servers interleaved round by round), as the first
  implementation named against each of the others.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
sys.path.insert(0, str(HERE))

import bench_echo  # noqa: E402  # the C load generator and the server-process helper

SERVER_CPU, LOAD_CPU = 1, 0
IMPLS = {
    "wsframe": "wsframe.integrations.asgi:WsframeProtocol",
    "wsframe-python": "wsframe.integrations.asgi:WsframeProtocol",
    "websockets-sansio": "websockets-sansio",
    "wsproto": "wsproto",
    "websockets": "websockets",
}
CASES: List[Tuple[str, int, int, int]] = [  # (label, size, connections, messages in flight per connection)
    (f"{label} x {conns} conn{'s' if conns > 1 else ''} x {window}", size, conns, window)
    for label, size in (("16 B", 16), ("1 KiB", 1024))
    for conns in (1, 16, 128)
    for window in (1, 16)
] + [("1 MiB x 1 conn x 1", 2**20, 1, 1)]


async def echo_app(scope: Dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "websocket":
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] != "websocket.receive":
            return
        await send({"type": "websocket.send", "bytes": message.get("bytes"), "text": message.get("text")})


def serve_main(name: str) -> None:
    if name == "wsframe-python":
        os.environ["WSFRAME_NO_EXTENSIONS"] = "1"
    if hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) > 1:
        os.sched_setaffinity(0, {SERVER_CPU})
    import socket
    import warnings

    import uvicorn

    warnings.simplefilter("ignore")  # uvicorn's legacy websockets implementation warns on import
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    config = uvicorn.Config(echo_app, ws=IMPLS[name], http="httptools", lifespan="off", log_level="error",
                            ws_per_message_deflate=False, ws_max_size=64 * 2**20, access_log=False)
    server = uvicorn.Server(config)
    detail = name
    if name.startswith("wsframe"):
        import wsframe

        detail = f"{name}({wsframe.BACKEND})"
    try:
        import uvloop  # noqa: F401

        detail += ",uvloop"
    except ImportError:
        detail += ",asyncio"
    print("PORT", sock.getsockname()[1], detail, flush=True)
    server.run(sockets=[sock])


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_serve":
        serve_main(argv[1])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--impls", default="wsframe,websockets-sansio,wsproto,websockets")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--duration", type=float, default=2.0)
    parser.add_argument("--cases", default="", help="only the cases whose label contains one of these "
                        "comma-separated strings, e.g. '1 MiB'")
    opts = parser.parse_args(argv)
    impls = [i for i in opts.impls.split(",") if i]
    for impl in impls:
        if impl.partition("@")[0] not in IMPLS:
            parser.error(f"unknown implementation {impl!r}; known: {', '.join(IMPLS)} (wsframe ones also as NAME@TREE)")
    wanted = [w.strip() for w in opts.cases.split(",") if w.strip()]
    cases = [case for case in CASES if not wanted or any(w in case[0] for w in wanted)]
    if not cases:
        parser.error(f"no case matches {opts.cases!r}")

    bench_echo.LOAD_CPU = LOAD_CPU
    results: Dict[Tuple[str, str], List[Tuple[float, float]]] = {}
    details: Dict[str, str] = {}
    with tempfile.TemporaryDirectory() as folder:
        bench_echo.LOADGEN = bench_echo.build_loadgen(folder)
        print(f"cpus: server on {SERVER_CPU}, load generator on {LOAD_CPU} (of {os.cpu_count()}); "
              f"{opts.repeat} rounds of {opts.duration}s after {opts.warmup}s warm-up", flush=True)
        for round_ in range(opts.repeat):
            for impl in impls:
                name, _, tree = impl.partition("@")
                server = bench_echo.ServerProcess([sys.executable, __file__, "_serve", name], tree or None)
                details[impl] = server.detail + (f"@{tree}" if tree else "")
                try:
                    for label, size, conns, window in cases:
                        rate, cpu_us = bench_echo.throughput(server, conns, window, size, opts, raw=False)
                        results.setdefault((impl, label), []).append((rate, cpu_us))
                        print(f"  round {round_ + 1} {impl:18} {label:18} {rate:10.0f} msg/s {cpu_us:8.1f} us/msg",
                              flush=True)
                finally:
                    server.stop()

    def med(impl: str, label: str, index: int) -> float:
        return statistics.median(v[index] for v in results[(impl, label)])

    print()
    print("| case | " + " | ".join(details.get(i, i) for i in impls) + " |")
    print("|---|" + "---|" * len(impls))
    for label, *_ in cases:
        cells = [f"{med(i, label, 0):,.0f} msg/s, {med(i, label, 1):.1f} us" for i in impls]
        print(f"| {label} | " + " | ".join(cells) + " |")
    if impls and impls[0].startswith("wsframe"):
        first = impls[0]
        others = impls[1:]
        print()
        print(f"{first} / the others: throughput ratio (higher is better), CPU per message ratio (lower is better)")
        print("| case | " + " | ".join(others) + " |")
        print("|---|" + "---|" * len(others))
        for label, *_ in cases:
            cells = [f"x{med(first, label, 0) / med(o, label, 0):.2f} / x{med(first, label, 1) / med(o, label, 1):.2f}"
                     for o in others]
            print(f"| {label} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
