"""Build script: the compiled backend is optional unless WSFRAME_REQUIRE_EXTENSIONS is set.

WSFRAME_NO_EXTENSIONS=1       build nothing: a pure-Python install.
WSFRAME_REQUIRE_EXTENSIONS=1  a failed build is fatal (CI, release wheels).
otherwise                     try to build; on failure warn loudly and install pure Python.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "no", "false")


NO_EXTENSIONS = _flag("WSFRAME_NO_EXTENSIONS") or platform.python_implementation() != "CPython"
REQUIRE_EXTENSIONS = _flag("WSFRAME_REQUIRE_EXTENSIONS")

if NO_EXTENSIONS and REQUIRE_EXTENSIONS:
    sys.exit("wsframe: WSFRAME_NO_EXTENSIONS and WSFRAME_REQUIRE_EXTENSIONS contradict each other")


def _compile_args() -> list[str]:
    if sys.platform == "win32":
        return ["/O2"]
    if "CFLAGS" in os.environ:  # a release build sets its own optimisation flags
        return ["-fno-strict-aliasing"]
    # Portable code generation: SIMD beyond the architecture baseline is chosen at run time in csrc/.
    return ["-O3", "-g0", "-fno-strict-aliasing"]


def _extensions() -> list[Extension]:
    common = {"include_dirs": ["csrc"], "extra_compile_args": _compile_args()}
    src = "src/wsframe/protocol"
    kernels = Extension(
        "wsframe.protocol.kernels_c",
        [f"{src}/kernels_c.pyx", "csrc/wsf_mask.c", "csrc/wsf_utf8.c"],
        depends=["csrc/wsf_mask.h", "csrc/wsf_utf8.h", f"{src}/kernels_c.pxd", f"{src}/constants.pxd"],
        **common,
    )
    # One typed source, two backends: frames.py is the pure backend as it stands and,
    # compiled under the name frames_c with the types in frames_c.pxd, the compiled one.
    frames = Extension(
        "wsframe.protocol.frames_c",
        [f"{src}/frames.py"],
        depends=[f"{src}/frames_c.pxd", f"{src}/kernels_c.pxd", f"{src}/constants.pxd"],
        **common,
    )
    return [kernels, frames]


def _pxd_changed() -> bool:
    """Cython cannot tell that frames.c depends on frames_c.pxd (another module name)."""
    here = Path(__file__).resolve().parent / "src" / "wsframe" / "protocol"
    generated = here / "frames.c"
    if not generated.exists():
        return False
    return max(p.stat().st_mtime for p in here.glob("*.pxd")) > generated.stat().st_mtime


def _cythonize(extensions: list[Extension]) -> list[Extension]:
    from Cython.Build import cythonize

    return cythonize(
        extensions,
        force=_pxd_changed(),
        include_path=["src"],
        compiler_directives={
            "language_level": 3,
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
            "freethreading_compatible": True,
            # frames.py keeps Python annotations for readers and type checkers;
            # its C types come from frames_c.pxd alone.
            "annotation_typing": False,
        },
    )


def _warn(why: str) -> None:
    bar = "*" * 72
    print(
        f"\n{bar}\nwsframe: {why}; installing the pure-Python backend only.\n"
        "It works everywhere but framing is much slower. Set WSFRAME_REQUIRE_EXTENSIONS=1\n"
        f"to make this an error.\n{bar}\n",
        file=sys.stderr,
    )


class optional_build_ext(build_ext):
    """Cythonize and build the extensions, falling back to pure Python unless they are required.

    Cython runs here, not at import of this file, so an sdist or metadata build
    never needs it and a Cython failure takes the same fallback as a compiler failure.
    """

    def finalize_options(self) -> None:
        modules = self.distribution.ext_modules
        if modules:  # before the base class, which prepares the list it finds
            try:
                modules[:] = _cythonize(modules)
            except Exception as exc:  # noqa: BLE001 - Cython missing or failing means "pure"
                if REQUIRE_EXTENSIONS:
                    raise
                _warn(f"Cython could not generate the C sources ({exc!r})")
                modules[:] = []
        super().finalize_options()

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - any compiler failure means "pure"
            if REQUIRE_EXTENSIONS:
                raise
            _warn(f"the compiled backend failed to build ({exc})")

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:  # noqa: BLE001
            if REQUIRE_EXTENSIONS:
                raise
            _warn(f"{ext.name} failed to build ({exc})")


setup(
    ext_modules=[] if NO_EXTENSIONS else _extensions(),
    cmdclass={"build_ext": optional_build_ext},
)
