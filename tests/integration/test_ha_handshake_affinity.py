"""Handshake-era clients (initialize + Mcp-Session-Id) behind 3 replicas and nginx round-robin.

With the Redis session store any replica serves any Mcp-Session-Id: the session's record lives in
Redis, its implicit workspace session too, and a DELETE reaches every replica. With the memory store a
session lives in one process, so it still needs affinity (ip_hash here, `sessionAffinity: ClientIP`
in the chart).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
from ha_load import result_text
from ha_topology import Coordinator, Nginx, Topology, coordinator_config
from mcp import Client

pytestmark = pytest.mark.slow

HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


@pytest.fixture(scope="module")
def topology(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    """3 coordinators on Redis behind nginx round-robin, plus nginx with ip_hash affinity."""
    root = tmp_path_factory.mktemp("ha-affinity")
    topo = Topology(root, replicas=3, workers=1)
    topo.start()
    topo.add_front("sticky", balance="ip_hash")
    yield topo
    topo.close()


@pytest.fixture(scope="module")
def memory_front(topology: Topology) -> Iterator[Nginx]:
    """2 more coordinators on the memory store (same worker), behind their own nginx round-robin."""
    assert topology.redis is not None
    worker_urls = [w.url for w in topology.worker_procs]
    config = coordinator_config(topology.redis, worker_urls, "mem:", session={"store": "memory"})
    replicas = [Coordinator(topology.root / f"memory-{i}", config) for i in range(2)]
    try:
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda c: c.start(), replicas))
        front = topology.add_front("memory", upstreams=[c.upstream for c in replicas])
        yield front
    finally:
        for c in replicas:
            c.ensure_stopped()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
        yield session


async def handshake_calls(url: str, calls: int) -> list[str]:
    async with Client(f"{url}/mcp", mode="legacy", read_timeout_seconds=10) as client:
        return [result_text(await client.call_tool("echo", {"text": f"call {i}"})) for i in range(calls)]


async def raw_initialize(http: aiohttp.ClientSession, url: str) -> str:
    """initialize + notifications/initialized with plain HTTP; the Mcp-Session-Id."""
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}},
    }
    async with http.post(f"{url}/mcp", json=body, headers=HEADERS) as resp:
        assert resp.status == 200, await resp.text()
        session_id = resp.headers["Mcp-Session-Id"]
    note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    headers = {**HEADERS, "Mcp-Session-Id": session_id, "MCP-Protocol-Version": "2025-06-18"}
    async with http.post(f"{url}/mcp", json=note, headers=headers) as resp:
        assert resp.status == 202, await resp.text()
    return session_id


async def list_tools(http: aiohttp.ClientSession, url: str, session_id: str) -> tuple[int, dict[str, Any]]:
    """POST tools/list with the session; (HTTP status, JSON body)."""
    headers = {**HEADERS, "Mcp-Session-Id": session_id, "MCP-Protocol-Version": "2025-06-18"}
    body = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
    async with http.post(f"{url}/mcp", json=body, headers=headers) as resp:
        return resp.status, await resp.json(content_type=None)


def mcp_upstreams(front: Nginx, since: int) -> set[str]:
    """The replicas nginx sent /mcp requests to, from access-log line `since` on."""
    return {
        line.split("upstream=")[1].split()[0]
        for line in front.access_log()[since:]
        if '"POST /mcp' in line and "upstream=" in line
    }


async def test_handshake_era_client_works_behind_client_ip_affinity(topology: Topology) -> None:
    """With ip_hash (like sessionAffinity: ClientIP) a handshake-era session stays on its replica."""
    sticky = topology.extra_fronts["sticky"]
    texts = await handshake_calls(sticky.url, 6)
    assert all(f"call {i}" in text for i, text in enumerate(texts))


async def test_memory_store_replicas_behind_round_robin_lose_the_session(memory_front: Nginx) -> None:
    """The memory store shares nothing: the second request reaches a replica that never saw the initialize."""
    with pytest.raises(BaseException) as info:  # the SDK raises an ExceptionGroup from its task group
        await handshake_calls(memory_front.url, 6)
    assert "unknown or expired session" in repr(info.value), repr(info.value)


async def test_sdk_handshake_client_hops_replicas_in_one_workspace_with_the_redis_store(topology: Topology) -> None:
    """The SDK client in handshake mode, round-robin over 3 replicas: initialize, tools/list, and 40 calls
    (fs.write then fs.read of the same file, each landing on another replica) all succeed, in one
    implicit workspace session whose files every replica sees."""
    assert topology.nginx is not None
    since = len(topology.nginx.access_log())
    failures: list[str] = []
    async with Client(f"{topology.url}/mcp", mode="legacy", read_timeout_seconds=15) as client:
        assert client.session.protocol_version == "2025-11-25"
        tools = await client.list_tools()
        assert {"fs.write", "fs.read", "echo"} <= {t.name for t in tools.tools}
        for k in range(20):
            path, content = f"hop{k}.txt", f"written on hop {k}"
            wrote = await client.call_tool("fs.write", {"path": path, "content": content})
            if wrote.is_error:
                failures.append(f"fs.write {k}: {result_text(wrote)}")
                continue
            read = await client.call_tool("fs.read", {"path": path})
            if read.is_error or (read.structured_content or {}).get("content") != content:
                failures.append(f"fs.read {k}: {result_text(read)}")
        listed = await client.call_tool("fs.list", {})
        assert not listed.is_error, result_text(listed)
        names = result_text(listed) + str(listed.structured_content)
        missing = [k for k in range(20) if f"hop{k}.txt" not in names]
    assert failures == []
    assert missing == [], f"files not in the one implicit workspace: {missing}"
    assert mcp_upstreams(topology.nginx, since) == {c.upstream for c in topology.coordinators}


async def call_tool(
    http: aiohttp.ClientSession, url: str, session_id: str, name: str, arguments: dict[str, Any], request_id: int = 3
) -> dict[str, Any]:
    """A handshake-era tools/call answered as JSON; the JSON-RPC result."""
    headers = {**HEADERS, "Accept": "application/json", "Mcp-Session-Id": session_id}
    params = {"name": name, "arguments": arguments}
    body = {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}
    async with http.post(f"{url}/mcp", json=body, headers=headers) as resp:
        answer = await resp.json()
        assert resp.status == 200 and "result" in answer, answer
        result: dict[str, Any] = answer["result"]
        return result


async def test_concurrent_first_calls_on_every_replica_share_one_implicit_workspace(
    topology: Topology, http: aiohttp.ClientSession
) -> None:
    """A client's first tool calls racing on all 3 replicas open one implicit workspace session, not three."""
    session_id = await raw_initialize(http, topology.coordinators[0].url)
    names = [f"race{n}.txt" for n in range(6)]
    replicas = topology.coordinators * 2  # two racing calls per replica
    writes = [
        call_tool(http, c.url, session_id, "fs.write", {"path": name, "content": "x"}, request_id=10 + n)
        for n, (name, c) in enumerate(zip(names, replicas, strict=True))
    ]
    results = await asyncio.gather(*writes)
    assert not any(r["isError"] for r in results), results
    for c in topology.coordinators:
        listed = json.dumps(await call_tool(http, c.url, session_id, "fs.list", {}))
        missing = [name for name in names if name not in listed]
        assert missing == [], f"{c.upstream} sees another workspace: {listed}"


def transport_loads(topology: Topology) -> int:
    """How many transport-session records were read from Redis so far (HMGET is used for nothing else)."""
    assert topology.redis is not None
    with topology.redis.client() as raw:
        stats: dict[str, Any] = raw.info("commandstats")
    return int(stats.get("cmdstat_hmget", {}).get("calls", 0))


async def test_replicas_holding_a_session_serve_it_without_a_redis_round_trip_each(
    topology: Topology, http: aiohttp.ClientSession
) -> None:
    """Each replica reads the record once (and at most once more, when its deletion feed first subscribes);
    after that 30 requests spread over the 3 replicas read nothing from Redis for the transport session."""
    first = transport_loads(topology)
    session_id = await raw_initialize(http, topology.coordinators[0].url)
    for c in topology.coordinators:
        assert (await list_tools(http, c.url, session_id))[0] == 200
    before = transport_loads(topology)
    assert before - first >= 2  # replicas 1 and 2 loaded it: the counter does count loads
    for _ in range(10):
        for c in topology.coordinators:
            assert (await list_tools(http, c.url, session_id))[0] == 200
    assert transport_loads(topology) - before <= 3


async def test_delete_ends_the_session_on_every_replica(topology: Topology, http: aiohttp.ClientSession) -> None:
    """Every replica holds the session in memory; a DELETE on one makes all of them answer 404."""
    session_id = await raw_initialize(http, topology.url)
    for c in topology.coordinators:  # each replica loads it and then holds it
        status, body = await list_tools(http, c.url, session_id)
        assert status == 200, body
    headers = {**HEADERS, "Mcp-Session-Id": session_id}
    async with http.delete(f"{topology.coordinators[1].url}/mcp", headers=headers) as resp:
        assert resp.status == 200, await resp.text()

    # The other replicas hear of it through Redis pub/sub, within moments: poll (bounded) until they have.
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        answers = [await list_tools(http, c.url, session_id) for c in topology.coordinators]
        statuses = [status for status, _ in answers]
        assert set(statuses) <= {200, 404}, answers
        if statuses == [404, 404, 404]:
            break
        assert asyncio.get_running_loop().time() < deadline, f"still served after DELETE: {answers}"


async def test_redis_outage_answers_503_retry_not_404_then_the_session_works_again(
    topology: Topology, http: aiohttp.ClientSession
) -> None:
    """While Redis is stopped a replica that does not hold the session answers 503 (retryable, naming the
    session store), never 404; the one that holds it serves it. After Redis returns every replica does."""
    assert topology.redis is not None
    holder, *others = topology.coordinators
    session_id = await raw_initialize(http, holder.url)
    topology.redis.stop()
    try:
        status, body = await list_tools(http, holder.url, session_id)
        assert status == 200, body
        answers = [await list_tools(http, c.url, session_id) for c in others]
        assert [status for status, _ in answers] == [503, 503], answers
        for _, body in answers:
            assert "session store is unreachable" in body["error"]["message"]
            assert "try again" in body["error"]["message"]
    finally:
        topology.redis.start()
    for c in topology.coordinators:
        status, body = await list_tools(http, c.url, session_id)
        assert status == 200, body
