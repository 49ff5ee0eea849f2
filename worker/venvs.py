"""The per-session virtual environment: created lazily, offline, without pip inside it."""

from __future__ import annotations

import asyncio
import os
import stat
import venv
from pathlib import Path


def venv_python(path: Path) -> Path:
    """The interpreter of the venv at `path`."""
    return path / "bin" / "python"


def _create(path: Path) -> Path:
    python = venv_python(path)
    try:
        st = os.lstat(python)
    except FileNotFoundError:
        st = None
    if st is None or not stat.S_ISLNK(st.st_mode):
        # No pip inside: pkg.install runs the worker's own pip with --python, so no network is needed.
        venv.EnvBuilder(with_pip=False, symlinks=True, clear=st is not None).create(path)
    return python


async def ensure_venv(path: Path) -> Path:
    """Create the venv at `path` unless it exists; returns its interpreter (runs in a thread)."""
    return await asyncio.to_thread(_create, path)
