"""MemorySessionStore: the SessionStore contract in one process, including exactly-once expiry claims."""

from __future__ import annotations

import asyncio

from coordinator.memory_store import MemorySessionStore
from coordinator.session_store import SessionRecord


def rec(
    sid: str, last_used: float = 100.0, transport_key: str | None = None, owner: str | None = None
) -> SessionRecord:
    return SessionRecord(
        sid, "http://w:1", created_at=last_used, last_used=last_used, owner=owner, transport_key=transport_key
    )


async def test_create_get_touch_delete_round_trip() -> None:
    """A stored record can be read, touched (sliding last_used) and deleted once."""
    store = MemorySessionStore(max_age=60)
    await store.create(rec("a"))
    assert (await store.get("a")) == rec("a")
    touched = await store.touch("a", 130.0)
    assert touched is not None and touched.last_used == 130.0
    assert (await store.delete("a")) == touched
    assert await store.delete("a") is None
    assert await store.get("a") is None


async def test_touch_of_an_idle_session_fails_and_leaves_it_for_the_reaper() -> None:
    """A session idle for max_age cannot be revived by touch; claim_expired still gets it."""
    store = MemorySessionStore(max_age=60)
    await store.create(rec("a", last_used=100.0))
    assert await store.touch("a", 160.0) is None
    assert [r.session_id for r in await store.claim_expired(160.0)] == ["a"]


async def test_claim_expired_takes_only_idle_sessions_up_to_the_limit() -> None:
    """Fresh sessions stay; at most `limit` idle ones are claimed per call."""
    store = MemorySessionStore(max_age=10)
    for i in range(5):
        await store.create(rec(f"old{i}", last_used=0.0))
    await store.create(rec("fresh", last_used=95.0))
    first = await store.claim_expired(100.0, limit=3)
    second = await store.claim_expired(100.0, limit=3)
    assert len(first) == 3 and len(second) == 2
    assert await store.count() == 1


async def test_concurrent_claimers_each_session_is_claimed_exactly_once() -> None:
    """Many concurrent claim_expired calls split the expired sessions without overlap or loss."""
    store = MemorySessionStore(max_age=1)
    for i in range(500):
        await store.create(rec(f"s{i}", last_used=0.0))
    results = await asyncio.gather(*(store.claim_expired(10.0, limit=7) for _ in range(100)))
    claimed = [r.session_id for batch in results for r in batch]
    assert len(claimed) == len(set(claimed)) == 500
    assert await store.count() == 0


async def test_implicit_sessions_are_found_by_transport_key_until_deleted() -> None:
    """find_by_transport maps a transport session to its implicit session."""
    store = MemorySessionStore(max_age=60)
    await store.create(rec("a", transport_key="mcp-1"))
    await store.create(rec("b", transport_key="mcp-2"))
    found = await store.find_by_transport("mcp-1")
    assert found is not None and found.session_id == "a"
    await store.delete("a")
    assert await store.find_by_transport("mcp-1") is None
    assert (await store.find_by_transport("mcp-2")).session_id == "b"  # type: ignore[union-attr]


async def test_repin_moves_a_session_to_another_worker() -> None:
    """repin changes worker_url and keeps everything else."""
    store = MemorySessionStore(max_age=60)
    await store.create(rec("a", owner="alice"))
    moved = await store.repin("a", "http://w:2")
    assert moved is not None and moved.worker_url == "http://w:2" and moved.owner == "alice"
    assert await store.repin("zzz", "http://w:2") is None


async def test_list_and_count_and_ping() -> None:
    """list honours its limit; count is exact; ping succeeds."""
    store = MemorySessionStore(max_age=60)
    for i in range(5):
        await store.create(rec(f"s{i}"))
    assert len(await store.list(limit=3)) == 3
    assert await store.count() == 5
    await store.ping()
    await store.aclose()
