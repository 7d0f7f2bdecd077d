"""Autobahn|Testsuite client driver: wsframe.connect() against ``wstest -m fuzzingserver``.

Run with the python under test (``run.py --side client`` does it). It reads
``URL/getCaseCount``, then for N = 1..count opens
``URL/runCase?case=N&agent=AGENT`` and echoes every message (text as text,
binary as binary) until the connection closes, then opens
``URL/updateReports?agent=AGENT`` so wstest writes ``index.json``.

Every wait is bounded: ``--open-timeout`` and ``--close-timeout`` go to
connect(), and each case gets at most ``--case-timeout`` seconds of reading
before the driver closes it itself (wstest then judges what it saw). Keepalive
pings are off (``ping_interval=None``): a ping of ours would be traffic no case
expects. permessage-deflate is offered without asking for a server window (the
cases of 13.* choose it) and every message is compressed (no threshold), so
that 12.* and 13.* exercise our compressor as well as our inflater. Nothing here judges a case; wstest does. The exit status is non-zero
only when the driver itself could not run (no case count, no report update).

    python compliance/client.py --url ws://127.0.0.1:9001 --agent wsframe-client-python --backend python
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.parse
from typing import Any, Dict, Optional

import wsframe
from wsframe.protocol import backend as _backend


def log(message: str) -> None:
    print(f"[client] {message}", flush=True)


def drain(ws: Any, deadline: float) -> None:
    """Read (and drop) what arrives until the connection closes or ``deadline`` passes."""
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            ws.recv(timeout=remaining)
    except (wsframe.ConnectionClosed, TimeoutError):
        return


def case_count(url: str, options: Dict[str, Any], timeout: float) -> int:
    deadline = time.monotonic() + timeout
    with wsframe.connect(f"{url}/getCaseCount", **options) as ws:
        count = int(json.loads(ws.recv(timeout=timeout)))
        drain(ws, deadline)
    return count


def run_case(url: str, number: int, agent: str, options: Dict[str, Any], timeout: float) -> str:
    """Echo everything of case ``number`` until the close; a one-line account of how it ended."""
    started = time.monotonic()
    deadline = started + timeout
    query = urllib.parse.urlencode({"case": number, "agent": agent})
    try:
        ws = wsframe.connect(f"{url}/runCase?{query}", **options)
    except Exception as exc:  # the handshake failed: wstest records what it saw
        return f"connect failed: {type(exc).__name__}: {exc}"
    messages = 0
    ending = ""
    with ws:
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    ending = f"case timeout ({timeout:.0f}s), closing"
                    break
                message = ws.recv(timeout=remaining)
                ws.send(message)
                messages += 1
        except wsframe.ConnectionClosed as exc:
            ending = f"ConnectionClosed({exc})"
        except TimeoutError:
            ending = f"case timeout ({timeout:.0f}s), closing"
        except Exception as exc:  # reported, never fatal: the next case still runs
            ending = f"unexpected {type(exc).__name__}: {exc}"
    return (f"{messages} echoed, close_code={ws.close_code} close_reason={ws.close_reason!r}, {ending},"
            f" {time.monotonic() - started:.2f}s")


def update_reports(url: str, agent: str, options: Dict[str, Any], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    query = urllib.parse.urlencode({"agent": agent})
    with wsframe.connect(f"{url}/updateReports?{query}", **options) as ws:
        drain(ws, deadline)  # wstest writes the reports, then closes


def main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="wstest fuzzingserver base URL, ws://127.0.0.1:PORT")
    parser.add_argument("--agent", required=True, help="agent name the results are filed under")
    parser.add_argument("--backend", choices=("cython", "python"), required=True)
    parser.add_argument("--max-size", type=int, default=64 * 1024 * 1024,
                        help="max_message_size in bytes, 0 for none (default 64 MiB: 9.* sends up to 16 MiB)")
    parser.add_argument("--open-timeout", type=float, default=10.0)
    parser.add_argument("--close-timeout", type=float, default=5.0)
    parser.add_argument("--case-timeout", type=float, default=120.0, help="seconds of reading per case at most")
    parser.add_argument("--report-timeout", type=float, default=300.0,
                        help="seconds for wstest to write the reports (updateReports)")
    args = parser.parse_args(argv)

    try:
        _backend.load(args.backend)
    except ImportError as exc:
        log(f"backend {args.backend} is not available here ({_backend.available()}): {exc}")
        return 2
    options: Dict[str, Any] = dict(
        backend=args.backend, max_message_size=args.max_size or None, open_timeout=args.open_timeout,
        close_timeout=args.close_timeout, ping_interval=None, proxy=None,
        compression=wsframe.Deflate(peer_max_window_bits=None, threshold=0),
    )
    log(f"client, backend {args.backend} (wsframe {wsframe.__version__}, Python {sys.version.split()[0]}),"
        f" agent {args.agent}, options {options}")
    url = args.url.rstrip("/")
    try:
        count = case_count(url, options, args.open_timeout + args.close_timeout)
    except Exception as exc:
        log(f"ERROR: cannot read the case count from {url}/getCaseCount: {type(exc).__name__}: {exc}")
        return 2
    log(f"{count} cases")
    started = time.monotonic()
    for number in range(1, count + 1):
        log(f"case {number}/{count}: {run_case(url, number, args.agent, options, args.case_timeout)}")
    log(f"all {count} cases run in {time.monotonic() - started:.1f}s; updating the reports")
    try:
        update_reports(url, args.agent, options, args.report_timeout)
    except Exception as exc:
        log(f"ERROR: updateReports failed: {type(exc).__name__}: {exc}")
        return 2
    log("reports updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
