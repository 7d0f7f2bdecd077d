"""End-to-end echo benchmark of the threaded server, with a load generator that is not the bottleneck.

A plain script (not pytest-benchmark: the server and the load generator must
be separate processes on separate cores)::

    python setup.py build_ext --inplace            # the compiled backend, from a checkout
    python benchmarks/bench_echo.py                # the default cases, 3 rounds (about 6 minutes)
    python benchmarks/bench_echo.py --servers wsframe-cython,websockets-sync --repeat 5
    python benchmarks/bench_echo.py --cases 16x128x1,1kx16x16,64kx1x1   # cells of your own
    python benchmarks/bench_echo.py --cases matrix --repeat 1           # 24 cells
    python benchmarks/bench_echo.py --hold 19000 --servers wsframe-reactor-cython,picows

How it measures:

* The server under test runs in its own process, pinned to CPU 0; the load
  generator is a small C program (``LOADGEN_C`` below, compiled with ``cc``
  at run time) pinned to CPU 1. It speaks WebSocket with pre-encoded masked
  binary frames on raw sockets, keeps N messages in flight per connection
  (pipelining), counts echoed bytes, and checks the first byte of every echoed
  frame. epoll, no parsing beyond that. It also times every message from the
  write that takes its first byte to the read that completes its echo (each
  connection keeps a FIFO of its send times: the i-th echo answers the i-th
  frame), over the measured period, and reports p50 and p99 (the table shows
  p99 for the cells with 1 in flight).
* Proof that the generator is not the bottleneck: the same generator first
  runs against a trivial C epoll echo server that does not parse WebSocket at
  all (it returns bytes as they come). That is the ceiling of the setup; the
  table shows it next to the servers, and the script warns if a server gets
  within a third of it. A second reference, a plain Python thread per
  connection echoing with blocking ``recv_into``/``send`` (no WebSocket), is
  the floor any threaded Python server pays for its system calls and wake-ups.
* Besides messages per second, the table gives the server's CPU time per
  message (user + system, from /proc): it stays meaningful on a busy machine,
  where wall-clock throughput does not. Before each case the script waits
  (up to 2 s) for the server's CPU time to stop moving.
* Cases (``--cases``, default ``default``): 16 B messages x 16 connections x
  16 in flight; 16 B x 128 connections x 1 in flight; 1 MiB messages (1
  connection, 1 in flight). ``--cases`` also takes cells written
  SIZExCONNSxINFLIGHT (``16x128x1,1kx16x16``; sizes 16, 1k, 64k, 1m) and
  ``matrix``: 16 B, 1 KiB, 64 KiB, 1 MiB x 1, 16, 128 connections x 1, 16 in
  flight. A cell that would keep more than ``--max-inflight`` bytes (64 MiB)
  in flight over all its connections runs with fewer in flight per
  connection, then fewer connections; its row and a note say so.
* Then one-connection ping-pong latency (p50, 16 B) and memory per idle
  connection (server RSS growth with ``--idle`` 1000 idle connections,
  divided by 1000).
* ``--hold N`` (default 0: skip), after the rounds, for each server in a
  fresh process: raises RLIMIT_NOFILE to its hard limit (the servers inherit
  it; the hold is capped 64 below it), opens N connections (handshakes from
  Python, non-blocking, 200 at a time), reports the server's RSS growth per
  connection and its threads with all of them open, then sends one 16 B
  message on every connection and reads every echo back ("N held, N served",
  or how many failed and why). Every step has a deadline. The threaded
  wsframe server runs with max_connections=5000 (its hold is capped there),
  the reactor with 19000.
* Round 1 first checks each server echoes a text and a binary message and
  answers a close frame.

Servers: ``wsframe-cython``, ``wsframe-python`` (the threaded server with each
framing backend, default options), ``wsframe-reactor-cython`` and
``wsframe-reactor-python`` (event-style handlers on the reactor) and, for
comparison on the same box, ``websockets-sync`` (websockets' threaded server),
``websockets-asyncio``, ``aiohttp`` (both on uvloop when installed), ``picows``
(asyncio, uvloop when installed) and ``socketify`` (uWebSockets), each if
installed (a peer that does not import is skipped with a note). None of them
compresses or sends keepalive pings; all accept 2 MiB messages.
"""

from __future__ import annotations

import argparse
import errno
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

/* Per connection: bytes still to write, bytes written, bytes of the current echo read so far, whether
   EPOLLOUT is on, and the FIFO of send times of the frames in flight (a ring of `ring` slots, inside
   one preallocated array): with pipelining the i-th echo answers the i-th frame sent. */
struct conn { int fd; size_t pending, sent, got; int out; size_t stamped, acked; double *stamps; };

static unsigned char *pattern;
static size_t frame_len;
static size_t ring;  /* in flight per connection: never more frames than that are written and unanswered */
static int ep;

/* Round-trip times of the measured period, in microseconds: grown by doubling, never per message. */
static float *lat;
static size_t lat_n, lat_cap;

static void record(double seconds) {
    if (lat_n == lat_cap) {
        lat_cap = lat_cap ? lat_cap * 2 : 1 << 16;
        lat = realloc(lat, lat_cap * sizeof *lat);
        if (!lat) die("realloc");
    }
    lat[lat_n++] = (float)(seconds * 1e6);
}

static void flush(struct conn *c) {
    if (c->pending) {
        double t = now();
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
        /* a frame is stamped by the write that takes its first byte */
        while (c->stamped * frame_len < c->sent) c->stamps[c->stamped++ % ring] = t;
    }
    int want = c->pending != 0;
    if (want != c->out) {
        struct epoll_event ev = {EPOLLIN | (want ? EPOLLOUT : 0), {.ptr = c}};
        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
        c->out = want;
    }
}

static int cmpf(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* load PORT CONNS INFLIGHT SIZE WARMUP DURATION RAW: prints msgs_per_s, total_msgs, and p50_us and p99_us
   of the time from writing each frame to reading its echo (echoes read in the measured period) */
static int load(int port, int nconn, int inflight, size_t size, double warmup, double duration, int raw) {
    unsigned char *one = malloc(frame_size(size, 1));
    frame_len = build_frame(one, size);
    size_t reply = raw ? frame_len : frame_size(size, 0);
    pattern = malloc(frame_len * (size_t)(inflight + 1));
    for (int i = 0; i <= inflight; i++) memcpy(pattern + (size_t)i * frame_len, one, frame_len);
    ring = (size_t)inflight;
    double *stamps = calloc((size_t)nconn * ring, sizeof *stamps);
    ep = epoll_create1(0);
    struct conn *conns = calloc((size_t)nconn, sizeof *conns);
    if (!pattern || !stamps || !conns) die("malloc");
    for (int i = 0; i < nconn; i++) {
        struct conn *c = &conns[i];
        c->fd = dial(port, raw);
        c->stamps = stamps + (size_t)i * ring;
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
                    if (done && counting) {
                        double t_read = now();
                        for (size_t k = 0; k < done; k++) record(t_read - c->stamps[(c->acked + k) % ring]);
                    }
                    c->acked += done;
                    count += (long long)done;
                    c->pending += done * frame_len;
                }
            }
            flush(c);
        }
    }
    printf("msgs_per_s %.1f\ntotal_msgs %lld\n", count / (t - t_measure), total + count);
    if (lat_n) {
        qsort(lat, lat_n, sizeof *lat, cmpf);
        printf("p50_us %.1f\np99_us %.1f\n", lat[lat_n / 2], lat[lat_n * 99 / 100]);
    } else {
        printf("p50_us nan\np99_us nan\n");
    }
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

#: (name, connections, in flight per connection, message size): the default ``--cases``
THROUGHPUT_CASES = [
    ("16 B x 16 conns x 16 in flight", 16, 16, 16),
    ("16 B x 128 conns x 1 in flight", 128, 1, 16),
    ("1 MiB x 1 conn x 1 in flight", 1, 1, 1 << 20),
]
#: ``--cases matrix``: every size x every connection count x every in-flight count (24 cells)
MATRIX_SIZES = [16, 1 << 10, 64 << 10, 1 << 20]
MATRIX_CONNS = [1, 16, 128]
MATRIX_INFLIGHT = [1, 16]
MAX_MESSAGE = 2 << 20  # what every server below accepts
SERVERS = ["wsframe-cython", "wsframe-python", "wsframe-reactor-cython", "wsframe-reactor-python", "websockets-sync",
           "websockets-asyncio", "aiohttp", "picows", "socketify"]
#: the module each peer needs; a server whose module does not import is skipped with a note
PEER_MODULES = {"websockets-sync": "websockets.sync.server", "websockets-asyncio": "websockets.asyncio.server",
                "aiohttp": "aiohttp.web", "picows": "picows", "socketify": "socketify"}
THREADED_MAX_CONNECTIONS = 5000  # serve_main's setting for the threaded wsframe server (the reactor: 19000)
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

        with ws_serve(ws_echo, "127.0.0.1", 0, max_size=MAX_MESSAGE, compression=None, ping_interval=None) as server:
            signal.signal(signal.SIGTERM, lambda *_: server.shutdown())
            print(f"PORT {server.socket.getsockname()[1]} -", flush=True)
            server.serve_forever()
    elif impl == "websockets-asyncio":
        _serve_websockets_asyncio()
    elif impl == "aiohttp":
        _serve_aiohttp()
    elif impl == "socketify":
        _serve_socketify()
    else:
        raise SystemExit(f"unknown server {impl}")


def _run_async(main: Any) -> None:
    """Run a coroutine on uvloop if it is installed, else on asyncio's default loop."""
    import asyncio

    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


def _serve_websockets_asyncio() -> None:
    import asyncio
    import logging

    from websockets.asyncio.server import serve as ws_serve
    from websockets.exceptions import ConnectionClosed

    logging.getLogger("websockets").setLevel(logging.CRITICAL)  # the load generator just disconnects

    async def ws_echo(ws: Any) -> None:
        try:
            async for message in ws:
                await ws.send(message)
        except ConnectionClosed:
            pass

    async def ws_main() -> None:
        # no keepalive pings: an unsolicited ping would break the load generator's framing
        async with ws_serve(ws_echo, "127.0.0.1", 0, compression=None, max_size=MAX_MESSAGE, ping_interval=None,
                            backlog=1024) as server:
            loop = type(asyncio.get_running_loop()).__module__.split(".")[0]
            print(f"PORT {server.sockets[0].getsockname()[1]} {loop}", flush=True)
            await asyncio.Event().wait()

    _run_async(ws_main())


def _serve_aiohttp() -> None:
    import asyncio
    import logging

    from aiohttp import WSMsgType, web

    logging.getLogger("aiohttp").setLevel(logging.CRITICAL)

    async def echo(request: Any) -> Any:
        # autoclose (the default) answers close frames; max_msg_size is exclusive (a 2 MiB message gets 1009)
        ws = web.WebSocketResponse(compress=False, max_msg_size=MAX_MESSAGE + 1)
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                await ws.send_bytes(msg.data)
            elif msg.type == WSMsgType.TEXT:
                await ws.send_str(msg.data)
        return ws

    async def aiohttp_main() -> None:
        app = web.Application()
        app.router.add_get("/", echo)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        loop = type(asyncio.get_running_loop()).__module__.split(".")[0]
        print(f"PORT {runner.addresses[0][1]} {loop}", flush=True)
        await asyncio.Event().wait()

    _run_async(aiohttp_main())


def _serve_socketify() -> None:
    """uWebSockets through socketify's cffi binding; uWS answers pings and close frames itself."""
    from socketify import App, CompressOptions

    app = App()

    def on_message(ws: Any, message: Any, opcode: Any) -> None:
        ws.send(message, opcode)  # text arrives as str and goes back as text

    app.ws("/*", {
        "compression": CompressOptions.DISABLED,
        "max_payload_length": MAX_MESSAGE,
        "idle_timeout": 0,  # never close idle connections (--hold)
        "max_backpressure": 1 << 30,  # above it uWS drops sends: the pipelined cases would stall
        "message": on_message,
    })
    app.any("/*", lambda res, req: res.end("WebSocket only"))
    app.listen({"port": 0, "host": "127.0.0.1"}, lambda config: print(f"PORT {config.port} uws", flush=True))
    app.run()


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


def _server_env(tree: Optional[str] = None) -> Dict[str, str]:
    """The servers' environment: wsframe from this checkout, or from ``tree`` (a ``NAME@TREE`` server)."""
    env = dict(os.environ)
    src = SRC if tree is None else Path(tree) / "src"
    if (src / "wsframe").is_dir():  # benchmark the checkout
        env["PYTHONPATH"] = str(src) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def import_problem(module: str) -> str:
    """'' if ``module`` imports in a server's environment, else the last line of the error."""
    try:
        out = subprocess.run([sys.executable, "-c", f"import {module}"], env=_server_env(), capture_output=True,
                             text=True, timeout=120)
    except subprocess.TimeoutExpired:
        return "import timed out"
    if out.returncode == 0:
        return ""
    lines = out.stderr.strip().splitlines()
    return lines[-1] if lines else f"exit status {out.returncode}"


class ServerProcess:
    def __init__(self, argv: List[str], tree: Optional[str] = None) -> None:
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, env=_server_env(tree), text=True)
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
    """A server by name; ``wsframe-...@TREE`` runs wsframe from another checkout (before/after runs)."""
    name, _, tree = name.partition("@")
    if name == "raw-echo":
        return ServerProcess([LOADGEN, "echo"])
    if name == "python-raw-echo":
        return ServerProcess([sys.executable, __file__, "_serve", name])
    if name.startswith("wsframe-reactor-"):
        return ServerProcess([sys.executable, __file__, "_serve", "wsframe-reactor", name.rsplit("-", 1)[1]], tree or None)
    if name.startswith("wsframe-"):
        return ServerProcess([sys.executable, __file__, "_serve", "wsframe", name.split("-", 1)[1]], tree or None)
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


def load_case(server: ServerProcess, conns: int, inflight: int, size: int, opts: Any,
              raw: bool) -> Tuple[float, float, float, float]:
    """(messages per second, server CPU microseconds per message, p50 and p99 in microseconds from writing a
    message to reading its echo, over the measured period)."""
    cpu = server.cpu_seconds()
    result = run_loadgen(
        ["load", str(server.port), str(conns), str(inflight), str(size), str(opts.warmup), str(opts.duration), str(int(raw))],
        timeout=opts.warmup + opts.duration + 60,
    )
    cpu = server.cpu_seconds() - cpu
    return result["msgs_per_s"], cpu * 1e6 / max(1.0, result["total_msgs"]), result["p50_us"], result["p99_us"]


def throughput(server: ServerProcess, conns: int, inflight: int, size: int, opts: Any, raw: bool) -> Tuple[float, float]:
    """(messages per second, server CPU microseconds per message)."""
    return load_case(server, conns, inflight, size, opts, raw)[:2]


def settle(server: ServerProcess, limit: float = 2.0) -> None:
    """Wait (at most ``limit`` s) until the server's CPU time stops moving: what a big cell left queued in the
    server is not charged to the next one."""
    deadline = time.monotonic() + limit
    last = server.cpu_seconds()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        cpu = server.cpu_seconds()
        if cpu == last:
            return
        last = cpu


def latency(server: ServerProcess, opts: Any, raw: bool) -> Tuple[float, float]:
    result = run_loadgen(["latency", str(server.port), "16", str(opts.pings), str(int(raw))], timeout=120)
    return result["p50_us"], result["p99_us"]


REQUEST = (
    "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
).encode()


def _dial(port: int) -> socket.socket:
    """A blocking client connection (10 s timeout) after its opening handshake."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(REQUEST)
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        byte = sock.recv(1)
        if not byte:
            raise RuntimeError("handshake failed")
        head += byte
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(head.decode("latin-1"))
    return sock


def idle_memory(server: ServerProcess, count: int) -> Tuple[float, int]:
    """KiB of server RSS per idle connection, and the server's thread count with them open."""
    _dial(server.port).close()  # warm up (imports, the maintenance thread), then measure from a settled state
    time.sleep(1.0)
    before, _ = server.rss_kib()
    socks = [_dial(server.port) for _ in range(count)]
    time.sleep(2.0)
    after, threads = server.rss_kib()
    for sock in socks:
        sock.close()
    return (after - before) / count, threads


def _masked(opcode: int, payload: bytes, key: bytes = b"\x12\x34\x56\x78") -> bytes:
    n = len(payload)
    head = bytes([0x80 | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([0x80 | 127]) + n.to_bytes(8, "big")
    return head + key + bytes(b ^ key[i & 3] for i, b in enumerate(payload))


def _read_frame(sock: socket.socket) -> Tuple[int, bytes]:
    def exactly(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("closed by the server")
            data += chunk
        return data

    b0, b1 = exactly(2)
    n = b1 & 0x7F
    if n >= 126:
        n = int.from_bytes(exactly(2 if n == 126 else 8), "big")
    if b1 & 0x80:
        raise ValueError("masked frame from the server")
    return b0, exactly(n)


def check_echo(port: int) -> str:
    """A text, a binary message and a close frame on one connection: '' if each is answered, else what is wrong."""
    try:
        sock = _dial(port)
    except (OSError, RuntimeError) as exc:
        return str(exc)
    try:
        for opcode, payload in ((0x1, "h\u00e9llo, text".encode()), (0x2, bytes(range(256)) * 2)):
            sock.sendall(_masked(opcode, payload))
            b0, data = _read_frame(sock)
            if (b0, data) != (0x80 | opcode, payload):
                return f"opcode {opcode}: got first byte {b0:#x}, {len(data)} B"
        sock.sendall(_masked(0x8, (1000).to_bytes(2, "big")))
        b0, data = _read_frame(sock)
        return "" if b0 == 0x88 else f"close: got first byte {b0:#x}"
    except (OSError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        sock.close()


HOLD_WINDOW = 200  # handshakes in progress at once: no listen backlog overflows, no SYN retransmits
HOLD_HANDSHAKE_TIMEOUT = 10.0  # seconds for one connection's handshake


def raise_nofile() -> int:
    """Raise RLIMIT_NOFILE's soft limit to the hard limit (the servers started later inherit it); the limit."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft != target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            return soft
    return target


def _reasons(counter: Dict[str, int]) -> str:
    return "; ".join(f"{n} {why}" for why, n in sorted(counter.items(), key=lambda kv: -kv[1]))


def hold_connections(server: ServerProcess, count: int) -> Dict[str, Any]:
    """Open ``count`` connections (handshake done) and leave them idle; the server's RSS growth per connection
    and threads with them open; then one 16 B message on every connection, every echo read back.

    Non-blocking sockets and a selector, at most HOLD_WINDOW handshakes in progress; every phase has a
    deadline (handshakes: 20 s + 4 ms per connection, 10 s each; echoes: 10 s + 1 ms per connection).
    """
    import selectors

    sel = selectors.DefaultSelector()
    held: List[socket.socket] = []
    got: Dict[socket.socket, bytes] = {}  # bytes read past the 101 (none expected), then the echo
    failed: Dict[str, int] = {}
    pending: Dict[socket.socket, List[Any]] = {}  # sock -> [started, request left to write, response so far]

    def fail(why: str, n: int = 1) -> None:
        failed[why] = failed.get(why, 0) + n

    def drop(sock: socket.socket, why: str) -> None:
        fail(why)
        sel.unregister(sock)
        del pending[sock]
        sock.close()

    _dial(server.port).close()  # warm up, then measure from a settled state
    time.sleep(1.0)
    before, _ = server.rss_kib()
    started = time.monotonic()
    deadline = started + 20 + count / 250
    launched = 0
    try:
        while (launched < count or pending) and time.monotonic() < deadline and server.process.poll() is None:
            while launched < count and len(pending) < HOLD_WINDOW:
                launched += 1
                try:
                    sock = socket.socket()
                except OSError as exc:
                    fail(f"socket(): {exc.strerror}", count - launched + 1)
                    launched = count
                    break
                sock.setblocking(False)
                err = sock.connect_ex(("127.0.0.1", server.port))
                if err not in (0, errno.EINPROGRESS):
                    fail(f"connect: {os.strerror(err)}")
                    sock.close()
                    continue
                pending[sock] = [time.monotonic(), REQUEST, b""]
                sel.register(sock, selectors.EVENT_WRITE)
            for key, _ in sel.select(timeout=0.1):
                sock = key.fileobj  # type: ignore[assignment]
                state = pending[sock]
                try:
                    if state[1]:
                        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                        if err:
                            drop(sock, f"connect: {os.strerror(err)}")
                            continue
                        state[1] = state[1][sock.send(state[1]):]
                        if not state[1]:
                            sel.modify(sock, selectors.EVENT_READ)
                        continue
                    data = sock.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError as exc:
                    drop(sock, exc.strerror or type(exc).__name__)
                    continue
                if not data:
                    drop(sock, "closed before the response" if not state[2] else "closed in the response")
                    continue
                state[2] += data
                end = state[2].find(b"\r\n\r\n")
                if end < 0:
                    if len(state[2]) > 65536:
                        drop(sock, "response head over 64 KiB")
                    continue
                if not state[2].startswith(b"HTTP/1.1 101"):
                    drop(sock, "answered " + state[2].split(b"\r\n", 1)[0].decode("latin-1"))
                    continue
                sel.unregister(sock)
                del pending[sock]
                held.append(sock)
                got[sock] = state[2][end + 4:]
            now = time.monotonic()
            for sock, state in list(pending.items()):
                if now - state[0] > HOLD_HANDSHAKE_TIMEOUT:
                    drop(sock, f"no handshake within {HOLD_HANDSHAKE_TIMEOUT:g} s")
        why = "server exited" if server.process.poll() is not None else "deadline"
        for sock in list(pending):
            drop(sock, f"handshake not done ({why})")
        if launched < count:
            fail(f"not tried ({why})", count - launched)
        open_s = time.monotonic() - started
        time.sleep(2.0)  # the server settles with every connection open
        after, threads = server.rss_kib()

        # every held connection is still served: one message each, every echo read back
        payload = b"held, and served"
        frame, expected = _masked(0x2, payload), bytes([0x82, len(payload)]) + payload
        lost: Dict[str, int] = {}
        unsent: Dict[socket.socket, bytes] = {}
        waiting = set()
        started = time.monotonic()
        echo_deadline = started + 10 + len(held) / 1000
        for sock in held:
            try:
                n = sock.send(frame)
            except (BlockingIOError, InterruptedError):
                n = 0
            except OSError as exc:
                lost[exc.strerror or "send failed"] = lost.get(exc.strerror or "send failed", 0) + 1
                continue
            if n < len(frame):
                unsent[sock] = frame[n:]
            sel.register(sock, selectors.EVENT_READ | (selectors.EVENT_WRITE if n < len(frame) else 0))
            waiting.add(sock)
        while waiting and time.monotonic() < echo_deadline and server.process.poll() is None:
            for key, events in sel.select(timeout=0.1):
                sock = key.fileobj  # type: ignore[assignment]
                why = ""
                try:
                    if events & selectors.EVENT_WRITE:
                        rest = unsent.get(sock, b"")
                        rest = rest[sock.send(rest):] if rest else rest
                        if rest:
                            unsent[sock] = rest
                        else:
                            unsent.pop(sock, None)
                            sel.modify(sock, selectors.EVENT_READ)
                    if events & selectors.EVENT_READ:
                        data = sock.recv(65536)
                        if not data:
                            why = "closed by the server"
                        else:
                            got[sock] += data
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError as exc:
                    why = exc.strerror or type(exc).__name__
                if not why and len(got[sock]) < len(expected):
                    continue
                if not why and got[sock][:len(expected)] != expected:
                    why = f"unexpected reply {got[sock][:4].hex()}"
                if why:
                    lost[why] = lost.get(why, 0) + 1
                sel.unregister(sock)
                waiting.discard(sock)
        if waiting:
            code = server.process.poll()
            lost[f"no echo (server exited, status {code})" if code is not None else
                 f"no echo within {echo_deadline - started:.0f} s"] = len(waiting)
        served = len(held) - sum(lost.values())
        echo_s = time.monotonic() - started
    finally:
        for sock in list(pending) + held:
            sock.close()
        sel.close()
    return {
        "held": len(held), "failed": failed, "open_s": open_s, "kib_per_conn": (after - before) / max(1, len(held)),
        "threads": threads, "served": served, "lost": lost, "echo_s": echo_s,
    }


# -- driver ----------------------------------------------------------------------------------


def _median(values: List[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def size_text(size: int) -> str:
    if size >= 1 << 20 and size % (1 << 20) == 0:
        return f"{size >> 20} MiB"
    if size >= 1 << 10 and size % (1 << 10) == 0:
        return f"{size >> 10} KiB"
    return f"{size} B"


def parse_size(text: str) -> int:
    """16, 1k (KiB), 64k, 1m (MiB)."""
    text = text.strip().lower()
    units = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20}
    digits = text.rstrip("bkm") if text[-1:] in units else text
    unit = text[len(digits):]
    if not digits.isdigit() or unit not in units:
        raise ValueError(f"bad size {text!r} (write 16, 1k, 64k, 1m)")
    return int(digits) * units[unit]


def case_name(size: int, conns: int, inflight: int) -> str:
    return f"{size_text(size)} x {conns} conn{'' if conns == 1 else 's'} x {inflight} in flight"


def parse_cases(spec: str, max_inflight: int) -> Tuple[List[Tuple[str, int, int, int]], List[str]]:
    """``--cases``: (name, connections, in flight, size) per cell, and notes on the cells that were capped.

    A cell is SIZExCONNSxINFLIGHT; ``matrix`` is the 24-cell grid, ``default`` the three THROUGHPUT_CASES.
    A cell with more than ``max_inflight`` bytes in flight over all its connections runs with fewer in flight
    per connection (at least 1), then if still over, fewer connections; its name says so.
    """
    cells: List[Tuple[int, int, int]] = []
    for token in (t.strip().lower() for t in spec.split(",")):
        if not token:
            continue
        if token == "matrix":
            cells += [(s, c, i) for s in MATRIX_SIZES for c in MATRIX_CONNS for i in MATRIX_INFLIGHT]
        elif token == "default":
            cells += [(size, conns, inflight) for _, conns, inflight, size in THROUGHPUT_CASES]
        else:
            parts = token.split("x")
            if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
                raise ValueError(f"bad cell {token!r}: write SIZExCONNSxINFLIGHT, e.g. 16x128x1 or 1kx16x16")
            size, conns, inflight = parse_size(parts[0]), int(parts[1]), int(parts[2])
            if not 1 <= size <= MAX_MESSAGE or conns < 1 or inflight < 1:
                raise ValueError(f"bad cell {token!r}: size 1 B to {size_text(MAX_MESSAGE)} (the servers' limit), "
                                 "at least 1 connection and 1 in flight")
            cells.append((size, conns, inflight))
    cases, notes = [], []
    for size, conns, inflight in dict.fromkeys(cells):  # in order, without repeats
        name = case_name(size, conns, inflight)
        run_conns, run_inflight = conns, inflight
        if size * conns * inflight > max_inflight:
            run_inflight = max(1, max_inflight // (size * conns))
            if size * conns * run_inflight > max_inflight:
                run_conns = max(1, max_inflight // size)
            notes.append(f"note: '{name}' would keep {size_text(size * conns * inflight)} in flight; it runs with "
                         f"{run_conns} conn{'' if run_conns == 1 else 's'} x {run_inflight} in flight "
                         f"(--max-inflight {size_text(max_inflight)})")
            name += f" (capped: {run_conns} x {run_inflight})"
        cases.append((name, run_conns, run_inflight, size))
    if not cases:
        raise ValueError("no cases")
    return cases, notes


def _us_text(us: float) -> str:
    if us != us:  # nan: no echo in the measured period
        return "-"
    if us < 10:
        return f"{us:.1f} us"
    if us < 1000:
        return f"{us:.0f} us"
    if us < 1e6:
        return f"{us / 1000:.1f} ms"
    return f"{us / 1e6:.2f} s"


def _hold_texts(result: Dict[str, Any], cap_note: str) -> Tuple[str, str]:
    """(held/served cell, memory cell) of the table."""
    held = f"{result['held']} held"
    if result["failed"]:
        held += f" ({sum(result['failed'].values())} failed)"
    served = f"{result['served']} served" if not result["lost"] else \
        f"{result['served']} served ({sum(result['lost'].values())} failed)"
    return f"{held}{cap_note}, {served}", f"{result['kib_per_conn']:.1f} KiB ({result['threads']} threads)"


def main(argv: Optional[List[str]] = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] == "_serve":
        serve_main(argv[1], argv[2] if len(argv) > 2 else None)
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", default=",".join(SERVERS), help=f"comma-separated, from {SERVERS}")
    parser.add_argument("--cases", default="default",
                        help="comma-separated cells SIZExCONNSxINFLIGHT (16x128x1,1kx16x16; sizes 16, 1k, 64k, 1m), "
                             "'matrix' (16 B, 1 KiB, 64 KiB, 1 MiB x 1, 16, 128 conns x 1, 16 in flight: 24 cells) "
                             "or 'default' (the three cases of the docstring; the default)")
    parser.add_argument("--max-inflight", default="64m",
                        help="cap on the bytes a cell keeps in flight over all its connections (default 64m): a cell "
                             "over it runs with fewer in flight per connection, then fewer connections, and says so")
    parser.add_argument("--duration", type=float, default=2.0, help="seconds measured per throughput case (default 2)")
    parser.add_argument("--warmup", type=float, default=0.5, help="seconds of load before measuring (default 0.5)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds, servers interleaved; medians reported (default 3)")
    parser.add_argument("--pings", type=int, default=10000, help="round trips for the latency case (default 10000)")
    parser.add_argument("--idle", type=int, default=1000, help="idle connections for the memory case (default 1000, 0: skip)")
    parser.add_argument("--hold", type=int, default=0,
                        help="after the rounds, open this many idle connections to a fresh process of each server, "
                             "measure its RSS per connection and threads, then check every one still echoes "
                             "(default 0: skip)")
    opts = parser.parse_args(argv)
    try:
        cases, case_notes = parse_cases(opts.cases, parse_size(opts.max_inflight))
    except ValueError as exc:
        parser.error(str(exc))
    servers = [s for s in opts.servers.split(",") if s]
    for name in servers:
        base, _, tree = name.partition("@")
        if base not in SERVERS or (tree and not base.startswith("wsframe-")):
            parser.error(f"unknown server {name!r}; known: {', '.join(SERVERS)} (wsframe ones also as NAME@TREE)")
    for name in list(servers):
        module = PEER_MODULES.get(name)
        problem = import_problem(module) if module else ""
        if problem:
            print(f"{module} is not importable ({problem}): skipping {name}")
            servers.remove(name)
    nofile = 0
    if opts.hold > 0:
        nofile = raise_nofile()  # before any server starts: they inherit it

    global LOADGEN
    folder = tempfile.mkdtemp(prefix="wsframe-bench-")
    try:
        LOADGEN = build_loadgen(folder)
        print(f"cpus: server on {SERVER_CPU}, load generator on {LOAD_CPU} (of {os.cpu_count()}); "
              f"{opts.duration:g} s per case after {opts.warmup:g} s warm-up; binary messages; "
              f"median of {opts.repeat} rounds; load average before: {os.getloadavg()[0]:.2f}", flush=True)
        for note in case_notes:
            print(note)
        columns = ["raw-echo", "python-raw-echo"] + servers
        samples: Dict[Tuple[str, str], List[Tuple[float, ...]]] = {}
        memory: Dict[str, str] = {}
        for round_ in range(opts.repeat):
            for name in columns:
                server = start_server(name)
                raw = name in ("raw-echo", "python-raw-echo")
                try:
                    if round_ == 0 and not raw:
                        problem = check_echo(server.port)
                        print(f"check {name}: " + (f"FAILED: {problem}" if problem else
                                                   "echoes text and binary, answers close"), flush=True)
                    line = []
                    for case, conns, inflight, size in cases:
                        settle(server)
                        result = load_case(server, conns, inflight, size, opts, raw)
                        samples.setdefault((name, case), []).append(result)
                        rate = result[0]
                        line.append(f"{rate * size / 1e9:.2f} GB/s" if size >= 65536 else f"{rate / 1000:.0f}k/s")
                    settle(server)
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
        held: Dict[str, str] = {}
        held_memory: Dict[str, str] = {}
        if opts.hold > 0:
            count = min(opts.hold, nofile - 64)
            print(f"hold: RLIMIT_NOFILE {nofile} (raised to the hard limit; the servers inherit it)"
                  + (f": holding {count} connections, not {opts.hold}" if count < opts.hold else ""), flush=True)
            affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
            for name in servers:
                n, cap_note = count, ""
                if name in ("wsframe-cython", "wsframe-python") and n > THREADED_MAX_CONNECTIONS:
                    n, cap_note = THREADED_MAX_CONNECTIONS, f" (capped at max_connections={THREADED_MAX_CONNECTIONS})"
                server = start_server(name)
                try:
                    _pin(LOAD_CPU)  # off the server's core while dialing; restored before the next server starts
                    result = hold_connections(server, n)
                finally:
                    if affinity is not None:
                        os.sched_setaffinity(0, affinity)
                    server.stop()
                held[name], held_memory[name] = _hold_texts(result, cap_note)
                extra = []
                if result["failed"]:
                    extra.append(f"handshakes failed: {_reasons(result['failed'])}")
                if result["lost"]:
                    extra.append(f"echoes failed: {_reasons(result['lost'])}")
                print(f"hold {name:16s} {n} asked{cap_note}: {result['held']} held in {result['open_s']:.1f} s, "
                      f"{held_memory[name]} per connection, {result['served']} served in {result['echo_s']:.2f} s"
                      + "".join(f"; {e}" for e in extra), flush=True)
        print(f"load average after: {os.getloadavg()[0]:.2f}\n")
        cell: Dict[Tuple[str, str], str] = {}
        for name in columns:
            for case, _, inflight, size in cases:
                values = samples[(name, case)]
                rate = _median([v[0] for v in values])
                cpu_us = _median([v[1] for v in values])
                shown = f"{rate * size / 1e9:.2f} GB/s" if size >= 65536 else f"{rate / 1000:.1f}k msg/s"
                cell[(name, case)] = f"{shown}, {cpu_us:.1f} us CPU/msg"
                if inflight == 1:
                    cell[(name, case)] += f", p99 {_us_text(_median([v[3] for v in values]))}"
            values = samples[(name, "latency")]
            cell[(name, "latency")] = f"{_median([v[0] for v in values]):.0f} us ({_median([v[1] for v in values]):.0f})"
            cell[(name, "memory")] = memory.get(name, "-")
            cell[(name, "hold")] = held.get(name, "-")
            cell[(name, "hold-memory")] = held_memory.get(name, "-")
        rows = [(c[0], c[0]) for c in cases] + [
            ("ping-pong latency p50 (p99)", "latency"), (f"memory per idle connection ({opts.idle})", "memory"),
        ]
        if opts.hold > 0:
            rows += [(f"--hold {opts.hold}: held, then served", "hold"), ("memory per held connection", "hold-memory")]
        headers = ["case", "raw C echo (ceiling)", "raw Python thread echo"] + servers
        table = [headers] + [[label] + [cell[(name, key)] for name in columns] for label, key in rows]
        widths = [max(len(r[i]) for r in table) for i in range(len(headers))]
        for i, line in enumerate(table):
            print("| " + " | ".join(c.ljust(widths[j]) for j, c in enumerate(line)) + " |")
            if i == 0:
                print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
        print("p99: from writing a message to reading its echo, under the cell's load (cells with 1 in flight)")
        for case, *_ in cases:
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
