"""Child processes: spawn in a new process group under rlimits, capture output with a cap, kill groups."""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

PIPE_CLOSE_GRACE_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class RLimits:
    """rlimits applied to a child before it execs. None leaves a limit as inherited.

    `processes` sets RLIMIT_NPROC, which the kernel counts per uid (all processes and threads of
    that user, the worker's included) and does not enforce for root or CAP_SYS_RESOURCE.
    """

    cpu_seconds: int | None = None
    memory_bytes: int | None = None
    file_bytes: int | None = None
    open_files: int | None = None
    processes: int | None = None

    # Why preexec_fn and not a bootstrap that sets limits in the child: the limits must hold before
    # the interpreter starts, because site-packages .pth files (installable with pkg.install) run code
    # at startup. The price is fork instead of vfork: about 2.5 ms per run (bench/worker_bench.py).
    def preexec(self) -> Callable[[], None]:
        """A preexec_fn applying these limits; hard = soft (CPU: soft + 1s) so the child cannot raise them."""
        pairs = [
            (resource.RLIMIT_CPU, self.cpu_seconds),
            (resource.RLIMIT_AS, self.memory_bytes),
            (resource.RLIMIT_FSIZE, self.file_bytes),
            (resource.RLIMIT_NOFILE, self.open_files),
            (resource.RLIMIT_NPROC, self.processes),
        ]
        chosen = [(which, value) for which, value in pairs if value is not None]

        def apply() -> None:
            for which, value in chosen:
                # CPU: SIGXCPU at the soft limit, SIGKILL one second later if the program ignores it.
                hard = value + 1 if which == resource.RLIMIT_CPU else value
                resource.setrlimit(which, (value, hard))

        return apply


@dataclass(frozen=True, slots=True)
class Captured:
    """What a finished child left: its exit code (negative: killed by that signal) and capped output."""

    exit_code: int
    stdout: bytes
    stderr: bytes
    stdout_truncated: bool
    stderr_truncated: bool
    timed_out: bool
    killed: bool
    duration_ms: float


class ProcessGroups:
    """The process groups this worker started, by leader pid, with the session that owns each.

    A group is killed as a whole (SIGKILL to the group), which takes grandchildren with it unless
    they moved to a session of their own with setsid().
    """

    def __init__(self) -> None:
        self._owners: dict[int, str] = {}
        self._killed: set[int] = set()
        self._doomed: set[str] = set()
        self.closed = False

    def __len__(self) -> int:
        return len(self._owners)

    def add(self, pgid: int, session_id: str) -> None:
        """Track a new group; kill it at once if its session is being deleted or we are closed.

        A child can start between a kill request and its registration here (spawning awaits), so
        the request is remembered instead of lost.
        """
        self._owners[pgid] = session_id
        if self.closed or session_id in self._doomed:
            self._kill([pgid])

    def discard(self, pgid: int) -> bool:
        """Forget a group; True when someone killed it from outside (shutdown, session delete)."""
        self._owners.pop(pgid, None)
        killed = pgid in self._killed
        self._killed.discard(pgid)
        return killed

    def kill_session(self, session_id: str) -> int:
        """Kill every group of one session, and any it starts until `release_session`."""
        self._doomed.add(session_id)
        return self._kill([pgid for pgid, owner in self._owners.items() if owner == session_id])

    def release_session(self, session_id: str) -> None:
        """Let a session id (deleted, then created again) start processes again."""
        self._doomed.discard(session_id)

    def close(self) -> int:
        """Kill every group now and every group started from now on (shutdown)."""
        self.closed = True
        return self.kill_all()

    def kill_all(self) -> int:
        """Kill every tracked group; returns how many were signalled."""
        return self._kill(list(self._owners))

    def _kill(self, pgids: list[int]) -> int:
        for pgid in pgids:
            self._killed.add(pgid)
            killpg(pgid)
        return len(pgids)


def killpg(pgid: int) -> None:
    """SIGKILL a process group, ignoring one that is already gone."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


class _Capture(asyncio.SubprocessProtocol):
    """Collects stdout/stderr up to a cap each and reports the exit and the pipes' closing."""

    def __init__(self, cap: int, loop: asyncio.AbstractEventLoop) -> None:
        self.cap = cap
        self.buffers = {1: bytearray(), 2: bytearray()}
        self.truncated = {1: False, 2: False}
        self.exited: asyncio.Future[None] = loop.create_future()
        self.pipes_closed = {1: loop.create_future(), 2: loop.create_future()}

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        buf = self.buffers[fd]
        room = self.cap - len(buf)
        if room > 0:
            buf += data[:room] if isinstance(data, bytes) else data[:room].encode()
        if len(data) > room:
            self.truncated[fd] = True

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        fut = self.pipes_closed.get(fd)
        if fut is not None and not fut.done():
            fut.set_result(None)

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)


async def run_captured(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    stdin: bytes | None,
    time_limit: float,
    max_output: int,
    rlimits: RLimits,
    groups: ProcessGroups,
    session_id: str,
    merge_stderr: bool = False,
) -> Captured:
    """Run `argv` in a new process group; on timeout (or when the caller is cancelled) kill the group.

    The group is also killed once the child exits, so background grandchildren do not outlive it.
    """
    loop = asyncio.get_running_loop()
    started = time.monotonic()
    transport, proto = await loop.subprocess_exec(
        lambda: _Capture(max_output, loop),
        *argv,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
        cwd=cwd,
        env=dict(env),
        start_new_session=True,
        preexec_fn=rlimits.preexec(),
        close_fds=True,
    )
    pgid = transport.get_pid()
    groups.add(pgid, session_id)
    if merge_stderr:
        proto.pipes_closed[2].set_result(None)
    timed_out = False
    try:
        if stdin is not None:
            pipe = transport.get_pipe_transport(0)
            if isinstance(pipe, asyncio.WriteTransport):
                pipe.write(stdin)
                pipe.close()
        done, _ = await asyncio.wait([proto.exited], timeout=time_limit)
        timed_out = not done
        duration_ms = (time.monotonic() - started) * 1000
        killpg(pgid)
        await asyncio.wait(list(proto.pipes_closed.values()), timeout=PIPE_CLOSE_GRACE_SECONDS)
        await proto.exited
    finally:
        killpg(pgid)
        killed = groups.discard(pgid)
        transport.close()
    code = transport.get_returncode()
    return Captured(
        exit_code=code if code is not None else -signal.SIGKILL,
        stdout=bytes(proto.buffers[1]),
        stderr=bytes(proto.buffers[2]),
        stdout_truncated=proto.truncated[1],
        stderr_truncated=proto.truncated[2],
        timed_out=timed_out,
        killed=killed and not timed_out,
        duration_ms=round(duration_ms, 3),
    )
