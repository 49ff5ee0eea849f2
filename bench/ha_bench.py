"""HA benchmark: Redis store cost per operation and per session; calls/s with 1 and 3 replicas."""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from ha_redis import RedisServer, RedisSettings, running_redis  # noqa: E402
from ha_topology import Topology  # noqa: E402

from coordinator.memory_store import MemorySessionStore  # noqa: E402
from coordinator.redis_store import RedisSessionStore  # noqa: E402
from coordinator.session_store import SessionRecord  # noqa: E402

MAX_AGE = 1800.0


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _timed(n: int, op: Callable[[int], Awaitable[object]]) -> list[float]:
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        await op(i)
        out.append((time.perf_counter() - t0) * 1000)
    return out


async def store_ops(server: RedisServer, n: int = 2000) -> str:
    """Per-operation latency of the two stores, called directly, one at a time (ms)."""
    redis_store = RedisSessionStore(RedisSettings(url=server.url, key_prefix="bench-ops:"), MAX_AGE, env={})
    memory_store = MemorySessionStore(MAX_AGE)
    now = time.time()
    rows = []
    try:
        for name, store in (("memory", memory_store), ("redis", redis_store)):
            ids = [uuid.uuid4().hex for _ in range(n)]
            create = await _timed(
                n,
                lambda i, s=store, ids=ids: s.create(SessionRecord(ids[i], "http://w:8081", now, now)),  # type: ignore[misc]
            )
            touch = await _timed(n, lambda i, s=store, ids=ids: s.touch(ids[i], now + 1))  # type: ignore[misc]
            delete = await _timed(n, lambda i, s=store, ids=ids: s.delete(ids[i]))  # type: ignore[misc]
            for op, samples in (("create", create), ("touch", touch), ("delete", delete)):
                rows.append((name, op, statistics.median(samples), _pct(samples, 0.99)))
    finally:
        await redis_store.aclose()
    lines = ["| store | operation | p50 ms | p99 ms |", "|---|---|---:|---:|"]
    lines += [f"| {s} | {op} | {p50:.3f} | {p99:.3f} |" for s, op, p50, p99 in rows]
    return "\n".join(lines)


async def redis_memory_per_10k(server: RedisServer, n: int = 10_000) -> str:
    """INFO memory used_memory before and after creating `n` records through the store."""
    store = RedisSessionStore(RedisSettings(url=server.url, key_prefix="codegen-mcp:"), MAX_AGE, env={})
    try:
        with server.client() as raw:
            raw.flushall()
            before = int(raw.info("memory")["used_memory"])
            now = time.time()
            batch = 200
            for start in range(0, n, batch):
                await asyncio.gather(
                    *(
                        store.create(
                            SessionRecord(
                                session_id=uuid.uuid4().hex,
                                worker_url="http://codegen-mcp-worker-0.codegen-mcp-worker:8081",
                                created_at=now,
                                last_used=now,
                                owner="team-a",
                                transport_key=uuid.uuid4().hex if i % 2 else None,
                            )
                        )
                        for i in range(start, min(n, start + batch))
                    )
                )
            after = int(raw.info("memory")["used_memory"])
            count = await store.count()
            raw.flushall()
    finally:
        await store.aclose()
    delta = after - before
    return (
        f"- Redis `used_memory` for {count:,} sessions (half of them implicit, with a transport key): "
        f"{delta / 1024 / 1024:.1f} MiB, {delta / count:.0f} bytes per session."
    )


HEADERS = {
    "Content-Type": "application/json",
    "Accept": "application/json, text/event-stream",
    "MCP-Protocol-Version": "2026-07-28",
}
META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientInfo": {"name": "ha-bench", "version": "0"},
    "io.modelcontextprotocol/clientCapabilities": {},
}


async def _tool(http: aiohttp.ClientSession, url: str, name: str, args: dict[str, Any]) -> dict[str, Any]:
    """One 2026-07-28 tools/call over plain aiohttp (the SDK client would cost more CPU than the server)."""
    headers = {**HEADERS, "Mcp-Method": "tools/call", "Mcp-Name": name}
    if "session_id" in args:
        headers["Mcp-Param-Session-Id"] = args["session_id"]
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": name, "arguments": args, "_meta": META},
    }
    async with http.post(f"{url}/mcp", json=body, headers=headers) as resp:
        data: dict[str, Any] = await resp.json(content_type=None)
    result = data.get("result")
    if not isinstance(result, dict) or result.get("isError"):
        raise RuntimeError(f"{name} failed: {data}")
    return result


async def _session_with_file(http: aiohttp.ClientSession, url: str) -> str:
    created = await _tool(http, url, "session.create", {})
    sid = str(created["structuredContent"]["session_id"])
    await _tool(http, url, "fs.write", {"session_id": sid, "path": "data.txt", "content": "x" * 4096})
    return sid


async def _paired_latency(urls: dict[str, str], n: int) -> dict[str, list[float]]:
    """fs.read of 4 KiB with a session handle, one call at a time, alternating between `urls` (ms).

    Alternating call by call puts both sides under the same background load, which on a shared
    machine moves far more than the difference being measured.
    """
    samples: dict[str, list[float]] = {name: [] for name in urls}
    async with aiohttp.ClientSession() as http:
        args = {
            name: {"session_id": await _session_with_file(http, url), "path": "data.txt"}
            for name, url in urls.items()
        }
        for i in range(n + 50):
            for name, url in urls.items():
                t0 = time.perf_counter()
                await _tool(http, url, "fs.read", args[name])
                if i >= 50:  # warm-up
                    samples[name].append((time.perf_counter() - t0) * 1000)
    return samples


async def _throughput(url: str, seconds: float, concurrency: int) -> float:
    """fs.read calls/s from `concurrency` clients, each on its own session, for `seconds`."""
    done = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http:
        sids = [await _session_with_file(http, url) for _ in range(concurrency)]
        deadline = time.monotonic() + seconds

        async def client(sid: str) -> None:
            nonlocal done
            args = {"session_id": sid, "path": "data.txt"}
            while time.monotonic() < deadline:
                await _tool(http, url, "fs.read", args)
                done += 1

        started = time.monotonic()
        await asyncio.gather(*(client(s) for s in sids))
        return done / (time.monotonic() - started)


async def coordinator_figures(root: Path, seconds: float, concurrency: int = 16, n: int = 1000) -> str:
    """Latency per store (1 replica each) and calls/s with 1 replica and with 3 behind nginx."""
    lines = [
        "### Through the coordinator (2026-07-28 `fs.read` of 4 KiB with `session_id`)\n",
        f"Latency: {n} sequential calls per store, alternating call by call between a memory-store and a "
        f"Redis-store coordinator. Throughput: {concurrency} concurrent clients for {seconds:g}s per run, "
        "two runs per topology in turn, best run shown. Clients, nginx, coordinators, workers and Redis "
        "share this machine's cores, so three replicas show the cost of the extra hop, not scaling.\n",
    ]
    topos = {
        store: Topology(
            root / f"lat-{store}",
            replicas=1,
            workers=1,
            with_nginx=False,
            coordinator_sections={"session": {"store": store}},
        )
        for store in ("memory", "redis")
    }
    try:
        for topo in topos.values():
            await asyncio.to_thread(topo.start)
        latency = await _paired_latency({store: topo.url for store, topo in topos.items()}, n)
    finally:
        for topo in topos.values():
            await asyncio.to_thread(topo.close)
    lines += ["| store | p50 ms | p99 ms |", "|---|---:|---:|"]
    for store, samples in latency.items():
        lines.append(f"| {store} | {statistics.median(samples):.2f} | {_pct(samples, 0.99):.2f} |")
    p50 = statistics.median(latency["redis"]) - statistics.median(latency["memory"])
    p99 = _pct(latency["redis"], 0.99) - _pct(latency["memory"], 0.99)
    lines.append(
        f"\nThe Redis store adds {p50:+.2f} ms at p50 and {p99:+.2f} ms at p99 per call "
        "(one touch script per call with a session handle).\n"
    )
    topo = Topology(root / "throughput", replicas=3, workers=2, with_nginx=True)
    await asyncio.to_thread(topo.start)
    try:
        single = topo.add_front("single", upstreams=[topo.coordinators[0].upstream])
        targets = {
            "1 replica, direct": topo.coordinators[0].url,
            "1 replica behind nginx": single.url,
            "3 replicas behind nginx": topo.url,
        }
        best = dict.fromkeys(targets, 0.0)
        for _ in range(2):
            for label, url in targets.items():
                best[label] = max(best[label], await _throughput(url, seconds, concurrency))
    finally:
        await asyncio.to_thread(topo.close)
    lines += ["| topology (Redis store) | calls/s |", "|---|---:|"]
    lines += [f"| {label} | {rate:,.0f} |" for label, rate in best.items()]
    return "\n".join(lines)


async def run(coordinator_seconds: float = 6.0) -> str:
    """Markdown section with every HA figure this machine can produce."""
    parts = ["## HA: Redis session store and replicas behind nginx\n"]
    with (
        tempfile.TemporaryDirectory(prefix="ha-bench-") as tmp,
        running_redis(Path(tmp) / "redis", appendonly=True) as server,
    ):
        parts.append("### Store operations, called directly (one at a time, appendonly everysec)\n")
        parts.append(await store_ops(server))
        parts.append("\n### Redis memory\n")
        parts.append(await redis_memory_per_10k(server))
        parts.append("")
        parts.append(await coordinator_figures(Path(tmp), coordinator_seconds))
    return "\n".join(parts) + "\n"


if __name__ == "__main__":
    print(asyncio.run(run()))
