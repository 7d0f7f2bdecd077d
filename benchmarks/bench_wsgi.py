"""WebSockets inside a WSGI app: wsframe's Flask ``Sock`` against Flask-Sock (simple-websocket), same server.

A plain script (server and client are separate processes on separate cores)::

    python benchmarks/bench_wsgi.py                      # 16 B and 1 KiB, 1 and 16 connections, 3 rounds
    python benchmarks/bench_wsgi.py --sizes 16,1024,65536 --conns 1,16,64 --rounds 5 --seconds 3

How it measures:

* One gunicorn (``-k gthread --threads 64``, one worker, pinned to CPU 1)
  serves one Flask application with two echo routes: ``/wsframe``
  (``wsframe.integrations.flask.Sock``) and ``/flasksock`` (``flask_sock.Sock``,
  which runs simple-websocket over wsproto, with a reader thread per
  connection). Both handlers are the obvious echo loop.
* The client is picows' asyncio client (uvloop when installed), in this
  process pinned to CPU 0, so the client costs the same for both servers and
  stays far from being the bottleneck. Each of N connections does round trips
  of binary messages, one in flight per connection: when its echo arrives, the
  next goes out. After a warm-up it counts echoes for ``--seconds``.
* Servers alternate case by case, round by round; medians over the rounds are
  reported, with the ratio wsframe / Flask-Sock (above 1: wsframe is faster).

This file is also what gunicorn loads (``bench_wsgi:create_app()``); it has no
``test_*`` functions, so ``pytest benchmarks`` collects nothing from it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

HERE = Path(__file__).resolve().parent
SERVERS = ["wsframe", "flasksock"]
SERVER_CPU, CLIENT_CPU = 1, 0


def create_app() -> Any:
    """The Flask application gunicorn serves: the same echo under both extensions."""
    import flask
    import flask_sock

    from wsframe.integrations.flask import Sock

    app = flask.Flask("bench_wsgi")
    ours = Sock(app, max_message_size=None)
    theirs = flask_sock.Sock(app)

    @ours.route("/wsframe")
    def wsframe_echo(ws: Any) -> None:
        for message in ws:
            ws.send(message)

    @theirs.route("/flasksock")
    def flasksock_echo(ws: Any) -> None:
        while True:
            ws.send(ws.receive())

    return app


def _pin(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) > 1:
        os.sched_setaffinity(0, {cpu})


def start_server(threads: int, log: Path) -> Tuple["subprocess.Popen[bytes]", int]:
    from gunicorn.config import KNOWN_SETTINGS

    flags = ["--no-control-socket"] if any(s.name == "control_socket_disable" for s in KNOWN_SETTINGS) else []
    out = open(log, "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-k", "gthread", "--threads", str(threads), "-w", "1",
         "-b", "127.0.0.1:0", "--chdir", str(HERE), "--log-level", "info", *flags, "bench_wsgi:create_app()"],
        stdout=out, stderr=subprocess.STDOUT, preexec_fn=lambda: _pin(SERVER_CPU),
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        m = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", text)
        if m and "Booting worker" in text:
            time.sleep(0.5)  # the worker imports Flask and the app
            return process, int(m[1])
        if process.poll() is not None:
            break
        time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"gunicorn did not start:\n{log.read_text(errors='replace')}")


async def measure(url: str, size: int, conns: int, seconds: float, warmup: float = 0.5) -> float:
    """Echoes per second over ``conns`` connections, one message in flight on each."""
    import picows

    payload = os.urandom(size)
    counts = [0] * conns
    state = {"running": True}
    loop = asyncio.get_running_loop()

    class Client(picows.WSListener):  # type: ignore[misc]
        def __init__(self, index: int) -> None:
            self.index = index
            self.idle = loop.create_future()

        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if frame.msg_type == picows.WSMsgType.BINARY:
                counts[self.index] += 1
                if state["running"]:
                    transport.send(picows.WSMsgType.BINARY, payload)
                elif not self.idle.done():
                    self.idle.set_result(None)
            elif frame.msg_type == picows.WSMsgType.CLOSE and not self.idle.done():
                self.idle.set_result(None)

    pairs = []
    for i in range(conns):
        transport, listener = await picows.ws_connect(lambda i=i: Client(i), url, max_frame_size=64 * 2**20)
        pairs.append((transport, listener))
    for transport, _ in pairs:
        transport.send(picows.WSMsgType.BINARY, payload)
    await asyncio.sleep(warmup)
    start, t0 = sum(counts), time.perf_counter()
    await asyncio.sleep(seconds)
    done, elapsed = sum(counts) - start, time.perf_counter() - t0
    state["running"] = False
    await asyncio.wait([listener.idle for _, listener in pairs], timeout=5)
    for transport, _ in pairs:
        transport.send_close(picows.WSCloseCode.OK)
        transport.disconnect()
    await asyncio.sleep(0.2)
    return done / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="16,1024")
    parser.add_argument("--conns", default="1,16")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--threads", type=int, default=64, help="gunicorn --threads (at least the connections)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    conns_list = [int(c) for c in args.conns.split(",")]
    if max(conns_list) > args.threads:
        parser.error("--threads must be at least the largest --conns: each WebSocket holds a gunicorn thread")
    try:
        import uvloop

        run: Any = uvloop.run
    except ImportError:
        run = asyncio.run
    log = Path(tempfile.mkdtemp()) / "gunicorn.log"
    process, port = start_server(args.threads, log)
    _pin(CLIENT_CPU)
    results: Dict[Tuple[int, int, str], List[float]] = {}
    try:
        for round_no in range(args.rounds):
            for size in sizes:
                for conns in conns_list:
                    order = SERVERS if round_no % 2 == 0 else SERVERS[::-1]
                    for server in order:
                        rate = run(measure(f"ws://127.0.0.1:{port}/{server}", size, conns, args.seconds))
                        results.setdefault((size, conns, server), []).append(rate)
                        print(f"round {round_no + 1}: {server:9} {size:>6} B x {conns:>3} conn: {rate:10.0f} msg/s",
                              flush=True)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
    print()
    print(f"gunicorn gthread --threads {args.threads}, 1 worker on CPU {SERVER_CPU}; picows client on CPU {CLIENT_CPU};"
          f" medians of {args.rounds} rounds of {args.seconds:g} s")
    print(f"{'size':>7} {'conns':>5} {'wsframe msg/s':>14} {'Flask-Sock msg/s':>17} {'ratio':>6}")
    for size in sizes:
        for conns in conns_list:
            ours = statistics.median(results[(size, conns, "wsframe")])
            theirs = statistics.median(results[(size, conns, "flasksock")])
            print(f"{size:>6}B {conns:>5} {ours:>14.0f} {theirs:>17.0f} {ours / theirs:>6.2f}")


if __name__ == "__main__":
    main()
