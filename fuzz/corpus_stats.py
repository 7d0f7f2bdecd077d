"""What a corpus reaches: replay it through a target and count the outcomes (run under fuzz/run.sh's env).

    bash fuzz/run.sh --stats TARGET DIR...

(handshake: each input counts twice, the whole and the chunked run).

frame_reader: frame opcodes delivered, reader errors (code and reason, numbers
stripped); handshake, server_conn, client_conn: event kinds, refusal reasons,
Closed codes. Findings raised while replaying are counted, not raised.
"""

from __future__ import annotations

import collections
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "targets"))
sys.argv = sys.argv[:1] + sys.argv[1:]

import _common  # noqa: E402

COUNTS: collections.Counter = collections.Counter()


def squash(text: str) -> str:
    return re.sub(r"\d+", "N", text)


def main() -> None:
    target, dirs = sys.argv[1], sys.argv[2:]
    module = __import__(target)
    if target == "frame_reader":
        real = module.run_reader

        def spy(backend, opts, pieces, kind):
            out = real(backend, opts, pieces, kind)
            if out is not None and backend.name == "python":
                frames, err, _ = out
                for f in frames:
                    COUNTS[f"frame opcode {f[0]:#x}{'' if f[1] else ' (not fin)'}"] += 1
                COUNTS[f"error {err[0]} {squash(err[1])}" if err else "no error"] += 1
            return out

        module.run_reader = spy
    else:
        import _conn

        real_finish = _conn.Run.finish

        def spy_finish(self):
            if self.name == "python":
                for ev in self.events:
                    label = ev[0]
                    if ev[0] in ("Rejected", "Closed", "CloseReceived"):
                        label += f" {ev[1]} {squash(str(ev[2]))[:50]}"
                    COUNTS[f"event {label}"] += 1
            return real_finish(self)

        _conn.Run.finish = spy_finish
        if target == "handshake":
            real_drive = module.drive

            def spy_drive(conn, pieces, eof, on_request):
                out = real_drive(conn, pieces, eof, on_request)
                if getattr(getattr(conn, "_backend", None), "name", "python") != "python":
                    return out  # count the pure backend's runs only (whole and chunked)
                for r in out[0]:
                    if r[0] == "event":
                        ev = r[1]
                        label = ev[0] + (f" {ev[1]} {ev[2]}" if ev[0] == "Rejected" else "")
                        COUNTS[f"event {label}"] += 1
                return out

            module.drive = spy_drive
    inputs = 0
    for d in dirs:
        for name in sorted(os.listdir(d)):
            with open(os.path.join(d, name), "rb") as f:
                data = f.read()
            inputs += 1
            try:
                module.TestOneInput(data)
            except _common.Finding as exc:
                COUNTS[f"FINDING {str(exc).split(']')[0]}]"] += 1
    print(f"{target}: {inputs} inputs")
    for label, n in sorted(COUNTS.items()):
        print(f"  {n:7d}  {label}")


if __name__ == "__main__":
    main()
