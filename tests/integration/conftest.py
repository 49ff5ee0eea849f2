"""Integration fixtures: real coordinator processes (stopped at teardown) and a client for a module's worker."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from coordinator_fixtures import CoordinatorProcess, start_coordinator
from worker_fixtures import WorkerClient, WorkerProcess


@pytest.fixture
def coordinator_factory(tmp_path: Path) -> Iterator[Callable[..., CoordinatorProcess]]:
    """`coordinator_factory(config=..., env=..., ...)` starts a coordinator; all are stopped at teardown."""
    started: list[CoordinatorProcess] = []

    def start(**kwargs: Any) -> CoordinatorProcess:
        kwargs.setdefault("name", f"coordinator{len(started)}")
        proc = start_coordinator(tmp_path, **kwargs)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        try:
            proc.stop(timeout=15)
        except Exception:
            proc.kill()


@pytest.fixture
def coordinator(coordinator_factory: Callable[..., CoordinatorProcess]) -> CoordinatorProcess:
    """One coordinator with the embedded worker and default test config."""
    return coordinator_factory()


@pytest.fixture
async def api(worker: WorkerProcess) -> AsyncIterator[WorkerClient]:
    """A client for the `worker` fixture of the requesting test module."""
    async with aiohttp.ClientSession() as http:
        yield WorkerClient(http, worker.url)
