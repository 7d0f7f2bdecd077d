"""Every behaviour is tested against both backends: the `backend` fixture is the switch."""

from __future__ import annotations

import pytest

from wsframe.protocol import backend as _backend

BACKENDS = _backend.available()


def pytest_report_header(config: pytest.Config) -> str:
    return f"wsframe backends: available={BACKENDS} active={_backend.BACKEND}"


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest):
    """The backend namespace (``_backend.load(name)``): same names in both."""
    return _backend.load(request.param)

