"""End-to-end echo benchmark of the threaded server, with a load generator that is not the bottleneck.

A plain script (not pytest-benchmark: the server and the load generator must
be separate processes on separate cores)::

    python setup.py build_ext --inplace            # the compiled backend, from a checkout
    python benchmarks/bench_echo.py                # every case, 3 rounds (about 4 minutes)
    python benchmarks/bench_echo.py --servers wsframe-cython,websockets-sync --repeat 5

How it measures:

* The server under test runs in its own process, pinned to CPU 0; the load
  generator is a small C program (``LOADGEN_C`` below, compiled with ``cc``
  at run time) pinned to CPU 1. It speaks WebSocket with pre-encoded masked
  binary frames on raw sockets, keeps N messages in flight per connection
  (pipelining), counts echoed bytes, and checks the first byte of every echoed
  frame. epoll, no parsing beyond that.
* Proof that the generator is not the bottleneck: the same generator first
  runs against a trivial C epoll echo server that does not parse WebSocket at
  all (it returns bytes as they come). That is the ceiling of the setup; the
  table shows it next to the servers, and the script warns if a server gets
  within a third of it. A second reference, a plain Python thread per
  connection echoing with blocking ``recv_into``/``send`` (no WebSocket), is
  the floor any threaded Python server pays for its system calls and wake-ups.
* Besides messages per second, the table gives the server's CPU time per
  message (user + system, from /proc): it stays meaningful on a busy machine,
  where wall-clock throughput does not.
* Cases: 16 B messages x 16 connections x 16 in flight; 16 B x 128
  connections x 1 in flight; 1 MiB messages (1 connection, 1 in flight);
  one-connection ping-pong latency (p50, 16 B); memory per idle connection
  (server RSS growth with 1000 idle connections, divided by 1000).

Servers: ``wsframe-cython``, ``wsframe-python`` (the threaded server with each
framing backend, default options), ``wsframe-reactor-cython`` and
``wsframe-reactor-python`` (event-style handlers on the reactor) and, for
comparison on the same box, ``websockets-sync`` (websockets' threaded server)
and ``picows`` (asyncio, uvloop when installed), if installed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"

LOADGEN_C = r"""
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void die(const char *what) { perror(what); exit(2); }

static void write_all(int fd, const unsigned char *p, size_t n) {
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN) { struct pollfd q = {fd, POLLOUT, 0}; poll(&q, 1, -1); continue; }
            if (errno == EINTR) continue;
            die("send");
        }
        p += w; n -= (size_t)w;
    }
}

static const char REQUEST[] =
    "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/* Connect and do the opening handshake (byte by byte: no frame byte is read early). */
static int dial(int port, int raw) {
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    if (fd < 0) die("socket");
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) die("connect");
    write_all(fd, (const unsigned char *)REQUEST, sizeof REQUEST - 1);
    char head[4096];
    size_t n = 0;
    while (n < 4 || memcmp(head + n - 4, "\r\n\r\n", 4) != 0) {
        if (n == sizeof head || read(fd, head + n, 1) != 1) { fprintf(stderr, "handshake failed\n"); exit(2); }
        n++;
    }
    if (!raw && strncmp(head, "HTTP/1.1 101", 12) != 0) { fprintf(stderr, "not a 101: %.*s\n", (int)n, head); exit(2); }
    return fd;
}

/* A masked binary frame with `len` bytes of payload. */
static size_t build_frame(unsigned char *out, size_t len) {
    static const unsigned char key[4] = {0x12, 0x34, 0x56, 0x78};
    size_t h = 0;
    out[h++] = 0x82;
    if (len < 126) out[h++] = (unsigned char)(0x80 | len);
    else if (len < 65536) { out[h++] = 0x80 | 126; out[h++] = (unsigned char)(len >> 8); out[h++] = (unsigned char)len; }
    else { out[h++] = 0x80 | 127; for (int i = 7; i >= 0; i--) out[h++] = (unsigned char)(len >> (8 * i)); }
    memcpy(out + h, key, 4);
    h += 4;
    for (size_t i = 0; i < len; i++) out[h + i] = (unsigned char)('x' ^ key[i & 3]);
    return h + len;
}

static size_t frame_size(size_t len, int masked) {
    return (len < 126 ? 2 : len < 65536 ? 4 : 10) + (masked ? 4 : 0) + len;
}

struct conn { int fd; size_t pending, sent, got; int out; };

static unsigned char *pattern;
static size_t frame_len;
static int ep;

static void flush(struct conn *c) {
    while (c->pending) {
        ssize_t w = send(c->fd, pattern + c->sent % frame_len, c->pending, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN) break;
            if (errno == EINTR) continue;
            die("send");
        }
        c->sent += (size_t)w;
        c->pending -= (size_t)w;
    }
    int want = c->pending != 0;
    if (want != c->out) {
        struct epoll_event ev = {EPOLLIN | (want ? EPOLLOUT : 0), {.ptr = c}};
        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
        c->out = want;
    }
}

/* load PORT CONNS INFLIGHT SIZE WARMUP DURATION RAW: prints "msgs_per_s <x>" */
static int load(int port, int nconn, int inflight, size_t size, double warmup, double duration, int raw) {
    unsigned char *one = malloc(frame_size(size, 1));
    frame_len = build_frame(one, size);
    size_t reply = raw ? frame_len : frame_size(size, 0);
    pattern = malloc(frame_len * (size_t)(inflight + 1));
    for (int i = 0; i <= inflight; i++) memcpy(pattern + (size_t)i * frame_len, one, frame_len);
    ep = epoll_create1(0);
    struct conn *conns = calloc((size_t)nconn, sizeof *conns);
    for (int i = 0; i < nconn; i++) {
        struct conn *c = &conns[i];
        c->fd = dial(port, raw);
        fcntl(c->fd, F_SETFL, O_NONBLOCK);
        struct epoll_event ev = {EPOLLIN, {.ptr = c}};
        epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
    }
    for (int i = 0; i < nconn; i++) { conns[i].pending = (size_t)inflight * frame_len; flush(&conns[i]); }
    size_t cap = 1 << 20;
    unsigned char *buf = malloc(cap);
    struct epoll_event evs[256];
    double start = now(), t_measure = start + warmup, t_end = t_measure + duration, t = start;
    long long count = 0, total = 0;
    int counting = 0;
    while (1) {
        int n = epoll_wait(ep, evs, 256, 100);
        t = now();
        if (!counting && t >= t_measure) { counting = 1; total += count; count = 0; t_measure = t; }
        if (t >= t_end) break;
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                while (1) {
                    ssize_t r = recv(c->fd, buf, cap, 0);
                    if (r < 0 && (errno == EAGAIN || errno == EINTR)) break;
                    if (r <= 0) { fprintf(stderr, "connection closed by the server\n"); exit(2); }
                    if (!raw) {  /* check the first byte of each echoed frame */
                        for (size_t p = (reply - c->got) % reply; p < (size_t)r; p += reply)
                            if (buf[p] != 0x82) { fprintf(stderr, "bad frame byte %#x\n", buf[p]); exit(2); }
                    }
                    c->got += (size_t)r;
                    size_t done = c->got / reply;
                    c->got %= reply;
                    count += (long long)done;
                    c->pending += done * frame_len;
                }
            }
            flush(c);
        }
    }
    printf("msgs_per_s %.1f\ntotal_msgs %lld\n", count / (t - t_measure), total + count);
    return 0;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* latency PORT SIZE COUNT RAW: one connection, one message in flight; prints p50 and p99 in us */
static int latency(int port, size_t size, int count, int raw) {
    unsigned char *frame = malloc(frame_size(size, 1));
    size_t len = build_frame(frame, size);
    size_t reply = raw ? len : frame_size(size, 0);
    unsigned char *buf = malloc(reply + 65536);
    int fd = dial(port, raw);
    double *lat = malloc(sizeof(double) * (size_t)count);
    for (int i = -count / 10; i < count; i++) {  /* the first tenth warms up */
        double t0 = now();
        write_all(fd, frame, len);
        size_t got = 0;
        while (got < reply) {
            ssize_t r = recv(fd, buf + got, reply - got, 0);
            if (r <= 0) { fprintf(stderr, "connection closed by the server\n"); exit(2); }
            got += (size_t)r;
        }
        if (i >= 0) lat[i] = now() - t0;
    }
    qsort(lat, (size_t)count, sizeof *lat, cmp);
    printf("p50_us %.1f\np99_us %.1f\n", lat[count / 2] * 1e6, lat[count * 99 / 100] * 1e6);
    return 0;
}

/* Write everything to a non-blocking socket; -1 if the peer went away. */
static int echo_write(int fd, const unsigned char *p, size_t n) {
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN) { struct pollfd q = {fd, POLLOUT, 0}; poll(&q, 1, -1); continue; }
            if (errno == EINTR) continue;
            return -1;
        }
        p += w; n -= (size_t)w;
    }
    return 0;
}

/* echo: a C epoll server that returns every byte as it comes (no WebSocket parsing). */
static int echo(void) {
    int lfd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(lfd, 1024) < 0) die("listen");
    socklen_t alen = sizeof a;
    getsockname(lfd, (struct sockaddr *)&a, &alen);
    printf("PORT %d\n", ntohs(a.sin_port));
    fflush(stdout);
    int e = epoll_create1(0);
    struct epoll_event ev = {EPOLLIN, {.fd = lfd}}, evs[256];
    epoll_ctl(e, EPOLL_CTL_ADD, lfd, &ev);
    static unsigned char buf[1 << 22];
    while (1) {
        int n = epoll_wait(e, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == lfd) {
                int c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
                if (c < 0) continue;
                setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                struct epoll_event cev = {EPOLLIN, {.fd = c}};
                epoll_ctl(e, EPOLL_CTL_ADD, c, &cev);
                continue;
            }
            while (1) {
                ssize_t r = read(fd, buf, sizeof buf);
                if (r > 0 && echo_write(fd, buf, (size_t)r) == 0) continue;
                if (r < 0 && errno == EAGAIN) break;
                close(fd);
                break;
            }
        }
    }
}

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "echo")) return echo();
    if (argc == 9 && !strcmp(argv[1], "load"))
        return load(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]), (size_t)atol(argv[5]), atof(argv[6]), atof(argv[7]), atoi(argv[8]));
    if (argc == 6 && !strcmp(argv[1], "latency"))
        return latency(atoi(argv[2]), (size_t)atol(argv[3]), atoi(argv[4]), atoi(argv[5]));
    fprintf(stderr, "usage: loadgen echo | load PORT CONNS INFLIGHT SIZE WARMUP DURATION RAW | latency PORT SIZE COUNT RAW\n");
    return 2;
}
"""

#: (name, connections, in flight per connection, message size)
THROUGHPUT_CASES = [
    ("16 B x 16 conns x 16 in flight", 16, 16, 16),
    ("16 B x 128 conns x 1 in flight", 128, 1, 16),
    ("1 MiB x 1 conn x 1 in flight", 1, 1, 1 << 20),
]
SERVERS = ["wsframe-cython", "wsframe-python", "wsframe-reactor-cython", "wsframe-reactor-python", "websockets-sync", "picows"]
SERVER_CPU, LOAD_CPU = 0, 1


# -- the server process ------------------------------------------------------------------


def serve_main(impl: str, backend: Optional[str]) -> None:
    """``bench_echo.py _serve IMPL [BACKEND]``: run an echo server, print "PORT n", stop on SIGTERM."""
    _pin(SERVER_CPU)
    if impl == "python-raw-echo":
        _python_raw_echo()
    elif impl == "wsframe":
        from wsframe.sync.server import serve

        def echo(ws: Any) -> None:
            for message in ws:
                ws.send(message)

        server = serve(echo, "127.0.0.1", 0, backend=backend, max_message_size=2 << 20, max_connections=5000)
        signal.signal(signal.SIGTERM, lambda *_: server.shutdown())
        print(f"PORT {server.port} {server.backend}", flush=True)
        server.serve_forever()
    elif impl == "wsframe-reactor":
        from wsframe import EventHandler, serve as reactor_serve

        class Echo(EventHandler):
            def on_message(self, message: Any) -> None:
                self.send(message)

        server = reactor_serve(Echo, "127.0.0.1", 0, backend=backend, max_message_size=2 << 20, max_connections=19000)
        signal.signal(signal.SIGTERM, lambda *_: server.shutdown())
        print(f"PORT {server.port} {server.backend}", flush=True)
        server.serve_forever()
    elif impl == "picows":
        import asyncio

        import picows

        class PicowsEcho(picows.WSListener):  # type: ignore[misc]
            def on_ws_frame(self, transport: Any, frame: Any) -> None:
                if frame.msg_type == picows.WSMsgType.CLOSE:
                    transport.send_close(frame.get_close_code(), frame.get_close_message())
                    transport.disconnect()
                elif frame.msg_type != picows.WSMsgType.PONG:
                    transport.send(frame.msg_type, frame.get_payload_as_memoryview(), frame.fin)

        async def picows_main() -> None:
            server = await picows.ws_create_server(lambda request: PicowsEcho(), "127.0.0.1", 0,
                                                   max_frame_size=4 << 20)
            print(f"PORT {server.sockets[0].getsockname()[1]} -", flush=True)
            await asyncio.Event().wait()

        try:
            import uvloop

            uvloop.run(picows_main())
        except ImportError:
            asyncio.run(picows_main())
    elif impl == "websockets-sync":
        from websockets.sync.server import serve as ws_serve

        import logging

        from websockets.exceptions import ConnectionClosed

        logging.getLogger("websockets").setLevel(logging.CRITICAL)  # the load generator just disconnects

        def ws_echo(ws: Any) -> None:
            try:
                for message in ws:
                    ws.send(message)
            except ConnectionClosed:  # the load generator just disconnects
                pass

        with ws_serve(ws_echo, "127.0.0.1", 0, max_size=2 << 20, compression=None) as server:
            signal.signal(signal.SIGTERM, lambda *_: server.shutdown())
            print(f"PORT {server.socket.getsockname()[1]} -", flush=True)
            server.serve_forever()
    else:
        raise SystemExit(f"unknown server {impl}")


def _python_raw_echo() -> None:
    """The floor of any threaded Python server: a thread per connection, blocking recv_into/send, no WebSocket."""
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1024)
    print(f"PORT {listener.getsockname()[1]} -", flush=True)

    def echo(sock: socket.socket) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buf = bytearray(1 << 18)
        view = memoryview(buf)
        try:
            while True:
                n = sock.recv_into(buf)
                if not n:
                    break
                sock.sendall(view[:n])
        except OSError:
            pass
        sock.close()

    while True:
        sock, _ = listener.accept()
        threading.Thread(target=echo, args=(sock,), daemon=True).start()


def _pin(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) > 1:
        os.sched_setaffinity(0, {cpu})


class ServerProcess:
    def __init__(self, argv: List[str]) -> None:
        env = dict(os.environ)
        if (SRC / "wsframe").is_dir():  # benchmark the checkout
            env["PYTHONPATH"] = str(SRC) + os.pathsep + env.get("PYTHONPATH", "")
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, env=env, text=True)
        line = self.process.stdout.readline().split()  # type: ignore[union-attr]
        if not line or line[0] != "PORT":
            self.stop()
            raise RuntimeError(f"server did not start: {argv}")
        self.port = int(line[1])
        self.detail = line[2] if len(line) > 2 else "-"

    def rss_kib(self) -> Tuple[int, int]:
        """(VmRSS in KiB, threads) of the server process."""
        rss = threads = 0
        with open(f"/proc/{self.process.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("Threads:"):
                    threads = int(line.split()[1])
        return rss, threads

    def cpu_seconds(self) -> float:
        """User + system CPU time the server process used so far."""
        with open(f"/proc/{self.process.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self.process.stdout:
            self.process.stdout.close()


def start_server(name: str) -> ServerProcess:
    if name == "raw-echo":
        return ServerProcess([LOADGEN, "echo"])
    if name == "python-raw-echo":
        return ServerProcess([sys.executable, __file__, "_serve", name])
    if name.startswith("wsframe-reactor-"):
        return ServerProcess([sys.executable, __file__, "_serve", "wsframe-reactor", name.rsplit("-", 1)[1]])
    if name.startswith("wsframe-"):
        return ServerProcess([sys.executable, __file__, "_serve", "wsframe", name.split("-", 1)[1]])
    return ServerProcess([sys.executable, __file__, "_serve", name])


# -- the load generator --------------------------------------------------------------------


LOADGEN = ""


def build_loadgen(folder: str) -> str:
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        raise SystemExit("a C compiler (cc) is needed to build the load generator")
    source = Path(folder) / "loadgen.c"
    source.write_text(LOADGEN_C)
    binary = str(Path(folder) / "loadgen")
    subprocess.run([cc, "-O2", "-o", binary, str(source)], check=True)
    return binary


def run_loadgen(args: List[str], timeout: float) -> Dict[str, float]:
    def pin() -> None:
        _pin(LOAD_CPU)

    out = subprocess.run([LOADGEN, *args], capture_output=True, text=True, timeout=timeout, preexec_fn=pin)
    if out.returncode:
        raise RuntimeError(f"loadgen {' '.join(args)} failed: {out.stderr.strip()}")
    return {k: float(v) for k, v in (line.split() for line in out.stdout.splitlines())}


def throughput(server: ServerProcess, conns: int, inflight: int, size: int, opts: Any, raw: bool) -> Tuple[float, float]:
    """(messages per second, server CPU microseconds per message)."""
    cpu = server.cpu_seconds()
    result = run_loadgen(
        ["load", str(server.port), str(conns), str(inflight), str(size), str(opts.warmup), str(opts.duration), str(int(raw))],
        timeout=opts.warmup + opts.duration + 60,
    )
    cpu = server.cpu_seconds() - cpu
    return result["msgs_per_s"], cpu * 1e6 / max(1.0, result["total_msgs"])


def latency(server: ServerProcess, opts: Any, raw: bool) -> Tuple[float, float]:
    result = run_loadgen(["latency", str(server.port), "16", str(opts.pings), str(int(raw))], timeout=120)
    return result["p50_us"], result["p99_us"]


def idle_memory(server: ServerProcess, count: int) -> Tuple[float, int]:
    """KiB of server RSS per idle connection, and the server's thread count with them open."""
    request = (
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()

    def dial() -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        sock.sendall(request)
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            byte = sock.recv(1)
            if not byte:
                raise RuntimeError("handshake failed")
            head += byte
        if not head.startswith(b"HTTP/1.1 101"):
            raise RuntimeError(head.decode("latin-1"))
        return sock

    dial().close()  # warm up (imports, the maintenance thread), then measure from a settled state
    time.sleep(1.0)
    before, _ = server.rss_kib()
    socks = [dial() for _ in range(count)]
    time.sleep(2.0)
    after, threads = server.rss_kib()
    for sock in socks:
        sock.close()
    return (after - before) / count, threads


# -- driver ----------------------------------------------------------------------------------


def _median(values: List[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def main(argv: Optional[List[str]] = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] == "_serve":
        serve_main(argv[1], argv[2] if len(argv) > 2 else None)
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", default=",".join(SERVERS), help=f"comma-separated, from {SERVERS}")
    parser.add_argument("--duration", type=float, default=2.0, help="seconds measured per throughput case (default 2)")
    parser.add_argument("--warmup", type=float, default=0.5, help="seconds of load before measuring (default 0.5)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds, servers interleaved; medians reported (default 3)")
    parser.add_argument("--pings", type=int, default=10000, help="round trips for the latency case (default 10000)")
    parser.add_argument("--idle", type=int, default=1000, help="idle connections for the memory case (default 1000, 0: skip)")
    opts = parser.parse_args(argv)
    servers = [s for s in opts.servers.split(",") if s]
    if "websockets-sync" in servers:
        try:
            import websockets.sync.server  # noqa: F401
        except ImportError:
            print("websockets is not installed: skipping websockets-sync")
            servers.remove("websockets-sync")

    global LOADGEN
    folder = tempfile.mkdtemp(prefix="wsframe-bench-")
    try:
        LOADGEN = build_loadgen(folder)
        print(f"cpus: server on {SERVER_CPU}, load generator on {LOAD_CPU} (of {os.cpu_count()}); "
              f"{opts.duration:g} s per case after {opts.warmup:g} s warm-up; binary messages; "
              f"median of {opts.repeat} rounds; load average before: {os.getloadavg()[0]:.2f}", flush=True)
        columns = ["raw-echo", "python-raw-echo"] + servers
        samples: Dict[Tuple[str, str], List[Tuple[float, float]]] = {}
        memory: Dict[str, str] = {}
        for round_ in range(opts.repeat):
            for name in columns:
                server = start_server(name)
                raw = name in ("raw-echo", "python-raw-echo")
                try:
                    line = []
                    for case, conns, inflight, size in THROUGHPUT_CASES:
                        rate, cpu_us = throughput(server, conns, inflight, size, opts, raw)
                        samples.setdefault((name, case), []).append((rate, cpu_us))
                        line.append(f"{rate * size / 1e9:.2f} GB/s" if size >= 65536 else f"{rate / 1000:.0f}k/s")
                    p50, p99 = latency(server, opts, raw)
                    samples.setdefault((name, "latency"), []).append((p50, p99))
                    line.append(f"{p50:.0f} us")
                    if round_ == 0 and not raw and opts.idle:
                        per, threads = idle_memory(server, opts.idle)
                        memory[name] = f"{per:.1f} KiB ({threads} threads)"
                        line.append(memory[name])
                    print(f"round {round_ + 1} {name:16s} " + " | ".join(line), flush=True)
                finally:
                    server.stop()
        print(f"load average after: {os.getloadavg()[0]:.2f}\n")
        cell: Dict[Tuple[str, str], str] = {}
        for name in columns:
            for case, _, _, size in THROUGHPUT_CASES:
                values = samples[(name, case)]
                rate = _median([v[0] for v in values])
                cpu_us = _median([v[1] for v in values])
                shown = f"{rate * size / 1e9:.2f} GB/s" if size >= 65536 else f"{rate / 1000:.1f}k msg/s"
                cell[(name, case)] = f"{shown}, {cpu_us:.1f} us CPU/msg"
            values = samples[(name, "latency")]
            cell[(name, "latency")] = f"{_median([v[0] for v in values]):.0f} us ({_median([v[1] for v in values]):.0f})"
            cell[(name, "memory")] = memory.get(name, "-")
        rows = [(c[0], c[0]) for c in THROUGHPUT_CASES] + [
            ("ping-pong latency p50 (p99)", "latency"), (f"memory per idle connection ({opts.idle})", "memory"),
        ]
        headers = ["case", "raw C echo (ceiling)", "raw Python thread echo"] + servers
        table = [headers] + [[label] + [cell[(name, key)] for name in columns] for label, key in rows]
        widths = [max(len(r[i]) for r in table) for i in range(len(headers))]
        for i, line in enumerate(table):
            print("| " + " | ".join(c.ljust(widths[j]) for j, c in enumerate(line)) + " |")
            if i == 0:
                print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
        for case, *_ in THROUGHPUT_CASES:
            ceiling = _median([v[0] for v in samples[("raw-echo", case)]])
            for name in servers:
                rate = _median([v[0] for v in samples[(name, case)]])
                if rate > ceiling / 3:
                    print(f"note: {name} reached {rate / ceiling:.0%} of the generator's ceiling on '{case}'")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
