"""Three coordinators on Redis behind nginx, under ~50 calls/s: rolling restart, a crash, a Redis restart."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from ha_load import Load, result_text
from ha_processes import require_binaries, wait_until
from ha_redis import RedisServer
from ha_topology import Coordinator, Topology, coordinator_config, http_status
from mcp import Client
from worker_fixtures import start_worker

pytestmark = pytest.mark.slow

LOAD_RATE = 50.0
CLIENTS = 6


@pytest.fixture(scope="module")
def topology(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    """redis-server, 2 workers, 3 coordinators (session.store: redis) and nginx round-robin in front."""
    topo = Topology(tmp_path_factory.mktemp("ha"), replicas=3, workers=2)
    topo.start()
    yield topo
    topo.close()


async def until(predicate: Callable[[], bool | Awaitable[bool]], what: str, timeout: float = 20.0) -> None:
    """Poll `predicate` on the event loop until true; fail naming `what` after `timeout` seconds."""
    async with asyncio.timeout(timeout):
        while True:
            value = predicate()
            if isinstance(value, Awaitable):
                value = await value
            if value:
                return
            await asyncio.sleep(0.05)  # polling interval


def is_clear_store_error(text: str) -> bool:
    """A tool error that says Redis is the problem and that the call may be retried."""
    lowered = text.lower()
    return "redis at redis://" in lowered and ("try again" in lowered or "retry" in lowered)


async def ready_status(url: str) -> tuple[int, str]:
    """GET /ready without blocking the event loop that drives the load; (0, error) when refused."""
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http,
            http.get(f"{url}/ready") as resp,
        ):
            return resp.status, await resp.text()
    except aiohttp.ClientError as exc:
        return 0, repr(exc)


async def status_is(url: str, status: int) -> bool:
    return (await ready_status(url))[0] == status


async def draining(url: str) -> bool:
    status, body = await ready_status(url)
    return status == 503 and "draining" in body


async def start_load(topology: Topology) -> tuple[Load, asyncio.Event, asyncio.Task[None]]:
    await asyncio.to_thread(topology.heal)
    load = Load(topology.url, clients=CLIENTS, rate=LOAD_RATE)
    stop = asyncio.Event()
    task = asyncio.create_task(load.run(stop, max_seconds=60))
    await until(lambda: load.successes() >= 40, "the load warmed up (40 calls)")
    return load, stop, task


async def test_rolling_restart_under_load_fails_no_call_and_loses_no_session(topology: Topology) -> None:
    """SIGTERM each coordinator in turn (exit 0) and restart it: every call succeeds, every file stays."""
    load, stop, task = await start_load(topology)
    try:
        for c in topology.coordinators:
            c.terminate()
            # The drain: /ready says so first (for probing balancers) while calls are still served.
            await until(lambda c=c: draining(c.url), f"{c.url}/ready reporting draining")
            assert await asyncio.to_thread(c.wait) == 0, c.log_tail()
            await asyncio.to_thread(c.start)
            mark = time.monotonic()
            await until(lambda m=mark: load.successes(since=m) >= 20, "calls flowing after the restart")
    finally:
        stop.set()
        await task
    assert load.failures() == []
    assert len(load.files) == CLIENTS
    assert await load.verify() == []


async def test_killed_coordinator_fails_only_in_flight_calls_and_retries_succeed(topology: Topology) -> None:
    """kill -9 one coordinator under load, mid-call: only calls running on it fail, a retry of the
    interrupted call through nginx succeeds in the same session, and no session is lost."""
    load, stop, task = await start_load(topology)
    victim = topology.coordinators[1]
    code = "open('started.txt', 'w').write('1'); import time; time.sleep(2); print('finished')"
    try:
        async with Client(f"{topology.url}/mcp", mode="2026-07-28", read_timeout_seconds=30) as via_nginx:
            await via_nginx.list_tools()
            created = await via_nginx.call_tool("session.create", {})
            sid = str(created.structured_content["session_id"])
            in_flight: asyncio.Task[Any] | None = None
            dead_at: float | None = None
            with contextlib.suppress(Exception):  # the direct client's transport fails with the server
                async with Client(f"{victim.url}/mcp", mode="2026-07-28", read_timeout_seconds=30) as direct:
                    await direct.list_tools()
                    args = {"session_id": sid, "code": code}
                    in_flight = asyncio.create_task(direct.call_tool("run.python", args))
                    markers = [w.session_dir(sid) / "started.txt" for w in topology.worker_procs]
                    await until(lambda: any(m.exists() for m in markers), "the long call running on the victim")
                    victim.kill()  # blocks the loop for the few ms SIGKILL takes: nothing can interleave
                    dead_at = time.monotonic()  # calls started from here on cannot reach the killed process
                    await asyncio.wait([in_flight], timeout=10)
            assert in_flight is not None
            assert dead_at is not None, "the long call never started on the victim"
            async with asyncio.timeout(10):
                interrupted = (await asyncio.gather(in_flight, return_exceptions=True))[0]
            assert isinstance(interrupted, Exception), f"the call on the killed replica should fail: {interrupted}"
            await until(lambda: load.successes(since=dead_at) >= 60, "calls flowing without the killed replica")
            retried = await via_nginx.call_tool(
                "run.python", {"session_id": sid, "code": code.replace("sleep(2)", "sleep(0)")}
            )
            assert not retried.is_error, result_text(retried)
            assert "finished" in result_text(retried)
        await asyncio.to_thread(victim.start)
    finally:
        stop.set()
        await task
    late = [o for o in load.failures() if o.started > dead_at]
    assert late == [], f"calls that started after the crash failed: {late}"
    assert await load.verify() == []


async def test_redis_restart_gives_clear_retryable_errors_then_recovers_by_itself(topology: Topology) -> None:
    """Stop redis-server under load: calls fail with a clear retryable message and /ready turns 503 with a
    reason; after Redis is back everything recovers without touching the coordinators, sessions included."""
    assert topology.redis is not None
    load, stop, task = await start_load(topology)
    try:
        down_at = time.monotonic()
        await asyncio.to_thread(topology.redis.stop)
        await until(lambda: len(load.failures(since=down_at)) >= 5, "calls failing while Redis is down")
        for c in topology.coordinators:
            await until(lambda c=c: status_is(c.url, 503), f"{c.url}/ready turning 503")
        _, body = await ready_status(topology.coordinators[0].url)
        assert "session_store_unreachable" in json.loads(body)["reasons"], body
        assert f"Redis at {topology.redis.url}" in body
        await asyncio.to_thread(topology.redis.start)
        for c in topology.coordinators:
            await until(lambda c=c: status_is(c.url, 200), f"{c.url}/ready back to 200")
        recovered_at = time.monotonic()
        await until(lambda: load.successes(since=recovered_at + 1.0) >= 60, "calls flowing after the recovery")
    finally:
        stop.set()
        await task
    during = load.failures(since=down_at)
    assert during, "no call failed while Redis was down"
    unclear = [o.error for o in during if not is_clear_store_error(o.error or "")]
    assert unclear == [], "errors during the outage should name Redis and say to try again"
    assert load.failures(since=recovered_at + 1.0) == []
    assert await load.verify() == []


def test_coordinator_started_before_redis_waits_unready_then_becomes_ready(tmp_path: Path) -> None:
    """With Redis not up yet the coordinator still starts: /healthz 200, /ready 503 naming Redis; once
    Redis listens, /ready turns 200 without a restart (pods may start in any order)."""
    require_binaries("redis-server")
    redis = RedisServer(tmp_path / "redis")
    worker = start_worker(tmp_path)
    coordinator = Coordinator(tmp_path / "c", coordinator_config(redis, [worker.url], "ha:"))
    try:
        coordinator.start(probe="/healthz")
        status, body = http_status(f"{coordinator.url}/ready")
        assert status == 503
        assert "session_store_unreachable" in body
        assert f"Redis at {redis.url} is unreachable" in body
        redis.start()
        wait_until(lambda: http_status(f"{coordinator.url}/ready")[0] == 200, "/ready 200 once Redis is up")
    finally:
        coordinator.ensure_stopped()
        redis.stop()
        worker.stop()
