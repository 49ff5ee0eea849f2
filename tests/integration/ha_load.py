"""The client side of the HA tests: paced 2026-07-28 MCP clients that record every call and check what they wrote."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Outcome:
    """One tool call of the load: when it started (monotonic), how it ended."""

    started: float
    tool: str
    session_id: str | None
    ok: bool
    error: str | None = None
    duration: float = 0.0


def result_text(result: Any) -> str:
    """The text blocks of an MCP tool result, joined by spaces."""
    return " ".join(getattr(c, "text", "") for c in (result.content or []))


class RateLimiter:
    """Spaces calls evenly at `rate` per second across every task that shares it."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate
        self.next_slot = 0.0

    async def acquire(self) -> None:
        now = time.monotonic()
        slot = max(now, self.next_slot)
        self.next_slot = slot + self.interval
        if slot > now:
            await asyncio.sleep(slot - now)  # pacing the load, not waiting for an outcome


@dataclass
class Load:
    """Concurrent 2026-07-28 clients, each on its own session handle, at `rate` calls/s in total.

    Each client opens a session with session.create, then cycles fs.write, fs.read (checking the
    content it wrote) and, every fifth round, run.python reading the file back. Every file written is
    remembered so `verify()` can prove that no session and no file was lost.
    """

    url: str
    clients: int = 6
    rate: float = 50.0
    call_timeout: float = 20.0
    outcomes: list[Outcome] = field(default_factory=list)
    files: dict[str, dict[str, str]] = field(default_factory=dict)
    reopen_on_lost: bool = False

    async def _call(self, client: Any, tool: str, args: dict[str, Any], sid: str | None) -> Any:
        started = time.monotonic()
        try:
            result = await client.call_tool(tool, args, read_timeout_seconds=self.call_timeout)
        except Exception as exc:
            self.outcomes.append(
                Outcome(started, tool, sid, False, f"{type(exc).__name__}: {exc}", time.monotonic() - started)
            )
            return None
        if result.is_error:
            self.outcomes.append(Outcome(started, tool, sid, False, result_text(result), time.monotonic() - started))
            return None
        self.outcomes.append(Outcome(started, tool, sid, True, None, time.monotonic() - started))
        return result

    async def _open(self, client: Any, limiter: RateLimiter, stop: asyncio.Event) -> str | None:
        while not stop.is_set():
            await limiter.acquire()
            created = await self._call(client, "session.create", {}, None)
            if created is not None:
                sid = str(created.structured_content["session_id"])
                self.files[sid] = {}
                return sid
        return None

    async def _user(self, n: int, limiter: RateLimiter, stop: asyncio.Event) -> None:
        from mcp import Client  # noqa: PLC0415 - heavy import, only where a load runs

        async with Client(f"{self.url}/mcp", mode="2026-07-28", read_timeout_seconds=self.call_timeout) as client:
            await client.list_tools()
            sid = await self._open(client, limiter, stop)
            k = 0
            while sid is not None and not stop.is_set():
                k += 1
                path, content = f"f{k % 20}.txt", f"client {n} round {k}"
                await limiter.acquire()
                wrote = await self._call(client, "fs.write", {"session_id": sid, "path": path, "content": content}, sid)
                if wrote is not None:
                    self.files[sid][path] = content
                else:  # the write may or may not have happened: stop vouching for this file
                    self.files[sid].pop(path, None)
                    continue
                await limiter.acquire()
                read = await self._call(client, "fs.read", {"session_id": sid, "path": path}, sid)
                if read is not None and wrote is not None and read.structured_content.get("content") != content:
                    self.outcomes.append(Outcome(time.monotonic(), "fs.read", sid, False, "content mismatch"))
                if k % 5 == 0:
                    await limiter.acquire()
                    code = f"print(open({path!r}).read())"
                    ran = await self._call(client, "run.python", {"session_id": sid, "code": code}, sid)
                    if ran is not None and content not in result_text(ran):
                        self.outcomes.append(Outcome(time.monotonic(), "run.python", sid, False, "stdout mismatch"))
                lost = [o for o in self.outcomes[-3:] if o.session_id == sid and "not found" in (o.error or "")]
                if lost and self.reopen_on_lost:
                    sid = await self._open(client, limiter, stop)

    async def run(self, stop: asyncio.Event, max_seconds: float) -> None:
        """Run until `stop` is set or `max_seconds` pass, whichever is first."""
        limiter = RateLimiter(self.rate)
        users = [asyncio.create_task(self._user(n, limiter, stop)) for n in range(self.clients)]
        try:
            async with asyncio.timeout(max_seconds):
                await stop.wait()
        except TimeoutError:
            stop.set()
        async with asyncio.timeout(self.call_timeout + 5):
            await asyncio.gather(*users)

    def failures(self, since: float = 0.0, until: float = float("inf")) -> list[Outcome]:
        return [o for o in self.outcomes if not o.ok and since <= o.started <= until]

    def successes(self, since: float = 0.0) -> int:
        return sum(1 for o in self.outcomes if o.ok and o.started >= since)

    async def verify(self) -> list[str]:
        """Read back every file of every session; the problems found (empty when nothing was lost)."""
        from mcp import Client  # noqa: PLC0415

        problems = []
        async with Client(f"{self.url}/mcp", mode="2026-07-28", read_timeout_seconds=self.call_timeout) as client:
            await client.list_tools()
            for sid, files in self.files.items():
                for path, content in files.items():
                    result = await client.call_tool("fs.read", {"session_id": sid, "path": path})
                    if result.is_error:
                        problems.append(f"{sid}/{path}: {result_text(result)}")
                    elif result.structured_content.get("content") != content:
                        problems.append(f"{sid}/{path}: content changed")
        return problems
