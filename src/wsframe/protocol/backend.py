"""Choose the framing backend: compiled (Cython) when built, pure Python otherwise.

``WSFRAME_NO_EXTENSIONS=1`` in the environment at import forces pure Python.
Both backends expose the same names (see ``NAMES``); :func:`load` returns
either one explicitly, which is how the tests run everything against both.
"""

from __future__ import annotations

import importlib
import os
from types import SimpleNamespace
from typing import TYPE_CHECKING, List, Optional, Protocol, Type, cast

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, WriteableBuffer

    from . import frames, kernels_py

__all__ = ["BACKEND", "NO_EXTENSIONS", "NAMES", "Backend", "load", "available", "active"]

#: What each backend provides, under the same names with the same behaviour.
NAMES = (
    # framing (one source: frames.py, compiled as frames_c)
    "Frame", "Header", "FrameReader", "parse_header", "make_frame",
    "encode_frame", "encode_frame_into", "encode_header", "frame_size",
    # per-byte kernels (kernels_py.py and its compiled twin kernels_c)
    "mask", "mask_inplace", "Utf8Validator", "validate_utf8", "MASK_IMPL",
)

NO_EXTENSIONS = os.environ.get("WSFRAME_NO_EXTENSIONS", "").strip().lower() not in ("", "0", "no", "false")

_MODULES = {"cython": ("frames_c", "kernels_c"), "python": ("frames", "kernels_py")}


class Backend(Protocol):
    """A backend as :func:`load` returns it: the :data:`NAMES`, typed as the pure backend defines them
    (the compiled one has the same signatures; tests/test_backend.py checks this list against both)."""

    name: str
    MASK_IMPL: str
    Frame: Type[frames.Frame]
    Header: Type[frames.Header]
    FrameReader: Type[frames.FrameReader]
    Utf8Validator: Type[kernels_py.Utf8Validator]

    def parse_header(self, data: ReadableBuffer, offset: int = 0, max_size: int = -1) -> Optional[frames.Header]: ...

    def make_frame(self, opcode: int, payload: ReadableBuffer, fin: bool = True, rsv: int = 0) -> frames.Frame: ...

    def encode_frame(
        self, opcode: int, payload: ReadableBuffer, fin: bool = True, rsv: int = 0,
        mask_key: Optional[ReadableBuffer] = None,
    ) -> bytes: ...

    def encode_frame_into(
        self, buffer: WriteableBuffer, offset: int, opcode: int, payload: ReadableBuffer, fin: bool = True,
        rsv: int = 0, mask_key: Optional[ReadableBuffer] = None,
    ) -> int: ...

    def encode_header(self, opcode: int, length: int, fin: bool = True, rsv: int = 0) -> bytes: ...

    def frame_size(self, length: int, masked: bool = False) -> int: ...

    def mask(self, data: ReadableBuffer, key: ReadableBuffer, phase: int = 0) -> bytes: ...

    def mask_inplace(self, buffer: ReadableBuffer, key: ReadableBuffer, phase: int = 0) -> None: ...

    def validate_utf8(self, data: ReadableBuffer) -> bool: ...


def load(name: str) -> Backend:
    """Return the ``"cython"`` or ``"python"`` backend; ImportError if it is not built."""
    if name not in _MODULES:
        raise ValueError(f"unknown backend {name!r}")
    frames_name, kernels_name = _MODULES[name]
    framing = importlib.import_module(f".{frames_name}", __package__)
    kernels = importlib.import_module(f".{kernels_name}", __package__)
    ns = SimpleNamespace(name=name)
    for attr in NAMES:
        setattr(ns, attr, getattr(framing, attr, None) or getattr(kernels, attr))
    return cast(Backend, ns)


def available() -> List[str]:
    """The backends that can be loaded here, compiled first."""
    names = []
    for name in ("cython", "python"):
        try:
            load(name)
        except ImportError:
            continue
        names.append(name)
    return names


def _choose() -> Backend:
    if not NO_EXTENSIONS:
        try:
            return load("cython")
        except ImportError:
            pass
    return load("python")


active = _choose()
#: The backend in use: exactly ``"cython"`` or ``"python"``.
BACKEND: str = active.name
