"""Helpers for the HA tests' real server processes: free ports, bounded readiness polls, missing binaries."""

from __future__ import annotations

import os
import shutil
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

READY_TIMEOUT = 10.0


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago (for servers that cannot bind port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ProcessDied(RuntimeError):
    """A server process exited while we waited for it to become ready."""


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = READY_TIMEOUT) -> None:
    """Poll `predicate()` until it is true; fail naming `what` after `timeout` seconds.

    Exceptions other than ProcessDied count as "not yet" (a refused connect, a 503).
    """
    deadline = time.monotonic() + timeout
    delay = 0.005
    last: Exception | None = None
    while True:
        try:
            if predicate():
                return
        except ProcessDied:
            raise
        except Exception as exc:
            last = exc
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout:g}s (last error: {last!r})")
        time.sleep(delay)  # polling interval, not a wait for an outcome
        delay = min(delay * 2, 0.05)


def require_binaries(*names: str) -> None:
    """Skip with the install command when a system binary is missing."""
    missing = [n for n in names if not (shutil.which(n) or Path(f"/usr/sbin/{n}").exists())]
    if missing:
        pytest.skip(
            f"{', '.join(missing)} not installed; run `bash ci/install-deps.sh` "
            f"(or apt-get install -y {' '.join(missing)})"
        )


def env_without(*names: str) -> dict[str, str]:
    """This process's environment minus `names`, for a child that must not inherit them."""
    return {k: v for k, v in os.environ.items() if k not in names}
