"""Choose the framing backend: compiled (Cython) when built, pure Python otherwise.

``WSFRAME_NO_EXTENSIONS=1`` in the environment at import forces pure Python.
Both backends expose the same names (see ``NAMES``); :func:`load` returns
either one explicitly, which is how the tests run everything against both.
"""

from __future__ import annotations

import os
from types import SimpleNamespace

__all__ = ["BACKEND", "NO_EXTENSIONS", "NAMES", "load", "available", "active"]

#: What each backend provides, under the same names with the same behaviour.
NAMES = (
    # framing (one source: _frames.py, compiled as _frames_c)
    "Frame", "Header", "FrameReader", "parse_header", "make_frame",
    "encode_frame", "encode_frame_into", "frame_size",
    # per-byte kernels (_kernels_py.py and the compiled _kernels)
    "mask", "mask_inplace", "Utf8Validator", "validate_utf8", "MASK_IMPL",
)

NO_EXTENSIONS = os.environ.get("WSFRAME_NO_EXTENSIONS", "").strip().lower() not in ("", "0", "no", "false")


def load(name: str) -> SimpleNamespace:
    """Return the ``"cython"`` or ``"python"`` backend; ImportError if it is not built."""
    if name == "cython":
        from . import frames_c as frames, kernels_c as kernels
    elif name == "python":
        from . import frames as frames, kernels_py as kernels
    else:
        raise ValueError(f"unknown backend {name!r}")
    ns = SimpleNamespace(name=name)
    for attr in NAMES:
        setattr(ns, attr, getattr(frames, attr, None) or getattr(kernels, attr))
    return ns


def available() -> list[str]:
    """The backends that can be loaded here, compiled first."""
    names = []
    for name in ("cython", "python"):
        try:
            load(name)
        except ImportError:
            continue
        names.append(name)
    return names


def _choose() -> SimpleNamespace:
    if not NO_EXTENSIONS:
        try:
            return load("cython")
        except ImportError:
            pass
    return load("python")


active = _choose()
#: The backend in use: exactly ``"cython"`` or ``"python"``.
BACKEND: str = active.name
