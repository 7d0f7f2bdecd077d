"""Client benchmark: wsframe's blocking client against the peers' clients, on the same fast server.

A plain script (clients and server must be separate processes on separate cores)::

    python benchmarks/bench_client.py                  # every size, 3 rounds
    python benchmarks/bench_client.py --sizes 16,1024 --repeat 5

How it measures:

* The server is picows' echo server (asyncio, the fastest Python server we
  know; uvloop when installed), pinned to CPU 1; it echoes every frame as it
  comes. Each client runs in its own process pinned to CPU 0.
* For each message size (16 B, 1 KiB, 64 KiB, 1 MiB, binary) a client does
  round trips, one message in flight: send, wait for the echo, repeat. It
  reports messages per second and the p50/p99 round-trip time; then the same
  size with 16 messages in flight (send 16, receive 16) for throughput.
* The client processes are interleaved round by round, and medians over the
  rounds are reported, with each client's ratio to the best of the peers in
  the same round.

Clients: ``wsframe-cython``, ``wsframe-python`` (``wsframe.connect``),
``websockets-sync`` (``websockets.sync.client``), ``websocket-client`` and
``aiohttp`` (its asyncio client). Compression is off everywhere.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any, Callable, Dict, List, Tuple

CLIENTS = ["wsframe-cython", "wsframe-python", "websockets-sync", "websocket-client", "aiohttp"]
PEERS = ["websockets-sync", "websocket-client", "aiohttp"]
SIZES = [16, 1024, 65536, 2**20]
SERVER_CPU, CLIENT_CPU = 1, 0


def _pin(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) > 1:
        os.sched_setaffinity(0, {cpu})


def _count(size: int, seconds: float) -> int:
    """Round trips to aim for: about ``seconds`` of work for a fast client."""
    per_second = {16: 30000, 1024: 25000, 65536: 4000, 2**20: 300}.get(size, 1000)
    return max(20, int(per_second * seconds))


# -- the server ---------------------------------------------------------------------------


def run_server() -> None:
    _pin(SERVER_CPU)
    import picows

    class Echo(picows.WSListener):  # type: ignore[misc]
        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            kind = frame.msg_type
            if kind == picows.WSMsgType.CLOSE:
                transport.send_close(frame.get_close_code(), frame.get_close_message())
                transport.disconnect()
            elif kind in (picows.WSMsgType.TEXT, picows.WSMsgType.BINARY, picows.WSMsgType.CONTINUATION):
                transport.send(kind, frame.get_payload_as_memoryview(), frame.fin)

    async def main() -> None:
        server = await picows.ws_create_server(lambda request: Echo(), "127.0.0.1", 0, max_frame_size=64 * 2**20)
        print("PORT", server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Event().wait()

    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())


# -- the clients ------------------------------------------------------------------------------


def _measure(send: Callable[[bytes], None], recv: Callable[[], Any], size: int, count: int, window: int) -> Dict[str, float]:
    payload = bytes(size)
    for _ in range(min(50, count)):  # warm up
        send(payload)
        recv()
    rtts: List[float] = []
    started = time.perf_counter()
    done = 0
    while done < count:
        t0 = time.perf_counter()
        for _ in range(window):
            send(payload)
        for _ in range(window):
            echoed = recv()
            if len(echoed) != size:
                raise RuntimeError(f"echo of {len(echoed)} bytes for {size}")
        rtts.append(time.perf_counter() - t0)
        done += window
    elapsed = time.perf_counter() - started
    rtts.sort()
    return {
        "msgs_per_s": done / elapsed,
        "p50_us": rtts[len(rtts) // 2] * 1e6,
        "p99_us": rtts[min(len(rtts) - 1, int(len(rtts) * 0.99))] * 1e6,
    }


def run_client(name: str, port: int, size: int, count: int, window: int) -> Dict[str, float]:
    _pin(CLIENT_CPU)
    url = f"ws://127.0.0.1:{port}/"
    if name.startswith("wsframe-"):
        import wsframe

        with wsframe.connect(url, backend=name.split("-", 1)[1], max_message_size=None, ping_interval=None,
                             proxy=None, write_limit=4 * 2**20) as ws:
            result = _measure(ws.send, ws.recv, size, count, window)
        return result
    if name == "websockets-sync":
        from websockets.sync.client import connect

        with connect(url, max_size=None, compression=None, ping_interval=None) as ws:
            return _measure(ws.send, ws.recv, size, count, window)
    if name == "websocket-client":
        import websocket

        ws = websocket.create_connection(url, skip_utf8_validation=True)
        try:
            return _measure(ws.send_bytes, ws.recv, size, count, window)
        finally:
            ws.close()
    if name == "aiohttp":
        import aiohttp

        async def main() -> Dict[str, float]:
            async with aiohttp.ClientSession() as session:
                async with session.ws_connect(url, compress=0, max_msg_size=0, autoping=False) as ws:
                    payload = bytes(size)
                    for _ in range(min(50, count)):
                        await ws.send_bytes(payload)
                        await ws.receive_bytes()
                    rtts: List[float] = []
                    started = time.perf_counter()
                    done = 0
                    while done < count:
                        t0 = time.perf_counter()
                        for _ in range(window):
                            await ws.send_bytes(payload)
                        for _ in range(window):
                            echoed = await ws.receive_bytes()
                            if len(echoed) != size:
                                raise RuntimeError("bad echo")
                        rtts.append(time.perf_counter() - t0)
                        done += window
                    elapsed = time.perf_counter() - started
            rtts.sort()
            return {"msgs_per_s": done / elapsed, "p50_us": rtts[len(rtts) // 2] * 1e6,
                    "p99_us": rtts[min(len(rtts) - 1, int(len(rtts) * 0.99))] * 1e6}

        return asyncio.run(main())
    raise ValueError(f"unknown client {name!r}")


# -- the driver ----------------------------------------------------------------------------------


def _one(name: str, port: int, size: int, count: int, window: int) -> Dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--client", name, "--port", str(port), "--size", str(size),
         "--count", str(count), "--window", str(window)],
        capture_output=True, text=True, timeout=300,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{name} failed: {out.stderr[-2000:]}")
    result: Dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default=",".join(CLIENTS))
    parser.add_argument("--sizes", default=",".join(str(s) for s in SIZES))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=1.0, help="about this long per client and case")
    parser.add_argument("--windows", default="1,16")
    parser.add_argument("--server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--window", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.server:
        run_server()
        return
    if args.client:
        print(json.dumps(run_client(args.client, args.port, args.size, args.count, args.window)))
        return

    clients = args.clients.split(",")
    sizes = [int(s) for s in args.sizes.split(",")]
    windows = [int(w) for w in args.windows.split(",")]
    server = subprocess.Popen([sys.executable, __file__, "--server"], stdout=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline().split()  # type: ignore[union-attr]
        if not line or line[0] != "PORT":
            raise RuntimeError("the picows server did not start")
        port = int(line[1])
        results: Dict[Tuple[str, int, int], List[Dict[str, float]]] = {}
        for _ in range(args.repeat):
            for size in sizes:
                for window in windows:
                    count = _count(size, args.seconds)
                    count -= count % window
                    for name in clients:
                        results.setdefault((name, size, window), []).append(_one(name, port, size, count, window))
    finally:
        server.terminate()
        server.wait(10)

    def median(name: str, size: int, window: int, key: str) -> float:
        return statistics.median(r[key] for r in results[(name, size, window)])

    print(f"\nclient benchmark: picows echo server on CPU {SERVER_CPU}, clients on CPU {CLIENT_CPU}, "
          f"medians of {args.repeat} rounds; ratio = msgs/s over the best peer's")
    print("| size | in flight | client | msgs/s | p50 RTT | p99 RTT | vs best peer |")
    print("|---|---|---|---|---|---|---|")
    for size in sizes:
        for window in windows:
            peers = [c for c in clients if c in PEERS]
            best = max((median(c, size, window, "msgs_per_s") for c in peers), default=0.0)
            for name in clients:
                rate = median(name, size, window, "msgs_per_s")
                ratio = f"{rate / best:.2f}x" if best else "-"
                label = f"{size} B" if size < 1024 else f"{size // 1024} KiB" if size < 2**20 else f"{size // 2**20} MiB"
                print(f"| {label} | {window} | {name} | {rate:,.0f} | {median(name, size, window, 'p50_us'):.0f} µs "
                      f"| {median(name, size, window, 'p99_us'):.0f} µs | {ratio} |")


if __name__ == "__main__":
    main()
