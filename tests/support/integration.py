"""Gate integration tests on real local servers.

On a developer's laptop a missing server skips the test with the reason; CI
sets QUALIMON_REQUIRE_INTEGRATION=1, which turns the same skip into a failure
so a missing install step cannot hide behind a green run.
"""

from __future__ import annotations

import os
import shutil
import socket

import pytest


def integration_required() -> bool:
    return os.environ.get("QUALIMON_REQUIRE_INTEGRATION") == "1"


def need(available: bool, what: str) -> None:
    """Skip (or fail, in CI) unless `available`; `what` says what is missing and how to get it."""
    if available:
        return
    if integration_required():
        pytest.fail(f"integration test needs {what} (QUALIMON_REQUIRE_INTEGRATION=1 forbids skipping)")
    pytest.skip(f"needs {what}")


def need_binary(name: str, package: str) -> str:
    path = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)), None
    )
    need(path is not None, f"the {name!r} program (Debian package {package})")
    assert path is not None
    return path


def tcp_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]
