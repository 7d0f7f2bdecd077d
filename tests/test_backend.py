"""Which backend is active, how to force the pure one, and that both expose the same names."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

import wsframe
from wsframe.protocol import backend as _backend

BACKENDS = _backend.available()


def test_compiled_backend_loaded_when_expected() -> None:
    """CI sets WSFRAME_EXPECT_BACKEND=cython: fail loudly if the build silently went pure."""
    expected = os.environ.get("WSFRAME_EXPECT_BACKEND")
    if not expected:
        pytest.skip("WSFRAME_EXPECT_BACKEND not set")
    if expected == "cython":
        assert "cython" in BACKENDS, "the compiled backend was expected but is not importable"
    forced = _backend.NO_EXTENSIONS
    assert _backend.BACKEND == ("python" if forced else expected)


def test_backend_is_cython_or_python() -> None:
    assert wsframe.BACKEND in ("cython", "python")
    assert wsframe.BACKEND == _backend.BACKEND == _backend.active.name
    # Without the override, the compiled backend wins whenever it is built.
    if not _backend.NO_EXTENSIONS:
        assert wsframe.BACKEND == BACKENDS[0]


def test_python_backend_always_available() -> None:
    assert "python" in BACKENDS
    assert set(BACKENDS) <= {"cython", "python"}


def test_unknown_backend_name_rejected() -> None:
    with pytest.raises(ValueError):
        _backend.load("rust")


def _subprocess_backend(**env_overrides: str) -> str:
    env = dict(os.environ)
    env.pop("WSFRAME_NO_EXTENSIONS", None)
    env.update(env_overrides)
    out = subprocess.run(
        [sys.executable, "-c", "import wsframe; print(wsframe.BACKEND)"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return out.stdout.strip()


def test_no_extensions_env_forces_python() -> None:
    assert _subprocess_backend(WSFRAME_NO_EXTENSIONS="1") == "python"


def test_default_subprocess_picks_compiled_when_built() -> None:
    assert _subprocess_backend() == BACKENDS[0]


@pytest.mark.parametrize("value", ["0", "", "no", "false"])
def test_no_extensions_falsy_values_do_not_force_python(value: str) -> None:
    assert _subprocess_backend(WSFRAME_NO_EXTENSIONS=value) == BACKENDS[0]


def test_backend_exposes_every_name(backend) -> None:
    for name in _backend.NAMES:
        assert getattr(backend, name, None) is not None, f"{backend.name} lacks {name}"
    assert backend.name in ("cython", "python")


def test_backends_come_from_the_right_modules(backend) -> None:
    if backend.name == "cython":
        assert backend.FrameReader.__module__ == "wsframe.protocol.frames_c"
        assert backend.MASK_IMPL in ("avx2", "sse2", "neon", "scalar")
    else:
        assert backend.FrameReader.__module__ == "wsframe.protocol.frames"
        assert backend.MASK_IMPL == "python"


def test_package_exports_the_active_backend() -> None:
    active = _backend.active
    for name in _backend.NAMES:
        if hasattr(wsframe, name):
            assert getattr(wsframe, name) is getattr(active, name)
    for name in ("FrameReader", "parse_header", "encode_frame", "mask", "Utf8Validator", "validate_utf8"):
        assert getattr(wsframe, name) is getattr(active, name)


def test_constants_pxd_matches_constants_py() -> None:
    """The compiled backend cimports constants.pxd: every value there is the one constants.py says."""
    import re

    from wsframe.protocol import constants

    pxd = pathlib.Path(constants.__file__).with_suffix(".pxd")
    if not pxd.exists():
        pytest.skip("constants.pxd is not installed (a pure wheel)")
    declared = dict(re.findall(r"^\s+([A-Z0-9_]+) = (0x[0-9A-Fa-f]+|\d+)\s*$", pxd.read_text(), re.M))
    assert declared, "no constants found in constants.pxd"
    for name, value in declared.items():
        assert getattr(constants, name) == int(value, 0), name


def _parameters(fn) -> list:
    import inspect

    return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values() if p.name != "self"]


def test_backend_protocol_matches_both_backends(backend) -> None:
    """backend.Backend types what load() returns: its signatures are those of each backend's functions."""
    import inspect

    methods = [name for name, value in vars(_backend.Backend).items()
               if inspect.isfunction(value) and not name.startswith("_")]
    assert set(methods) | {"Frame", "Header", "FrameReader", "Utf8Validator", "MASK_IMPL"} == set(_backend.NAMES)
    for name in methods:
        assert _parameters(getattr(_backend.Backend, name)) == _parameters(getattr(backend, name)), name
