"""fs.read of 4 KiB through the coordinator and a worker vs. the worker directly; memory; start-to-ready.

Real processes on 127.0.0.1: a `worker` and a `coordinator --transport http` pointed at it (default
config otherwise: JSON logs, audit on stdout). Requests are 2026-07-28 stateless tools/call POSTs sent
with aiohttp over keep-alive connections, so the figures measure the servers, not an SDK client.
Coordinator and direct-worker rounds alternate, and every sample of both is kept, so a noisy
neighbour on the shared machine hits both sides alike. The p50 overhead is the difference of the
two p50s. Memory is VmRSS from /proc; start-to-ready is spawn to the first `/ready` 200, with the
embedded worker (what `make run` starts).

Run alone: `python -m bench coordinator_bench` or `python bench/coordinator_bench.py`.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bench.procs import cpu_seconds, rss_mib, terminate

VENV_BIN = Path(sys.executable).parent
PORT_RE = re.compile(rb'"msg": "listening".*?"port": (\d+)')
OVERHEAD_TARGET_MS = 0.5
RSS_IDLE_TARGET_MIB = 60.0
RSS_SESSIONS_TARGET_MIB = 20.0
READY_TARGET_S = 1.5
HEADERS = {
    "Content-Type": "application/json",
    "Accept": "application/json, text/event-stream",
    "MCP-Protocol-Version": "2026-07-28",
    "Mcp-Method": "tools/call",
}
META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": {},
    "io.modelcontextprotocol/clientInfo": {"name": "coordinator_bench", "version": "1"},
}


@dataclass(frozen=True, slots=True)
class Latencies:
    """Per-call latencies in milliseconds and the wall time of the run that produced them (seconds)."""

    samples: list[float]
    wall: float

    def pct(self, q: float) -> float:
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    @property
    def rate(self) -> float:
        return len(self.samples) / self.wall if self.wall else 0.0


def _env(**extra: str) -> dict[str, str]:
    drop = {"PORT", "HOST", "METRICS_PORT", "WORKER_URL", "CONFIG_FILE", "WORKSPACE_ROOT", "LOG_LEVEL"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(extra)
    return env


@asynccontextmanager
async def _process(argv: list[str], env: dict[str, str], log: Path) -> AsyncIterator[tuple[int, int, float]]:
    """Start `argv` with stderr to `log`; yield (pid, port, seconds until it logged 'listening')."""
    started = time.perf_counter()
    with log.open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=err, env=env
        )
    try:
        async with asyncio.timeout(60):
            while True:
                if match := PORT_RE.search(log.read_bytes()):
                    break
                if proc.returncode is not None:
                    raise RuntimeError(f"{argv[0]} exited early:\n{log.read_text()}")
                await asyncio.sleep(0.005)
        yield proc.pid, int(match.group(1)), time.perf_counter() - started
    finally:
        await terminate(proc)


async def _wait_ready(http: aiohttp.ClientSession, url: str, timeout_s: float = 30.0) -> None:
    async with asyncio.timeout(timeout_s):
        while True:
            try:
                async with http.get(url + "/ready") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.005)


async def _tool(
    http: aiohttp.ClientSession, url: str, name: str, arguments: dict[str, Any], session_id: str | None = None
) -> dict[str, Any]:
    body = json.dumps(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": name, "arguments": arguments, "_meta": META},
        }
    )
    headers = {**HEADERS, "Mcp-Name": name}
    if session_id is not None:
        headers["Mcp-Param-Session-Id"] = session_id
    async with http.post(url + "/mcp", data=body, headers=headers) as resp:
        reply = await resp.json(content_type=None)
    result = reply.get("result")
    if resp.status != 200 or not isinstance(result, dict) or result.get("isError"):
        raise RuntimeError(f"{name} failed: {resp.status} {reply}")
    return result


async def _measure(calls: int, concurrency: int, one: Any) -> Latencies:
    samples: list[float] = []
    per_worker = calls // concurrency

    async def loop() -> None:
        for _ in range(per_worker):
            t0 = time.perf_counter()
            await one()
            samples.append((time.perf_counter() - t0) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    return Latencies(samples, time.perf_counter() - started)


def _merge(parts: list[Latencies]) -> Latencies:
    return Latencies([s for p in parts for s in p.samples], sum(p.wall for p in parts))


async def _fs_read_rounds(
    coord_url: str, worker_url: str, calls: int, rounds: int, concurrency: int, pids: tuple[int, int]
) -> tuple[Latencies, Latencies, float]:
    """Coordinator and direct latencies, and the coordinator's CPU microseconds per proxied call."""
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        created = await _tool(http, coord_url, "session.create", {})
        sid = created["structuredContent"]["session_id"]
        await _tool(
            http, coord_url, "fs.write", {"session_id": sid, "path": "data.txt", "content": "x" * 4096}, sid
        )
        read_body = json.dumps({"path": "data.txt"})

        async def via_coordinator() -> None:
            result = await _tool(http, coord_url, "fs.read", {"session_id": sid, "path": "data.txt"}, sid)
            if result["structuredContent"]["size"] != 4096:
                raise RuntimeError("short read")

        async def direct() -> None:
            async with http.post(
                f"{worker_url}/v1/sessions/{sid}/fs/read",
                data=read_body,
                headers={"Content-Type": "application/json"},
            ) as resp:
                if resp.status != 200 or (await resp.json())["size"] != 4096:
                    raise RuntimeError("direct read failed")

        await _measure(200, concurrency, via_coordinator)  # warm both paths and their pools
        await _measure(200, concurrency, direct)
        coord_parts, direct_parts = [], []
        coord_cpu = 0.0
        for _ in range(rounds):
            before = cpu_seconds(pids[0])
            coord_parts.append(await _measure(calls // rounds, concurrency, via_coordinator))
            coord_cpu += cpu_seconds(pids[0]) - before
            direct_parts.append(await _measure(calls // rounds, concurrency, direct))
        merged = _merge(coord_parts)
        return merged, _merge(direct_parts), coord_cpu / len(merged.samples) * 1e6


async def _sessions_rss(coord_url: str, pid: int, count: int) -> tuple[float, float]:
    connector = aiohttp.TCPConnector(limit=16)
    async with aiohttp.ClientSession(connector=connector) as http:
        await _tool(http, coord_url, "echo", {"text": "warm"})
        idle = rss_mib(pid)
        sem = asyncio.Semaphore(16)

        async def one() -> None:
            async with sem:
                await _tool(http, coord_url, "session.create", {})

        await asyncio.gather(*(one() for _ in range(count)))
        return idle, rss_mib(pid)


async def _start_to_ready(tmp: Path) -> tuple[float, float]:
    """Seconds from spawn to 'listening' and to the first /ready 200, with the embedded worker."""
    env = _env(PORT="0", METRICS_PORT="0", WORKSPACE_ROOT=str(tmp / "embedded"))
    started = time.perf_counter()
    async with (
        _process([str(VENV_BIN / "coordinator"), "--transport", "http"], env, tmp / "embedded.log") as (
            _,
            port,
            _l,
        ),
        aiohttp.ClientSession() as http,
    ):
        listening = time.perf_counter() - started
        await _wait_ready(http, f"http://127.0.0.1:{port}")
        return listening, time.perf_counter() - started


async def run(calls: int = 3000, rounds: int = 6, sessions: int = 1000) -> str:
    """Run the benchmark and return its markdown section."""
    tmp = Path(tempfile.mkdtemp(prefix="coordinator-bench-"))
    try:
        readies = [await _start_to_ready(tmp) for _ in range(3)]
        worker_env = _env(PORT="0", WORKSPACE_ROOT=str(tmp / "worker"), MAX_SESSIONS=str(sessions + 100))
        async with _process([str(VENV_BIN / "worker")], worker_env, tmp / "worker.log") as (wpid, wport, _w):
            worker_url = f"http://127.0.0.1:{wport}"
            coord_env = _env(PORT="0", METRICS_PORT="0", WORKER_URL=worker_url)
            async with (
                _process(
                    [str(VENV_BIN / "coordinator"), "--transport", "http"], coord_env, tmp / "c.log"
                ) as (
                    pid,
                    port,
                    _c,
                ),
                aiohttp.ClientSession() as http,
            ):
                coord_url = f"http://127.0.0.1:{port}"
                await _wait_ready(http, coord_url)
                seq = await _fs_read_rounds(coord_url, worker_url, calls, rounds, 1, (pid, wpid))
                par = await _fs_read_rounds(coord_url, worker_url, calls, rounds, 16, (pid, wpid))
                idle, loaded = await _sessions_rss(coord_url, pid, sessions)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return _report(seq, par, idle, loaded, sessions, readies)


def _report(
    seq: tuple[Latencies, Latencies, float],
    par: tuple[Latencies, Latencies, float],
    idle: float,
    loaded: float,
    sessions: int,
    readies: list[tuple[float, float]],
) -> str:
    rows = []
    for label, (coord, direct, _) in (("1 connection", seq), ("16 connections", par)):
        rows.append(
            f"| {label} | coordinator → worker | {coord.rate:,.0f} | {coord.pct(0.5):.3f} "
            f"| {coord.pct(0.99):.3f} |"
        )
        rows.append(
            f"| {label} | worker directly | {direct.rate:,.0f} | {direct.pct(0.5):.3f} "
            f"| {direct.pct(0.99):.3f} |"
        )
    overhead = seq[0].pct(0.5) - seq[1].pct(0.5)
    load1, _, _ = os.getloadavg()
    ready = statistics.median(r[1] for r in readies)
    listening = statistics.median(r[0] for r in readies)

    def verdict(ok: bool) -> str:
        return "meets" if ok else "**misses**"

    return "\n".join(
        [
            "## Coordinator: fs.read of 4 KiB, memory, start to ready",
            "",
            "A 4 KiB `fs.read` as a 2026-07-28 stateless `tools/call` through `coordinator` and a separate "
            "`worker` process, against the same read sent to the worker directly (aiohttp client, "
            "keep-alive, rounds alternated). Latencies in milliseconds. Load average at the end of the run: "
            f"{load1:.1f} on {os.cpu_count()} cores (the machine is shared; figures are noisy).",
            "",
            "| load | path | calls/s | p50 ms | p99 ms |",
            "|---|---|---:|---:|---:|",
            *rows,
            "",
            f"- Coordinator p50 overhead over the worker (1 connection): **{overhead:.3f} ms** "
            f"(target ≤ {OVERHEAD_TARGET_MS} ms: {verdict(overhead <= OVERHEAD_TARGET_MS)}).",
            f"- Coordinator CPU per proxied call (the whole request: HTTP, MCP, tool layer, worker hop, "
            f"audit): **{seq[2]:.0f} µs** at 1 connection, {par[2]:.0f} µs at 16. CPU time leaves out "
            "waiting for a core, so it bounds the overhead a quiet machine would show.",
            f"- RSS idle (remote worker, after one call): **{idle:.1f} MiB** "
            f"(target ≤ {RSS_IDLE_TARGET_MIB:.0f} MiB: {verdict(idle <= RSS_IDLE_TARGET_MIB)}).",
            f"- RSS after {sessions:,} open sessions: {loaded:.1f} MiB, **+{loaded - idle:.1f} MiB** "
            f"(target ≤ {RSS_SESSIONS_TARGET_MIB:.0f} MiB: "
            f"{verdict(loaded - idle <= RSS_SESSIONS_TARGET_MIB)}).",
            f"- Start to `/ready` 200 with the embedded worker (median of {len(readies)}): **{ready:.2f} s** "
            f"(listening after {listening:.2f} s; target ≤ {READY_TARGET_S} s: "
            f"{verdict(ready <= READY_TARGET_S)}).",
            "",
        ]
    )


if __name__ == "__main__":
    print(asyncio.run(run()))
