"""A killed worker: its sessions get a clear "open a new session" error, or move (shared root)."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ha_load import result_text
from ha_topology import Topology
from mcp import Client
from worker_fixtures import start_worker

pytestmark = pytest.mark.slow


def start_topology(root: Path, shared: bool) -> Topology:
    """redis-server, 2 workers and 2 coordinators; with shared_workspaces the workers share one root."""
    topo = Topology(
        root,
        replicas=2,
        workers=2,
        shared_root=shared,
        with_nginx=False,
        coordinator_sections={"worker": {"shared_workspaces": shared}},
    )
    topo.start()
    return topo


@pytest.fixture(params=[False, True], ids=["separate-roots", "shared-root"])
def topology(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    """The topology with and without shared workspaces."""
    topo = start_topology(tmp_path_factory.mktemp("ha-workers"), bool(request.param))
    yield topo
    topo.close()


@pytest.fixture
def separate_topology(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    """The topology without shared workspaces."""
    topo = start_topology(tmp_path_factory.mktemp("ha-workers-separate"), False)
    yield topo
    topo.close()


async def open_sessions(client: Any, n: int) -> list[str]:
    ids = []
    for i in range(n):
        created = await client.call_tool("session.create", {})
        assert not created.is_error, result_text(created)
        sid = str(created.structured_content["session_id"])
        wrote = await client.call_tool("fs.write", {"session_id": sid, "path": "keep.txt", "content": f"file {i}"})
        assert not wrote.is_error, result_text(wrote)
        ids.append(sid)
    return ids


def pinned_worker(topology: Topology, sid: str) -> str:
    assert topology.redis is not None
    with topology.redis.client() as raw:
        return raw.hget(f"ha:session:{sid}", "worker_url").decode()


async def test_killed_worker_sessions_get_a_clear_error_or_move_with_their_files(topology: Topology) -> None:
    """kill -9 a worker: without shared workspaces its sessions fail with a message telling the model to
    open a new session; with them, they are re-pinned to the other worker and keep their files."""
    shared = topology.coordinator_sections["worker"]["shared_workspaces"]
    victim, survivor = topology.worker_procs
    async with Client(f"{topology.coordinators[0].url}/mcp", mode="2026-07-28", read_timeout_seconds=30) as client:
        await client.list_tools()
        ids = await open_sessions(client, 4)
        on_victim = [sid for sid in ids if pinned_worker(topology, sid) == victim.url]
        on_survivor = [sid for sid in ids if pinned_worker(topology, sid) == survivor.url]
        assert on_victim, "least-loaded placement should use both workers"
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait(timeout=10)

    # Ask through every replica: what they know comes from Redis, not from the first one's memory.
    for coordinator in topology.coordinators:
        async with Client(f"{coordinator.url}/mcp", mode="2026-07-28", read_timeout_seconds=30) as client:
            await client.list_tools()
            for i, sid in enumerate(ids):
                if sid in on_survivor or shared:
                    read = await client.call_tool("fs.read", {"session_id": sid, "path": "keep.txt"})
                    assert not read.is_error, result_text(read)
                    assert read.structured_content["content"] == f"file {i}"
                else:
                    text = await error_after_retries(client, sid)
                    assert "session.create" in text, text
    if shared:
        assert {pinned_worker(topology, sid) for sid in ids} == {survivor.url}


async def error_after_retries(client: Any, sid: str, window: float = 8.0) -> str:
    """The error a model ends up with when it retries a call on a lost session for `window` seconds.

    A first "try again shortly" is fair (the worker may be restarting); what matters is that the model
    is told to open a new session before long instead of being told to retry forever.
    """
    text = ""
    deadline = time.monotonic() + window
    while time.monotonic() < deadline:
        read = await client.call_tool("fs.read", {"session_id": sid, "path": "keep.txt"})
        assert read.is_error, "a session whose worker died cannot read its file"
        text = result_text(read)
        if "session.create" in text:
            return text
        await asyncio.sleep(0.5)  # the model's retry pace
    return text


async def test_worker_restarted_empty_drops_its_sessions_with_an_open_a_new_session_error(
    separate_topology: Topology, tmp_path: Path
) -> None:
    """A worker replaced by an empty one at the same address (separate workspaces) answers session_not_found:
    the model is told its workspace was lost and to call session.create, and the session is gone after."""
    topology = separate_topology
    victim = topology.worker_procs[0]
    async with Client(f"{topology.coordinators[0].url}/mcp", mode="2026-07-28", read_timeout_seconds=30) as client:
        await client.list_tools()
        ids = await open_sessions(client, 4)
        on_victim = [sid for sid in ids if pinned_worker(topology, sid) == victim.url]
        assert on_victim, "least-loaded placement should use both workers"
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait(timeout=10)
        replacement = start_worker(tmp_path, port=victim.port)  # same URL, new empty workspace root
        topology.adopt(replacement)
        first = await client.call_tool("fs.read", {"session_id": on_victim[0], "path": "keep.txt"})
        assert first.is_error
        assert "was lost" in result_text(first), result_text(first)
        assert "session.create" in result_text(first)
        again = await client.call_tool("fs.read", {"session_id": on_victim[0], "path": "keep.txt"})
        assert "not found or expired" in result_text(again), result_text(again)
        fresh = await client.call_tool("session.create", {})
        assert not fresh.is_error, result_text(fresh)
