"""Every behaviour is tested against both backends: the `backend` fixture is the switch."""

from __future__ import annotations

import importlib.util
import shutil
import ssl
import subprocess
from pathlib import Path
from typing import Any, Tuple

import pytest

from wsframe.protocol import backend as _backend
from wsframe.protocol import deflate as _deflate

BACKENDS = _backend.available()
#: The zlibs permessage-deflate can run on here: the standard library's, and zlib-ng's where installed.
ZLIBS = ["zlib"] + (["zlib-ng"] if importlib.util.find_spec("zlib_ng") else [])


def pytest_report_header(config: pytest.Config) -> str:
    return (f"wsframe backends: available={BACKENDS} active={_backend.BACKEND}; "
            f"zlib: available={ZLIBS} active={_deflate.ZLIB}")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest):
    """The backend namespace (``_backend.load(name)``): same names in both."""
    return _backend.load(request.param)


@pytest.fixture(params=ZLIBS)
def zlib_impl(request: pytest.FixtureRequest):
    """permessage-deflate on each zlib in turn (in this process), then back to the one chosen at import."""
    chosen = _deflate.ZLIB
    _deflate._use_zlib(request.param)
    yield request.param
    _deflate._use_zlib(chosen)


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: Any) -> Tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1, and its key (made with the openssl command)."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True, timeout=30,
    )
    return cert, key


@pytest.fixture(scope="session")
def tls_contexts(certificate: Tuple[Path, Path]) -> Tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context, client context trusting the test certificate)."""
    cert, key = certificate
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    client = ssl.create_default_context(cafile=str(cert))
    return server, client
