"""The session registry in-process: capacity, FIFO turns, and a create racing a delete of the same id."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from worker.errors import WorkerError
from worker.processes import ProcessGroups
from worker.sessions import SessionRegistry


async def test_create_waits_for_a_running_delete_of_the_same_id(tmp_path: Path) -> None:
    """PUT during DELETE of the same id gets a fresh workspace that the delete does not remove."""
    registry = SessionRegistry(tmp_path / "ws", 4, ProcessGroups())
    session, _ = await registry.create("a")
    (session.workspace.root / "old.txt").write_text("old")
    await session.lock.acquire()  # a call in progress holds the turn
    deleting = asyncio.create_task(registry.delete("a"))
    while "a" not in registry._deleting:
        await asyncio.sleep(0)
    creating = asyncio.create_task(registry.create("a"))
    await asyncio.sleep(0)
    assert not creating.done()
    session.lock.release()
    assert await deleting is True
    fresh, created = await creating
    assert created is True
    assert fresh is not session
    assert fresh.workspace.root.is_dir()
    assert not (fresh.workspace.root / "old.txt").exists()


async def test_turns_are_granted_in_arrival_order(tmp_path: Path) -> None:
    """Waiters on one session's turn run first-in, first-out."""
    registry = SessionRegistry(tmp_path / "ws", 4, ProcessGroups())
    session, _ = await registry.create("s")
    order: list[int] = []

    async def call(n: int) -> None:
        async with session.turn():
            order.append(n)
            await asyncio.sleep(0)

    tasks = []
    async with session.turn():
        for n in range(10):
            tasks.append(asyncio.create_task(call(n)))
            await asyncio.sleep(0)
        assert session.waiting == 10
    await asyncio.gather(*tasks)
    assert order == list(range(10))


async def test_capacity_counts_live_sessions_only(tmp_path: Path) -> None:
    """max_sessions refuses one more; re-creating an existing id does not count."""
    registry = SessionRegistry(tmp_path / "ws", 1, ProcessGroups())
    await registry.create("one")
    assert (await registry.create("one"))[1] is False
    with pytest.raises(WorkerError) as info:
        await registry.create("two")
    assert info.value.code == "capacity_exhausted"
