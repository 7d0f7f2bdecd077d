"""pytest configuration for the benchmarks (pytest-benchmark).

Run from the repository root::

    python -m pytest benchmarks --benchmark-only

What this file does, and nothing more (bench_echo.py and any other module here
share it):

* collects ``bench_*.py`` as well as ``test_*.py`` in this directory (the
  repository's pyproject only points pytest at ``tests/``);
* imports wsframe from ``src/`` when it is not installed, so a checkout with an
  in-place build (``python setup.py build_ext --inplace``) benchmarks as is;
* prints the machine, the backends and the peers in the report header;
* after the run, prints the framing targets of issue 2 as ratios computed from
  this run's own numbers, and with ``--framing-report=PATH`` writes them and the
  per-case tables as Markdown (the source of docs/benchmarks.md).

Only benchmarks whose ``extra_info["suite"]`` is ``"framing"`` enter that
summary, so other benchmark modules are left alone.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple

import pytest

ROOT = Path(__file__).resolve().parent.parent

try:  # an installed wsframe (pip install -e . / pip install .) wins
    import wsframe  # noqa: F401
except ImportError:  # a bare checkout: use src/ as it stands
    sys.path.insert(0, str(ROOT / "src"))


# ---------------------------------------------------------------------------
# Collection and header


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("wsframe benchmarks")
    group.addoption(
        "--framing-report",
        metavar="PATH",
        default=None,
        help="write the framing benchmark tables and the issue-2 target ratios as Markdown to PATH",
    )


def pytest_configure(config: pytest.Config) -> None:
    patterns = config.getini("python_files")
    if "bench_*.py" not in patterns:
        config.addinivalue_line("python_files", "bench_*.py")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    have = set(line.split(":", 1)[1].split())
                    return " ".join(x for x in ("sse2", "avx2", "avx512f", "avx512bw") if x in have)
    except OSError:
        pass
    return "?"


def _version(module: str) -> str:
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:  # noqa: BLE001 - absent or unversioned
        return "absent"


def machine_lines() -> List[str]:
    from wsframe.protocol import backend as _backend

    kernels = "not built"
    try:
        from wsframe.protocol import kernels_c

        kernels = kernels_c.MASK_IMPL
    except ImportError:
        pass
    try:
        load = "%.2f %.2f %.2f" % os.getloadavg()
    except OSError:
        load = "?"
    peers = ", ".join(f"{m} {_version(m)}" for m in ("websockets", "aiohttp", "picows", "wsproto"))
    return [
        f"CPU: {cpu_model()} ({os.cpu_count()} logical CPUs; {cpu_flags()}); load average {load}",
        f"Python {platform.python_version()} ({platform.python_implementation()}) on {platform.platform()}",
        f"wsframe backends: {_backend.available()} (active {_backend.BACKEND}); "
        f"mask kernel: {kernels}; from {Path(_backend.__file__).parent}",
        f"peers: {peers}",
    ]


def pytest_report_header(config: pytest.Config) -> List[str]:
    return machine_lines()


# ---------------------------------------------------------------------------
# Targets (issue 2, "Benchmarks"): ratios of speeds measured in this run.
#
# ratio = speed(ours) / speed(reference) = time(reference) / time(ours), on the
# minimum time per operation (the least disturbed round on a shared machine).
# A target is met when ratio >= required.

SIZES = ("8 B", "125 B", "1 KiB", "64 KiB", "1 MiB", "16 MiB")
BIG = ("1 KiB", "64 KiB", "1 MiB", "16 MiB")

CY_MASK = "wsframe cython mask"
CY_INPLACE = "wsframe cython mask_inplace"
PY_MASK = "wsframe python mask"
WS_C = "websockets C apply_mask"
AIO_C = "aiohttp C mask (in place)"
COPY_NEW = "copy: bytes(bytearray)"
WS_PY = "websockets pure apply_mask"
WSPROTO_MASK = "wsproto XorMaskerSimple"

CY_READER = "wsframe cython FrameReader"
PY_READER = "wsframe python FrameReader"
AIO_READER = "aiohttp C WebSocketReader"
PICOWS_READER = "picows C WSProtocol"
WS_PARSER_PURE = "websockets Frame.parse (pure)"
WSPROTO_READER = "wsproto FrameProtocol"

PY_ENCODE = "wsframe python encode_frame"
WS_SERIALIZE = "websockets Frame.serialize"
WS_SERIALIZE_PURE = "websockets Frame.serialize (pure)"
WSPROTO_SEND = "wsproto send_data"

CY_UTF8 = "wsframe cython validate_utf8"
DECODE = "bytes.decode('utf-8')"

# (target, group, ours, references (best of), required)
Target = Tuple[str, str, str, Tuple[str, ...], float]


def _targets() -> List[Target]:
    t: List[Target] = []
    t.append(
        ("in-place unmask per call at 8 B no worse than aiohttp", "unmask 8 B x 1000 calls (C-driven loop)",
         CY_INPLACE, (AIO_C,), 1.0)
    )
    t.append(("in-place unmask per call at 8 B no worse than aiohttp", "unmask 8 B", CY_INPLACE, (AIO_C,), 1.0))
    for s in BIG:
        t.append(("in-place unmask >= aiohttp's compiled mask", f"unmask {s}", CY_INPLACE, (AIO_C,), 1.0))
    for s in BIG:
        t.append(("copying unmask >= websockets' C apply_mask", f"unmask {s}", CY_MASK, (WS_C,), 1.0))
    for s in ("64 KiB", "1 MiB", "16 MiB"):
        t.append(("copying unmask >= 0.8x a plain copy", f"unmask {s}", CY_MASK, (COPY_NEW,), 0.8))
    for s in ("16 B", "1 KiB"):
        g = f"parse 10000 x {s}"
        t.append(("compiled batch parse >= picows", g, CY_READER, (PICOWS_READER,), 1.0))
        t.append(("compiled batch parse >= aiohttp", g, CY_READER, (AIO_READER,), 1.0))
        t.append(("compiled batch parse >= 20x pure backend", g, CY_READER, (PY_READER,), 20.0))
    for s in ("1 KiB", "1 MiB"):
        for text in ("ascii", "cjk"):
            g = f"utf8 {s} {text}"
            t.append(("compiled UTF-8 validation >= bytes.decode", g, CY_UTF8, (DECODE,), 1.0))
    for s in SIZES:
        t.append(("pure mask >= best pure peer", f"unmask {s}", PY_MASK, (WS_PY, WSPROTO_MASK), 1.0))
    for s in ("16 B", "1 KiB"):
        t.append(
            ("pure batch parse >= best pure peer", f"parse 10000 x {s}", PY_READER, (WS_PARSER_PURE, WSPROTO_READER), 1.0)
        )
    for s in ("16 B", "64 KiB"):
        t.append(("pure encode >= best pure peer", f"encode {s} server", PY_ENCODE, (WS_SERIALIZE, WSPROTO_SEND), 1.0))
        t.append(
            ("pure encode >= best pure peer", f"encode {s} client", PY_ENCODE, (WS_SERIALIZE_PURE, WSPROTO_SEND), 1.0)
        )
    return t


# ---------------------------------------------------------------------------
# Summary


def _fmt_time(seconds: float) -> str:
    if seconds < 1e-6:
        return f"{seconds * 1e9:.1f} ns"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.2f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.3f} s"


def _fmt_rate(value: float, unit: str) -> str:
    if unit == "B":
        return f"{value / 1e9:.2f} GB/s"
    if value >= 1e6:
        return f"{value / 1e6:.2f} M{unit}/s"
    return f"{value / 1e3:.1f} k{unit}/s"


def _framing_results(config: pytest.Config) -> Dict[str, Dict[str, Any]]:
    """group -> impl -> {"min", "median", "rounds", "info"} for this run's framing benchmarks."""
    bs = getattr(config, "_benchmarksession", None)
    out: Dict[str, Dict[str, Any]] = {}
    if bs is None:
        return out
    for bench in bs.benchmarks:
        info = bench.extra_info or {}
        if info.get("suite") != "framing" or not bench.stats or not bench.stats.rounds:
            continue
        out.setdefault(bench.group, {})[info["impl"]] = {
            "min": bench.stats.min,
            "median": bench.stats.median,
            "rounds": bench.stats.rounds,
            "iterations": bench.iterations,
            "info": info,
        }
    return out


def _throughput(row: Dict[str, Any]) -> str:
    info = row["info"]
    parts = []
    if info.get("frames"):
        parts.append(_fmt_rate(info["frames"] / row["min"], "frames"))
    if info.get("bytes"):
        parts.append(_fmt_rate(info["bytes"] / row["min"], "B"))
    return ", ".join(parts)


def _check(results: Dict[str, Dict[str, Any]], target: Target) -> Optional[Tuple[str, str, float, float, str]]:
    name, group, ours, refs, required = target
    rows = results.get(group, {})
    if ours not in rows:
        return None
    present = [r for r in refs if r in rows]
    if not present:
        return None
    best = min(present, key=lambda r: rows[r]["min"])
    ratio = rows[best]["min"] / rows[ours]["min"]
    if ratio >= required:
        status = "met"
    else:
        status = f"NOT met, short by {(1 - ratio / required) * 100:.0f}%"
    return group, best, ratio, required, status


def _group_order(results: Dict[str, Dict[str, Any]]) -> Iterable[str]:
    def key(group: str) -> Tuple[int, int, str]:
        kinds = ("unmask", "parse", "encode", "utf8")
        kind = next((i for i, k in enumerate(kinds) if group.startswith(k)), len(kinds))
        first = next(iter(results[group].values()))["info"]
        return kind, first.get("order", 0), group

    return sorted(results, key=key)


def _markdown(results: Dict[str, Dict[str, Any]], checks: List[Tuple[Target, Any]]) -> str:
    lines = ["## Targets (issue 2), as ratios measured in this run", ""]
    lines.append("| target | case | ours | best reference | ratio | required | status |")
    lines.append("|---|---|---|---|---:|---:|---|")
    for target, res in checks:
        if res is None:
            continue
        group, best, ratio, required, status = res
        lines.append(f"| {target[0]} | {group} | {target[2]} | {best} | {ratio:.2f}x | {required:g}x | {status} |")
    lines.append("")
    lines.append("## All cases")
    lines.append("")
    lines.append(
        "Time per operation: min and median over the rounds; throughput from the min. "
        "`vs ours` = time(this row) / time(the compiled wsframe row of the case: `mask`, "
        "`FrameReader`, `encode_frame` or `validate_utf8`); above 1, that row is slower than ours."
    )
    for group in _group_order(results):
        rows = results[group]
        anchor = next((i for i in (CY_MASK, CY_READER, CY_UTF8, "wsframe cython encode_frame") if i in rows), None)
        lines += ["", f"### {group}", ""]
        lines.append("| implementation | min | median | throughput | vs ours | rounds x iterations |")
        lines.append("|---|---:|---:|---:|---:|---:|")
        for impl, row in sorted(rows.items(), key=lambda kv: kv[1]["min"]):
            vs = f"{row['min'] / rows[anchor]['min']:.2f}" if anchor else ""
            lines.append(
                f"| {impl} | {_fmt_time(row['min'])} | {_fmt_time(row['median'])} | {_throughput(row)} | {vs} "
                f"| {row['rounds']} x {row['iterations']} |"
            )
    return "\n".join(lines) + "\n"


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    results = _framing_results(config)
    if not results:
        return
    checks = [(t, _check(results, t)) for t in _targets()]
    tr = terminalreporter
    tr.section("wsframe framing: issue-2 targets (ratio = speed ours / speed reference, on min time)")
    for target, res in checks:
        if res is None:
            continue
        group, best, ratio, required, status = res
        tr.write_line(f"{group:<22} {target[0]:<56} vs {best:<30} {ratio:8.2f}x (need {required:g}x)  {status}")
    path = config.getoption("--framing-report")
    if path:
        header = ["## Machine and run", ""] + [f"- {line}" for line in machine_lines()]
        header.append(f"- command: `{' '.join(['python -m pytest'] + list(config.invocation_params.args))}`")
        header.append("")
        Path(path).write_text("\n".join(header) + "\n" + _markdown(results, checks), encoding="utf-8")
        tr.write_line(f"framing report written to {path}")

