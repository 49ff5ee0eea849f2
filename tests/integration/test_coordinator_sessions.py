"""The session manager in-process against a real (stub) worker over HTTP: placement, ownership, limits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from coordinator_fixtures import StubWorker

from coordinator.config import Config, load_config
from coordinator.memory_store import MemorySessionStore
from coordinator.metrics import Metrics
from coordinator.sessions import SessionError, SessionManager
from coordinator.worker_client import WorkerClient
from coordinator.worker_pool import WorkerPool


@pytest.fixture
async def stub() -> AsyncIterator[StubWorker]:
    worker = StubWorker()
    await worker.start()
    yield worker
    await worker.stop()


async def manager_for(url: str, **session: object) -> tuple[SessionManager, Config]:
    config = load_config(None, env={"WORKER_URL": url}, overrides={"session": session} if session else None)
    client = WorkerClient(config.worker)
    await client.start()
    pool = WorkerPool(config.worker, client)
    await pool.check_all()
    store = MemorySessionStore(config.session.max_age)
    return SessionManager(config, store, pool, client, Metrics()), config


async def test_concurrent_first_calls_of_one_transport_session_share_one_session(stub: StubWorker) -> None:
    """Ten calls racing on a new transport session resolve to one implicit session (one PUT)."""
    manager, _ = await manager_for(stub.url)
    try:
        results = await asyncio.gather(*(manager.resolve(None, caller=None, transport_key="mcp-1") for _ in range(10)))
        assert len({record.session_id for record, _ in results}) == 1
        assert sum(created for _, created in results) == 1
        assert stub.calls["PUT"] == 1
    finally:
        await manager.client.aclose()


async def test_stateless_calls_without_session_id_each_get_their_own_session(stub: StubWorker) -> None:
    """Without a transport session, every call opens a new session: clients never share one."""
    manager, _ = await manager_for(stub.url)
    try:
        first, created_first = await manager.resolve(None, caller=None, transport_key=None)
        second, created_second = await manager.resolve(None, caller=None, transport_key=None)
        assert created_first and created_second
        assert first.session_id != second.session_id
    finally:
        await manager.client.aclose()


async def test_another_caller_cannot_resolve_or_close_a_session(stub: StubWorker) -> None:
    """A session opened by alice is 'not found' for bob, and stays open."""
    manager, _ = await manager_for(stub.url)
    try:
        record = await manager.open("alice")
        with pytest.raises(SessionError, match="not found or expired"):
            await manager.resolve(record.session_id, caller="bob", transport_key=None)
        with pytest.raises(SessionError, match="not found or expired"):
            await manager.close(record.session_id, "bob")
        same, created = await manager.resolve(record.session_id, caller="alice", transport_key=None)
        assert same.session_id == record.session_id and not created
    finally:
        await manager.client.aclose()


async def test_max_sessions_is_a_clear_error(stub: StubWorker) -> None:
    """Beyond session.max_sessions, opening fails with a message naming the limit and the way out."""
    manager, _ = await manager_for(stub.url, max_sessions=2)
    try:
        await manager.open(None)
        await manager.open(None)
        with pytest.raises(SessionError, match=r"maximum of 2 sessions \(session.max_sessions\); close one"):
            await manager.open(None)
    finally:
        await manager.client.aclose()


async def test_expiry_deletes_each_idle_workspace_once(stub: StubWorker) -> None:
    """expire_once claims idle sessions and sends one DELETE per session to the worker."""
    manager, _ = await manager_for(stub.url)
    try:
        for _ in range(3):
            await manager.open(None)
        assert await manager.expire_once(now=1e12) == 3
        assert await manager.expire_once(now=1e12) == 0
        assert stub.calls["DELETE"] == 3
        assert await manager.store.count() == 0
    finally:
        await manager.client.aclose()


async def test_closing_a_transport_session_releases_its_workspace(stub: StubWorker) -> None:
    """transport_session_closed deletes the implicit session and its workspace."""
    manager, _ = await manager_for(stub.url)
    try:
        record, _ = await manager.resolve(None, caller=None, transport_key="sse-7")
        await manager.release_transport("sse-7")
        assert await manager.store.get(record.session_id) is None
        assert stub.calls["DELETE"] == 1
    finally:
        await manager.client.aclose()
