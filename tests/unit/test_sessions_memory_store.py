"""MemorySessionStore: the SessionStore contract in one process, including exactly-once expiry claims."""

from __future__ import annotations

import asyncio

import pytest

from coordinator import memory_store
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


async def test_a_second_implicit_session_for_one_transport_key_loses_to_a_live_first() -> None:
    """create returns the live session already bound to the transport key and stores nothing; once that
    one is idle for max_age, a new one takes the key."""
    store = MemorySessionStore(max_age=60)
    assert await store.create(rec("a", last_used=100.0, transport_key="mcp-1")) is None
    assert await store.create(rec("b", last_used=130.0, transport_key="mcp-1")) == rec("a", transport_key="mcp-1")
    assert await store.get("b") is None
    assert await store.create(rec("c", last_used=160.0, transport_key="mcp-1")) is None
    assert (await store.find_by_transport("mcp-1")).session_id == "c"  # type: ignore[union-attr]


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


class _Clock:
    """Stands in for the `time` module inside coordinator.memory_store (monotonic only)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


async def test_transport_session_records_round_trip_and_are_deleted_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """save/load return a copy of the data; delete reports whether it existed; the store is not shared."""
    monkeypatch.setattr(memory_store, "time", _Clock())
    store = MemorySessionStore(max_age=60)
    assert store.shared is False
    data = {"protocol_version": "2025-06-18", "caller": "alice", "initialized": True}
    await store.save_transport_session("mcp-1", data, ttl=30)
    loaded = await store.load_transport_session("mcp-1")
    assert loaded == data
    loaded["caller"] = "mallory"  # a copy: the stored record is unchanged
    assert await store.load_transport_session("mcp-1") == data
    assert await store.load_transport_session("mcp-2") is None
    assert await store.delete_transport_session("mcp-1") is True
    assert await store.delete_transport_session("mcp-1") is False
    assert await store.load_transport_session("mcp-1") is None


async def test_transport_session_ttl_slides_on_load_and_expires_when_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each load restarts the idle TTL; a record idle for the whole TTL is gone, and swept on a later save."""
    clock = _Clock()
    monkeypatch.setattr(memory_store, "time", clock)
    store = MemorySessionStore(max_age=60)
    await store.save_transport_session("mcp-1", {"v": 1}, ttl=30)
    await store.save_transport_session("mcp-2", {"v": 2}, ttl=30)
    clock.now += 29
    assert await store.load_transport_session("mcp-1") == {"v": 1}  # slides mcp-1 to now + 30
    clock.now += 29
    assert await store.load_transport_session("mcp-1") == {"v": 1}
    assert await store.load_transport_session("mcp-2") is None  # idle 58s > 30s
    await store.save_transport_session("mcp-3", {"v": 3}, ttl=30)
    clock.now += 31
    await store.save_transport_session("mcp-4", {"v": 4}, ttl=30)  # sweeps the expired ones
    assert set(store._transport) == {"mcp-4"}


async def test_watchers_hear_of_each_deletion_until_cancelled() -> None:
    """Every running watcher is told the id of a deleted transport session; a cancelled one no longer."""
    store = MemorySessionStore(max_age=60)
    first: list[str | None] = []
    second: list[str | None] = []
    tasks = [asyncio.create_task(store.watch_transport_sessions(e.append)) for e in (first, second)]
    await asyncio.sleep(0)  # let both subscribe
    await store.save_transport_session("mcp-1", {}, ttl=30)
    assert await store.delete_transport_session("mcp-1") is True
    assert first == second == ["mcp-1"]
    tasks[0].cancel()
    with pytest.raises(asyncio.CancelledError):
        await tasks[0]
    await store.delete_transport_session("mcp-2")
    assert first == ["mcp-1"]
    assert second == ["mcp-1", "mcp-2"]
    tasks[1].cancel()
    await asyncio.gather(tasks[1], return_exceptions=True)
