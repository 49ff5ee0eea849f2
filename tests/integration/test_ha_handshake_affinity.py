"""Handshake-era clients behind replicas: an Mcp-Session-Id lives in one process, so they need affinity."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from ha_topology import Topology, result_text
from mcp import Client

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def topology(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    """3 coordinators on Redis with two fronts: nginx round-robin, and nginx with ip_hash affinity."""
    root = tmp_path_factory.mktemp("ha-affinity")
    topo = Topology(root, replicas=3, workers=1)
    topo.start()
    topo.add_front("sticky", balance="ip_hash")
    yield topo
    topo.close()


async def handshake_calls(url: str, calls: int) -> list[str]:
    async with Client(f"{url}/mcp", mode="legacy", read_timeout_seconds=10) as client:
        return [result_text(await client.call_tool("echo", {"text": f"call {i}"})) for i in range(calls)]


async def test_handshake_era_client_works_behind_client_ip_affinity(topology: Topology) -> None:
    """With ip_hash (like sessionAffinity: ClientIP) a handshake-era session stays on its replica."""
    sticky = topology.extra_fronts["sticky"]
    texts = await handshake_calls(sticky.url, 6)
    assert all(f"call {i}" in text for i, text in enumerate(texts))


async def test_handshake_era_client_behind_plain_round_robin_loses_its_session(topology: Topology) -> None:
    """Round-robin sends the second request to a replica that never saw the initialize: it answers 404."""
    with pytest.raises(BaseException) as info:  # the SDK raises an ExceptionGroup from its task group
        await handshake_calls(topology.url, 6)
    assert "unknown or expired session" in repr(info.value), repr(info.value)
