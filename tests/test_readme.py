"""The README's examples run as written, on both backends."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def _blocks() -> list[str]:
    if not README.exists():  # tests run from an installed wheel, outside the tree
        pytest.skip("README.md not beside the tests")
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def _run(code: str, monkeypatch: pytest.MonkeyPatch, backend) -> dict:
    # The examples use the package's top-level names: point them at this backend.
    import wsframe
    from wsframe.protocol import backend as _backend

    monkeypatch.setattr(_backend, "active", backend)  # connections built without backend= use it
    for name in ("encode_frame", "FrameReader", "mask", "validate_utf8"):
        monkeypatch.setattr(wsframe, name, getattr(backend, name))
    namespace: dict = {}
    exec(compile(code, str(README), "exec"), namespace)
    return namespace


def test_every_example_runs(backend, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = _blocks()
    assert len(blocks) >= 3
    for code in blocks:
        _run(code, monkeypatch, backend)


def test_bring_your_own_socket_client_against_websockets(backend, monkeypatch: pytest.MonkeyPatch) -> None:
    websockets_sync = pytest.importorskip("websockets.sync.server")
    code = next(b for b in _blocks() if "def echo_once" in b)
    echo_once = _run(code, monkeypatch, backend)["echo_once"]

    def handler(ws) -> None:
        for message in ws:
            ws.send(message[::-1])

    with websockets_sync.serve(handler, "127.0.0.1", 0) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            port = server.socket.getsockname()[1]
            assert echo_once("127.0.0.1", port, "héllo wsframe") == "emarfsw olléh"
        finally:
            server.shutdown()
            thread.join(10)


def test_every_example_passes_mypy_strict(tmp_path: Path) -> None:
    """``py.typed`` is only honest if code written as the README shows type-checks under --strict."""
    api = pytest.importorskip("mypy.api")
    blocks = _blocks()
    for i, code in enumerate(blocks):
        (tmp_path / f"readme_example_{i}.py").write_text(code, encoding="utf-8")
    out, err, status = api.run(["--strict", "--no-incremental", "--cache-dir", str(tmp_path / "cache"),
                                *sorted(str(p) for p in tmp_path.glob("readme_example_*.py"))])
    assert status == 0, out + err
