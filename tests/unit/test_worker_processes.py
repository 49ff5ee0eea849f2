"""Process groups with real children: a kill request made while a child is being spawned is not lost."""

from __future__ import annotations

import sys
from pathlib import Path

from worker.processes import Captured, ProcessGroups, RLimits, run_captured

SLEEP = [sys.executable, "-c", "import time; time.sleep(60)"]


async def _run(groups: ProcessGroups, tmp_path: Path, argv: list[str], session_id: str = "s") -> Captured:
    return await run_captured(
        argv,
        cwd=tmp_path,
        env={},
        stdin=None,
        time_limit=30,
        max_output=100,
        rlimits=RLimits(),
        groups=groups,
        session_id=session_id,
    )


async def test_child_started_after_close_is_killed_at_once(tmp_path: Path) -> None:
    """After close() (shutdown), a child that registers late is SIGKILLed instead of running on."""
    groups = ProcessGroups()
    groups.close()
    captured = await _run(groups, tmp_path, SLEEP)
    assert (captured.exit_code, captured.killed, captured.timed_out) == (-9, True, False)
    assert len(groups) == 0


async def test_session_being_deleted_cannot_start_children_until_released(tmp_path: Path) -> None:
    """kill_session dooms later children of that session only, until release_session."""
    groups = ProcessGroups()
    groups.kill_session("doomed")
    assert (await _run(groups, tmp_path, SLEEP, "doomed")).killed is True
    other = await _run(groups, tmp_path, [sys.executable, "-c", "print('ok')"], "other")
    assert (other.exit_code, other.stdout) == (0, b"ok\n")
    groups.release_session("doomed")
    again = await _run(groups, tmp_path, [sys.executable, "-c", "print('ok')"], "doomed")
    assert (again.exit_code, again.killed) == (0, False)
