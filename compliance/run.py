"""Run the Autobahn|Testsuite against wsframe's server and client, for each framing backend.

What, server side (``--side server``): for every requested backend (``cython``,
``python``) this starts ``python -m wsframe serve --mode echo --backend B`` on
127.0.0.1 (a free port), points Autobahn's ``wstest -m fuzzingclient`` at it
(wstest plays the client and tests our *server*), stops the server, and reads
``index.json`` from the report.

Client side (``--side client``): for every backend it starts ``wstest -m
fuzzingserver`` on 127.0.0.1 (a free port; wstest plays the server and tests
our *client*), runs ``compliance/client.py`` with the python under test (it
drives ``wsframe.connect(..., backend=B)`` through every case, echoing, then
asks for the reports), stops wstest, and reads ``index.json``.

``--side both`` (the default) runs the server side, then the client side. It
exits 0 only when every case is ``OK`` or ``INFORMATIONAL`` for both
``behavior`` and ``behaviorClose``; anything else (NON-STRICT, FAILED,
UNIMPLEMENTED, WRONG CODE, UNCLEAN, a missing report ...) is listed and fails.

Why this shape: ``wstest`` (PyPI ``autobahntestsuite``) runs only on Python 2.7,
so it lives in its own cached virtualenv (made with ``virtualenv==20.15.1``, the
last release that still runs on 2.7), built on first use and reused afterwards.
The driver itself is Python 3 and needs nothing outside the standard library.
The python under test must already have wsframe installed (``make test`` does).

    bash compliance/run.sh                          # both sides, both backends, cases 1.* .. 10.*
    bash compliance/run.sh --side client --backends python --cases '9.*'
    WSFRAME_PYTHON=/path/to/python bash compliance/run.sh

See docs/compliance.md.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WSTEST_PACKAGE = "autobahntestsuite==25.10.1"
VIRTUALENV_PACKAGE = "virtualenv==20.15.1"
DEFAULT_CASES = [f"{n}.*" for n in range(1, 11)]  # 1.* .. 10.*: everything but permessage-deflate
BACKENDS = ("cython", "python")
CLEAN = ("OK", "INFORMATIONAL")
VERDICTS = ("OK", "NON-STRICT", "INFORMATIONAL", "FAILED", "UNIMPLEMENTED")
MAX_SIZE = 64 * 1024 * 1024  # 9.* sends messages up to 16 MiB
INSTALL_TIMEOUT = 900.0
STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0

Results = Dict[str, Dict[str, str]]  # case id -> {"behavior": ..., "behaviorClose": ..., "reportfile": ...}


class HarnessError(Exception):
    """The run could not be carried out (as opposed to cases failing)."""


def log(message: str) -> None:
    print(f"[compliance] {message}", flush=True)


def run(cmd: Sequence[str], timeout: float) -> "subprocess.CompletedProcess[str]":
    """Run ``cmd`` to completion within ``timeout`` seconds, output captured; raise on failure."""
    try:
        done = subprocess.run(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise HarnessError(f"timed out after {timeout:.0f}s: {' '.join(cmd)}") from exc
    except OSError as exc:
        raise HarnessError(f"cannot run {cmd[0]}: {exc}") from exc
    if done.returncode != 0:
        tail = "\n".join(done.stdout.splitlines()[-30:])
        raise HarnessError(f"exit {done.returncode}: {' '.join(cmd)}\n{tail}")
    return done


# -- the python under test and Python 2.7 --------------------------------------------------------


def default_python() -> str:
    if os.environ.get("WSFRAME_PYTHON"):
        return os.environ["WSFRAME_PYTHON"]
    venv = REPO / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else "python3"


def default_python27() -> Optional[str]:
    if os.environ.get("WSTEST_PYTHON27"):
        return os.environ["WSTEST_PYTHON27"]
    pyenv_root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    for candidate in sorted(glob.glob(os.path.join(pyenv_root, "versions", "2.7*", "bin", "python")), reverse=True):
        return candidate
    return shutil.which("python2.7") or shutil.which("python2")


# -- wstest, in a cached Python 2.7 virtualenv --------------------------------------------------


def ensure_wstest(venv: Path, python27: Optional[str]) -> Path:
    """Return the path of a working ``wstest``, building ``venv`` first if needed (idempotent)."""
    wstest = venv / "bin" / "wstest"
    stamp = venv / ".wsframe-compliance"
    if wstest.exists() and stamp.exists() and stamp.read_text().strip() == WSTEST_PACKAGE:
        try:
            run([str(wstest), "--autobahnversion"], timeout=60)
            return wstest
        except HarnessError as exc:
            log(f"cached wstest is broken, rebuilding: {exc}")
    if not python27:
        raise HarnessError("no Python 2.7 found for wstest: set WSTEST_PYTHON27 or pass --python27")
    if venv.exists():
        # Only ever delete what looks like a virtualenv (or nothing at all).
        if not (venv / "pyvenv.cfg").exists() and any(venv.iterdir()):
            raise HarnessError(f"{venv} exists and is not a virtualenv; refusing to replace it")
        shutil.rmtree(venv)
    log(f"building the wstest virtualenv in {venv} (Python 2.7: {python27})")
    try:
        run([python27, "-m", "virtualenv", "--version"], timeout=60)
    except HarnessError:
        run([python27, "-m", "pip", "install", "-q", "--user", VIRTUALENV_PACKAGE], timeout=INSTALL_TIMEOUT)
    run([python27, "-m", "virtualenv", "-q", str(venv)], timeout=INSTALL_TIMEOUT)
    run([str(venv / "bin" / "pip"), "install", "-q", WSTEST_PACKAGE], timeout=INSTALL_TIMEOUT)
    version = run([str(wstest), "--autobahnversion"], timeout=60).stdout
    stamp.write_text(WSTEST_PACKAGE + "\n")
    log("wstest ready: " + " / ".join(version.split("\n")[:2]))
    return wstest


# -- processes: ports, CPUs, waiting, stopping ----------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pinning() -> Tuple[List[str], List[str]]:
    """``taskset`` prefixes putting wsframe and wstest on different CPUs, when possible."""
    if not hasattr(os, "sched_getaffinity") or not shutil.which("taskset"):
        return [], []
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return [], []
    return ["taskset", "-c", str(cpus[0])], ["taskset", "-c", str(cpus[1])]


def wait_for_listener(
    proc: "subprocess.Popen[bytes]", port: int, log_path: Path, what: str, ready: "re.Pattern[str]",
    check: Optional[Callable[["re.Match[str]"], None]] = None,
) -> None:
    """Wait (bounded) until ``proc`` printed ``ready`` in its log and accepts connections on ``port``."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    announced = False
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise HarnessError(f"{what} exited with {proc.returncode} during startup:\n{log_path.read_text()}")
        if not announced:
            match = ready.search(log_path.read_text(errors="replace"))
            if match:
                if check is not None:
                    check(match)
                announced = True
        if announced:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                    return
            except OSError:
                pass
        time.sleep(0.1)
    raise HarnessError(f"{what} not ready on 127.0.0.1:{port} after {STARTUP_TIMEOUT:.0f}s:\n{log_path.read_text()}")


def stop_process(proc: "subprocess.Popen[bytes]", what: str) -> None:
    """SIGTERM, then SIGKILL after STOP_TIMEOUT; always reaps the process."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        log(f"{what} ignored SIGTERM for {STOP_TIMEOUT:.0f}s, killing it")
        proc.kill()
        proc.wait(timeout=STOP_TIMEOUT)


def fresh(outdir: Path) -> None:
    if outdir.exists():
        shutil.rmtree(outdir)  # never read a stale index.json
    outdir.mkdir(parents=True)


def read_results(outdir: Path, agent: str, label: str) -> Results:
    index_path = outdir / "index.json"
    if not index_path.exists():
        raise HarnessError(f"{label}: wstest wrote no {index_path}")
    results: Results = json.loads(index_path.read_text()).get(agent, {})
    if not results:
        raise HarnessError(f"{label}: no results for agent {agent} in {index_path}")
    return results


# -- server side: our server up, wstest fuzzingclient, our server down ------------------------------


def run_server_side(
    backend: str, python: str, wstest: Path, outdir: Path, cases: List[str], excluded: List[str],
    timeout: float, pin: bool,
) -> Tuple[Results, float]:
    """Run the suite against one backend's server; return its results (case -> verdicts) and the wall time."""
    fresh(outdir)
    label = f"server {backend}"
    agent = f"wsframe-{backend}"
    port = free_port()
    spec = {
        "outdir": str(outdir),
        "servers": [{"agent": agent, "url": f"ws://127.0.0.1:{port}"}],
        "cases": cases,
        "exclude-cases": excluded,
        "exclude-agent-cases": {},
    }
    spec_path = outdir / "fuzzingclient.json"
    spec_path.write_text(json.dumps(spec, indent=2) + "\n")
    server_pin, wstest_pin = pinning() if pin else ([], [])
    server_cmd = server_pin + [
        python, "-m", "wsframe", "serve", "--mode", "echo", "--backend", backend,
        "--host", "127.0.0.1", "--port", str(port), "--max-size", str(MAX_SIZE), "--log-level", "warning",
    ]
    server_log = outdir / "server.log"
    wstest_log = outdir / "wstest.log"

    def same_backend(match: "re.Match[str]") -> None:
        if match.group(1) != backend:
            raise HarnessError(f"asked for backend {backend}, the server runs {match.group(1)}")

    log(f"{label}: server on 127.0.0.1:{port} ({' '.join(server_cmd)})")
    started = time.monotonic()
    with open(server_log, "w") as server_out:
        server = subprocess.Popen(
            server_cmd, stdout=server_out, stderr=subprocess.STDOUT, cwd=str(outdir),
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
        try:
            wait_for_listener(server, port, server_log, "server", re.compile(r"server(?: \([^)]*\))?, backend (\w+)"), same_backend)
            log(f"{label}: wstest fuzzingclient {' '.join(cases)} (log: {wstest_log})")
            with open(wstest_log, "w") as wstest_out:
                try:
                    code = subprocess.run(
                        wstest_pin + [str(wstest), "-m", "fuzzingclient", "-s", str(spec_path)],
                        stdout=wstest_out, stderr=subprocess.STDOUT, cwd=str(outdir), timeout=timeout,
                    ).returncode
                except subprocess.TimeoutExpired as exc:
                    raise HarnessError(f"{label}: wstest did not finish within {timeout:.0f}s") from exc
            if code != 0:
                tail = "\n".join(wstest_log.read_text(errors="replace").splitlines()[-30:])
                raise HarnessError(f"{label}: wstest exited with {code}:\n{tail}")
            if server.poll() is not None:
                raise HarnessError(f"{label}: the server died during the run (exit {server.returncode}), see {server_log}")
        finally:
            stop_process(server, "server")
    elapsed = time.monotonic() - started
    return read_results(outdir, agent, label), elapsed


# -- client side: wstest fuzzingserver up, our client through every case, wstest down ----------------

# wstest's fuzzingserver listens on every interface (autobahn's listenWS with interface='') and starts
# a report web server on 8080 unless --webport 0. This runs wstest with the WebSocket listener bound
# to 127.0.0.1 only; it is Python 2.7 code, run by the wstest virtualenv's python.
WSTEST_LOOPBACK = """\
import sys
import autobahntestsuite.fuzzing as fuzzing
_listen = fuzzing.listenWS
def listen_loopback(factory, contextFactory=None, backlog=50, interface=''):
    return _listen(factory, contextFactory, backlog, '127.0.0.1')
fuzzing.listenWS = listen_loopback
from autobahntestsuite.wstest import run
sys.argv[0] = 'wstest'
sys.exit(run())
"""


def run_client_side(
    backend: str, python: str, wstest: Path, outdir: Path, cases: List[str], excluded: List[str],
    timeout: float, pin: bool,
) -> Tuple[Results, float]:
    """Run the suite against one backend's client; return its results and the wall time."""
    fresh(outdir)
    label = f"client {backend}"
    agent = f"wsframe-client-{backend}"
    port = free_port()
    url = f"ws://127.0.0.1:{port}"
    spec = {"url": url, "outdir": str(outdir), "cases": cases, "exclude-cases": excluded, "exclude-agent-cases": {}}
    spec_path = outdir / "fuzzingserver.json"
    spec_path.write_text(json.dumps(spec, indent=2) + "\n")
    client_pin, wstest_pin = pinning() if pin else ([], [])
    wstest_cmd = wstest_pin + [
        str(wstest.parent / "python"), "-u", "-c", WSTEST_LOOPBACK,
        "-m", "fuzzingserver", "-s", str(spec_path), "--webport", "0",
    ]
    client_cmd = client_pin + [
        python, str(HERE / "client.py"), "--url", url, "--agent", agent, "--backend", backend,
        "--max-size", str(MAX_SIZE),
    ]
    wstest_log = outdir / "wstest.log"
    client_log = outdir / "client.log"
    log(f"{label}: wstest fuzzingserver on {url} {' '.join(cases)} (log: {wstest_log})")
    started = time.monotonic()
    with open(wstest_log, "w") as wstest_out:
        server = subprocess.Popen(wstest_cmd, stdout=wstest_out, stderr=subprocess.STDOUT, cwd=str(outdir))
        try:
            wait_for_listener(server, port, wstest_log, "wstest fuzzingserver", re.compile(r"will run \d+ test cases"))
            log(f"{label}: {' '.join(client_cmd)} (log: {client_log})")
            with open(client_log, "w") as client_out:
                try:
                    code = subprocess.run(
                        client_cmd, stdout=client_out, stderr=subprocess.STDOUT, cwd=str(outdir), timeout=timeout,
                        env=dict(os.environ, PYTHONUNBUFFERED="1"),
                    ).returncode
                except subprocess.TimeoutExpired as exc:
                    raise HarnessError(f"{label}: the client driver did not finish within {timeout:.0f}s") from exc
            if code != 0:
                tail = "\n".join(client_log.read_text(errors="replace").splitlines()[-30:])
                raise HarnessError(f"{label}: the client driver exited with {code}:\n{tail}")
            if f"client, backend {backend}" not in client_log.read_text(errors="replace"):
                raise HarnessError(f"{label}: the client driver did not announce backend {backend}, see {client_log}")
            if server.poll() is not None:
                raise HarnessError(f"{label}: wstest died during the run (exit {server.returncode}), see {wstest_log}")
        finally:
            stop_process(server, "wstest fuzzingserver")
    elapsed = time.monotonic() - started
    return read_results(outdir, agent, label), elapsed


SIDES = {"server": run_server_side, "client": run_client_side}


# -- reporting ----------------------------------------------------------------------------------

Run = Tuple[str, str]  # (side, backend)


def case_key(case: str) -> Tuple[int, ...]:
    return tuple(int(part) for part in case.split(".") if part.isdigit())


def bad_cases(results: Results) -> List[str]:
    return sorted(
        (c for c, r in results.items() if r.get("behavior") not in CLEAN or r.get("behaviorClose") not in CLEAN),
        key=case_key,
    )


def summary(runs: Dict[Run, Tuple[Results, float]]) -> str:
    seen = {r.get(k, "?") for results, _ in runs.values() for r in results.values() for k in ("behavior", "behaviorClose")}
    columns = list(VERDICTS) + sorted(seen - set(VERDICTS))
    header = ["side", "backend", "field", "cases"] + columns + ["wall time"]
    rows = [header]
    for (side, backend), (results, elapsed) in runs.items():
        for field in ("behavior", "behaviorClose"):
            counts = Counter(r.get(field, "?") for r in results.values())
            rows.append([side, backend, field, str(len(results))] + [str(counts[c]) for c in columns] + [f"{elapsed:.1f}s"])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


def describe(outdir: Path, entry: Dict[str, str]) -> str:
    """What the per-case report says: expected vs received events, the close, and wstest's verdict text."""
    try:
        case = json.loads((outdir / entry["reportfile"]).read_text())
    except (KeyError, OSError, ValueError):
        return ""

    def short(value: object, limit: int = 160) -> str:
        text = json.dumps(value)
        return text if len(text) <= limit else text[:limit] + "..."

    return "\n".join([
        f"      description: {short(case.get('description'), 300)}",
        f"      expected: {short(case.get('expected'))}",
        f"      received: {short(case.get('received'))}",
        f"      close: remote {case.get('remoteCloseCode')} {short(case.get('remoteCloseReason'))},"
        f" local {case.get('localCloseCode')} {short(case.get('localCloseReason'))},"
        f" expected {short(case.get('expectedClose'))}, clean={case.get('wasClean')}",
        f"      result: {short(case.get('result'), 300)} / {short(case.get('resultClose'), 300)}",
    ])


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--side", choices=("server", "client", "both"), default="both",
                        help="test wsframe's server (wstest fuzzingclient), its client (wstest fuzzingserver), or both (default)")
    parser.add_argument("--python", default=default_python(),
                        help="python with wsframe installed (default: $WSFRAME_PYTHON, else .venv/bin/python, else python3)")
    parser.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated (default: cython,python)")
    parser.add_argument("--cases", default=",".join(DEFAULT_CASES), help="comma-separated wstest case patterns (default: 1.* .. 10.*)")
    parser.add_argument("--exclude-cases", default="", help="comma-separated case patterns to skip (default: none)")
    parser.add_argument("--outdir", type=Path, default=HERE / "reports",
                        help="reports go to OUTDIR/SIDE/BACKEND (default: compliance/reports)")
    parser.add_argument("--wstest-venv", type=Path, default=Path(os.environ.get("WSTEST_VENV", HERE / ".venv-wstest")),
                        help="cached wstest virtualenv (default: $WSTEST_VENV, else compliance/.venv-wstest)")
    parser.add_argument("--python27", default=default_python27(), help="Python 2.7 for wstest (default: $WSTEST_PYTHON27, else pyenv's, else python2.7)")
    parser.add_argument("--timeout", type=float, default=1800.0,
                        help="seconds allowed for one side and backend: the wstest run (server side), the client driver (client side) (default: 1800)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin wsframe and wstest to different CPUs")
    args = parser.parse_args(argv)

    backends = [b for b in args.backends.split(",") if b]
    unknown = sorted(set(backends) - set(BACKENDS))
    if unknown or not backends:
        parser.error(f"--backends: choose from {', '.join(BACKENDS)}")
    sides = ["server", "client"] if args.side == "both" else [args.side]
    cases = [c for c in args.cases.split(",") if c]
    excluded = [c for c in args.exclude_cases.split(",") if c]
    outdir = args.outdir.resolve()

    runs: Dict[Run, Tuple[Results, float]] = {}
    try:
        wstest = ensure_wstest(args.wstest_venv.resolve(), args.python27)
        try:
            version = run([args.python, "-c", "import sys, wsframe; print(wsframe.__version__, sys.version.split()[0])"], timeout=60)
        except HarnessError as exc:
            raise HarnessError(f"{args.python} cannot import wsframe (install it first, e.g. `make test`): {exc}") from exc
        log(f"python under test: {args.python} (wsframe {version.stdout.strip()})")
        for side in sides:
            for backend in backends:
                runs[side, backend] = SIDES[side](
                    backend, args.python, wstest, outdir / side / backend, cases, excluded, args.timeout, not args.no_pin
                )
                log(f"{side} {backend}: {len(runs[side, backend][0])} cases in {runs[side, backend][1]:.1f}s")
    except HarnessError as exc:
        log(f"ERROR: {exc}")
        if runs:
            print(summary(runs))
        return 2

    print()
    print(summary(runs))
    failed = 0
    for (side, backend), (results, _) in runs.items():
        for case in bad_cases(results):
            entry = results[case]
            failed += 1
            detail = describe(outdir / side / backend, entry)
            print(f"  FAIL {side} {backend} {case}: behavior={entry.get('behavior')} behaviorClose={entry.get('behaviorClose')}")
            if detail:
                print(detail)
    print()
    if failed:
        log(f"{failed} case result(s) are not OK/INFORMATIONAL; reports in {outdir}/<side>/<backend>/index.html")
        return 1
    log(f"all cases OK or INFORMATIONAL for {' and '.join(sides)}, {', '.join(backends)}; reports in {outdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
