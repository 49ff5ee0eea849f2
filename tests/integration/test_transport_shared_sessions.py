"""Handshake-era sessions any replica can serve: two Streamable HTTP transports ("replicas", each a real
aiohttp server on 127.0.0.1) sharing one session store, driven with raw HTTP.

The shared store here is the in-process MemorySessionStore (which delivers deletions to every watcher in
its process); `test_ha_handshake_affinity.py` runs the same over Redis with real processes.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import mcp_test_server
import pytest
from aiohttp import web
from mcp_fixtures import ACCEPT_BOTH
from mcp_test_server import IDENTITY

from coordinator.calls import TransportSettings
from coordinator.memory_store import MemorySessionStore
from coordinator.session_store import StoreUnavailable
from coordinator.transports.security import security_middleware
from coordinator.transports.streamable_http import StreamableHttpTransport

TOKENS = {"alice": "token-alice", "bob": "token-bob"}
VERSION = "2025-06-18"


class CountingStore(MemorySessionStore):
    """The memory store, counting transport-session loads, and able to play "unreachable"."""

    def __init__(self) -> None:
        super().__init__(max_age=600)
        self.loads = 0
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise StoreUnavailable("Redis at redis://test:6379/0 is unreachable (test)")

    async def save_transport_session(self, session_id: str, data: Mapping[str, Any], ttl: float) -> None:
        self._check()
        await super().save_transport_session(session_id, data, ttl)

    async def load_transport_session(self, session_id: str) -> dict[str, Any] | None:
        self._check()
        self.loads += 1
        return await super().load_transport_session(session_id)

    async def delete_transport_session(self, session_id: str) -> bool:
        self._check()
        return await super().delete_transport_session(session_id)


@dataclass
class Replica:
    transport: StreamableHttpTransport
    tools: mcp_test_server.TestTools
    runner: web.AppRunner
    url: str


async def start_replica(store: CountingStore) -> Replica:
    settings = TransportSettings(auth_tokens=TOKENS, keepalive_interval=0.05)
    tools = mcp_test_server.TestTools()
    transport = StreamableHttpTransport(tools, IDENTITY, settings, idle_timeout=600, store=store)
    app = web.Application(middlewares=[security_middleware(settings)])
    transport.add_routes(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return Replica(transport, tools, runner, f"http://127.0.0.1:{runner.addresses[0][1]}/mcp")


@pytest.fixture
def store() -> CountingStore:
    return CountingStore()


@pytest.fixture
async def replicas(store: CountingStore) -> AsyncIterator[list[Replica]]:
    started = [await start_replica(store), await start_replica(store)]
    yield started
    for r in started:
        await r.transport.aclose()
        await r.runner.cleanup()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session


def headers(session_id: str | None = None, caller: str = "alice") -> dict[str, str]:
    out = {"Accept": ACCEPT_BOTH, "Authorization": f"Bearer {TOKENS[caller]}"}
    if session_id is not None:
        out |= {"Mcp-Session-Id": session_id, "MCP-Protocol-Version": VERSION}
    return out


async def initialize(http: aiohttp.ClientSession, url: str) -> str:
    body = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {"protocolVersion": VERSION, "capabilities": {}, "clientInfo": {"name": "hopper", "version": "1"}},
    }
    async with http.post(url, json=body, headers=headers()) as resp:
        assert resp.status == 200, await resp.text()
        return resp.headers["Mcp-Session-Id"]


async def post(
    http: aiohttp.ClientSession, url: str, session_id: str, message: dict[str, Any], caller: str = "alice"
) -> tuple[int, Any]:
    async with http.post(url, json=message, headers=headers(session_id, caller)) as resp:
        text = await resp.text()
        return resp.status, (json.loads(text) if text else None)


def stamp(request_id: int = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": {"name": "stamp"}}


async def test_a_session_initialized_on_one_replica_is_served_by_the_other(
    replicas: list[Replica], http: aiohttp.ClientSession
) -> None:
    """The second replica rebuilds the session from the store: same id, negotiated version, caller, client."""
    a, b = replicas
    sid = await initialize(http, a.url)
    status, _ = await post(http, b.url, sid, {"jsonrpc": "2.0", "method": "notifications/initialized"})
    assert status == 202
    status, body = await post(http, b.url, sid, stamp())
    assert status == 200, body
    seen = body["result"]["structuredContent"]
    assert seen["transport_session_id"] == sid
    assert seen["protocol_version"] == VERSION
    assert seen["caller"] == "alice"
    assert seen["client_name"] == "hopper"
    # a wrong MCP-Protocol-Version is still caught on the replica that did not negotiate it
    async with http.post(b.url, json=stamp(), headers=headers(sid) | {"MCP-Protocol-Version": "2024-11-05"}) as resp:
        assert resp.status == 400


async def test_the_session_stays_bound_to_its_caller_on_every_replica(
    replicas: list[Replica], http: aiohttp.ClientSession
) -> None:
    """Another token presenting the id gets the same 404 as for an unknown session, on either replica."""
    a, b = replicas
    sid = await initialize(http, a.url)
    for r in (a, b):
        status, body = await post(http, r.url, sid, stamp(), caller="bob")
        assert status == 404, body
        assert "unknown or expired session" in body["error"]["message"]
    assert (await post(http, b.url, sid, stamp()))[0] == 200


async def test_a_held_session_does_not_hit_the_store_on_every_request(
    store: CountingStore, replicas: list[Replica], http: aiohttp.ClientSession
) -> None:
    """The initializing replica never loads; the other loads once, then serves from memory (idle 600s:
    the shared TTL is slid at most every 60s)."""
    a, b = replicas
    sid = await initialize(http, a.url)
    for i in range(20):
        assert (await post(http, a.url, sid, stamp(i)))[0] == 200
    assert store.loads == 0
    for i in range(20):
        assert (await post(http, b.url, sid, stamp(i)))[0] == 200
    assert store.loads == 1
    assert a.transport.touch_interval == 60.0


async def test_delete_on_one_replica_ends_the_session_on_both(
    replicas: list[Replica], http: aiohttp.ClientSession
) -> None:
    """DELETE removes the shared record and the other replica's copy (its GET stream ends too); the
    implicit workspace is released once, by the replica that took the DELETE."""
    a, b = replicas
    sid = await initialize(http, a.url)
    assert (await post(http, b.url, sid, stamp()))[0] == 200  # b holds a copy now
    async with http.get(a.url, headers=headers(sid) | {"Accept": "text/event-stream"}) as stream:
        assert stream.status == 200
        async with http.delete(b.url, headers=headers(sid)) as resp:
            assert resp.status == 200
        await stream.content.read()  # returns once a's stream is closed (keepalive pings until then)
        assert stream.content.at_eof()
    for r in (a, b):
        status, body = await post(http, r.url, sid, stamp())
        assert status == 404, body
    assert b.tools.closed_sessions == [sid]
    assert a.tools.closed_sessions == []


async def test_an_unreachable_store_is_a_retryable_503_never_a_404(
    store: CountingStore, replicas: list[Replica], http: aiohttp.ClientSession
) -> None:
    """Lookups that cannot reach the store answer 503 + Retry-After saying to try again; the replica
    holding the session keeps serving it, and once the store is back the other replica serves it too."""
    a, b = replicas
    sid = await initialize(http, a.url)
    store.down = True
    status, body = await post(http, b.url, sid, stamp())
    assert status == 503, body
    message = body["error"]["message"]
    assert "session store is unreachable" in message and "try again" in message
    async with http.delete(b.url, headers=headers(sid)) as resp:
        assert resp.status == 503
    assert (await post(http, a.url, sid, stamp()))[0] == 200
    store.down = False
    assert (await post(http, b.url, sid, stamp()))[0] == 200


async def test_initialize_is_refused_503_while_the_store_is_unreachable(
    store: CountingStore, replicas: list[Replica], http: aiohttp.ClientSession
) -> None:
    """A session no other replica could find is not handed out."""
    store.down = True
    body = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {"protocolVersion": VERSION, "capabilities": {}, "clientInfo": {"name": "x", "version": "1"}},
    }
    async with http.post(replicas[0].url, json=body, headers=headers()) as resp:
        assert resp.status == 503
        assert "Mcp-Session-Id" not in resp.headers
    assert replicas[0].transport.session_count == 0


async def test_shutting_a_replica_down_keeps_the_session_for_the_others(
    replicas: list[Replica], http: aiohttp.ClientSession
) -> None:
    """aclose() forgets the local copies only: the workspace is not released, another replica serves on."""
    a, b = replicas
    sid = await initialize(http, a.url)
    await a.transport.aclose()
    assert a.tools.closed_sessions == []
    assert (await post(http, b.url, sid, stamp()))[0] == 200


async def test_an_id_this_server_could_not_have_minted_is_404_without_a_store_lookup(
    store: CountingStore, replicas: list[Replica], http: aiohttp.ClientSession
) -> None:
    """Only ids shaped like token_urlsafe(32) are looked up; junk ids cost no store round trip."""
    for junk in ("nope", "x" * 200, "a" * 42 + "!"):
        status, body = await post(http, replicas[0].url, junk, stamp())
        assert status == 404, body
    assert store.loads == 0
