"""Expiry across three replicas on one Redis: each idle session's workspace is deleted exactly once."""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Iterator

import pytest
from ha_load import result_text
from ha_topology import Topology
from mcp import Client

pytestmark = pytest.mark.slow

SESSIONS = 24


@pytest.fixture
def topology(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    """redis-server, 2 workers and 3 coordinators expiring sessions idle for 3s, checking every 200ms."""
    topo = Topology(
        tmp_path_factory.mktemp("ha-expiry"),
        replicas=3,
        workers=2,
        with_nginx=False,
        coordinator_sections={"session": {"max_age": "3s", "cleanup_interval": "200ms"}},
    )
    # The session section is merged key by key, so the Redis settings survive the override.
    topo.start()
    yield topo
    topo.close()


async def test_each_expired_session_is_deleted_exactly_once_across_three_replicas(topology: Topology) -> None:
    """Sessions opened through all three replicas expire once each: one claim, one workspace deletion."""
    ids: list[str] = []
    dirs = []
    async with contextlib.AsyncExitStack() as stack:
        clients = []
        for coordinator in topology.coordinators:
            client = await stack.enter_async_context(
                Client(f"{coordinator.url}/mcp", mode="2026-07-28", read_timeout_seconds=30)
            )
            await client.list_tools()
            clients.append(client)
        for i in range(SESSIONS):
            client = clients[i % 3]
            created = await client.call_tool("session.create", {})
            assert not created.is_error, result_text(created)
            sid = str(created.structured_content["session_id"])
            wrote = await client.call_tool("fs.write", {"session_id": sid, "path": "a.txt", "content": "x"})
            assert not wrote.is_error, result_text(wrote)
            ids.append(sid)
            # Just written, so the workspace exists now (it may expire before the loop ends: that is fine).
            dirs += [w.session_dir(sid) for w in topology.worker_procs if w.session_dir(sid).exists()]
    assert len(dirs) == SESSIONS

    async with asyncio.timeout(20):
        while any(d.exists() for d in dirs) or len(topology.expiry_logs()) < SESSIONS:
            await asyncio.sleep(0.1)  # polling interval

    claims = collections.Counter(sid for sid in topology.expiry_logs() if sid in ids)
    assert set(claims) == set(ids)
    assert [sid for sid, n in claims.items() if n != 1] == []
    # Every DELETE request the workers received (their request log), not just the ones that found a directory.
    deletions = collections.Counter(
        rec.get("session_id")
        for w in topology.worker_procs
        for rec in w.logs()
        if rec.get("msg") == "request" and rec.get("method") == "DELETE" and rec.get("session_id") in ids
    )
    assert set(deletions) == set(ids)
    assert [sid for sid, n in deletions.items() if n != 1] == []
    assert topology.redis is not None
    with topology.redis.client() as raw:
        assert raw.zcard("ha:expiry") == 0
