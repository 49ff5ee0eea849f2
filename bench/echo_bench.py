"""2026-07-28 `echo` calls per second: the coordinator against the SDK's own MCPServer, same run, same load.

Both servers run as their own process on 127.0.0.1: the real `coordinator --transport http` (embedded
worker, default config otherwise, logs and audit on) and `bench/sdk_reference_server.py` (MCPServer on
uvicorn, `stateless_http=True, json_response=True`). `wrk` drives each with `bench/echo.lua`, a
stateless tools/call with the routing headers, at 1 and 32 connections. Rounds alternate between the
two servers and the best round per cell is kept, because the machine is shared and noisy; every
reply is checked (HTTP 200 carrying the echoed text) and a non-zero error count fails the run.

Besides calls/s, each round records the server process's own CPU time (user + system, from
/proc/<pid>/stat) per call. On a shared two-core machine throughput swings with the neighbours'
load; CPU per call is what the server itself spends, and stays comparable between runs.

Besides calls/s, each round records the server process's own CPU time (user + system, from
/proc/<pid>/stat) per call. On a shared two-core machine throughput swings with the neighbours'
load; CPU per call is what the server itself spends, and stays comparable between runs.

Run alone: `python -m bench echo_bench` (writes docs/benchmarks.md) or `python bench/echo_bench.py`.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.procs import cpu_seconds, terminate

HERE = Path(__file__).resolve().parent
LUA = HERE / "echo.lua"
TARGET_RATIO = 3.0
CONNECTIONS = (1, 32)


@dataclass(frozen=True, slots=True)
class Round:
    """One wrk run: calls/s, the server's CPU microseconds per call, and replies that were wrong."""

    rps: float
    cpu_us: float
    bad: int
    errors: int


@dataclass(frozen=True, slots=True)
class Server:
    """A benchmarked server process: where it listens and whose CPU time to read."""

    port: int
    pid: int


@asynccontextmanager
async def _process(
    argv: list[str], port_of: re.Pattern[bytes], *, env: dict[str, str] | None = None
) -> AsyncIterator[Server]:
    """Start `argv`, read its output until `port_of` matches (bounded), yield it, SIGTERM after."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        stdin=asyncio.subprocess.DEVNULL,
        env=env,
    )
    assert proc.stdout is not None
    drain: asyncio.Task[None] | None = None
    try:
        async with asyncio.timeout(60):
            while True:
                line = await proc.stdout.readline()
                if not line:
                    raise RuntimeError(f"{argv[0]} exited before listening (code {await proc.wait()})")
                if match := port_of.search(line):
                    port = int(match.group(1))
                    break

        async def discard() -> None:
            assert proc.stdout is not None
            while await proc.stdout.read(65536):
                pass

        drain = asyncio.ensure_future(discard())
        yield Server(port, proc.pid)
    finally:
        await terminate(proc)
        if drain is not None:
            drain.cancel()


@asynccontextmanager
async def coordinator(workdir: Path) -> AsyncIterator[Server]:
    """The real coordinator CLI with an embedded worker, on a free port."""
    config = workdir / "config.yaml"
    config.write_text(
        json.dumps(
            {"server": {"port": 0, "metrics_port": 0}, "worker": {"workspace_root": str(workdir / "ws")}}
        )
    )
    exe = Path(sys.executable).with_name("coordinator")
    argv = [str(exe), "--config", str(config), "--transport", "http"]
    env = {k: v for k, v in os.environ.items() if k not in ("PORT", "METRICS_PORT", "HOST", "CONFIG_FILE")}
    async with _process(argv, re.compile(rb'"msg": ?"listening".*?"port": ?(\d+)'), env=env) as server:
        yield server


@asynccontextmanager
async def reference() -> AsyncIterator[Server]:
    """The SDK's MCPServer on uvicorn, on a free port."""
    argv = [sys.executable, str(HERE / "sdk_reference_server.py"), "--port", "0"]
    async with _process(argv, re.compile(rb"LISTENING (\d+)")) as server:
        yield server


async def wrk(server: Server, connections: int, seconds: float) -> Round:
    """One wrk run against /mcp on `server`, with the server's CPU time measured around it."""
    cpu_before = cpu_seconds(server.pid)
    proc = await asyncio.create_subprocess_exec(
        "wrk",
        f"-t{min(connections, 2)}",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "-s",
        str(LUA),
        f"http://127.0.0.1:{server.port}/mcp",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out = (await proc.communicate())[0].decode()
    cpu = cpu_seconds(server.pid) - cpu_before
    total = re.search(r"(\d+) requests in", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    bad = re.search(r"BAD (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if rps is None or bad is None or total is None or not int(total.group(1)):
        raise RuntimeError(f"wrk output not understood:\n{out}")
    socket_errors = sum(map(int, errors.groups())) if errors else 0
    return Round(float(rps.group(1)), cpu / int(total.group(1)) * 1e6, int(bad.group(1)), socket_errors)


async def run(seconds: float = 5.0, rounds: int = 3) -> str:
    """Measure both servers and return the markdown section (best of `rounds` alternating rounds)."""
    title = "## Echo throughput (2026-07-28 stateless `tools/call`)"
    if shutil.which("wrk") is None:
        return f"{title}\n\nSkipped: `wrk` is not installed (`apt-get install wrk`).\n"
    best: dict[tuple[str, int], Round] = {}
    leanest: dict[tuple[str, int], float] = {}
    with tempfile.TemporaryDirectory(prefix="echo-bench-") as tmp:
        async with coordinator(Path(tmp)) as ours, reference() as theirs:
            await wrk(ours, 4, 1)  # warm-up: imports, caches, first session
            await wrk(theirs, 4, 1)
            for _ in range(rounds):
                for connections in CONNECTIONS:
                    for name, server in (("coordinator", ours), ("sdk", theirs)):
                        result = await wrk(server, connections, seconds)
                        if result.bad or result.errors:
                            raise RuntimeError(f"{name} at {connections} connections: {result}")
                        key = (name, connections)
                        if key not in best or result.rps > best[key].rps:
                            best[key] = result
                        leanest[key] = min(leanest.get(key, result.cpu_us), result.cpu_us)
    lines = [
        title,
        "",
        f"`bench/echo_bench.py`: wrk with `bench/echo.lua`, {seconds:g} s per cell, best of {rounds} "
        "alternating rounds; each server is one process. Reference: the SDK's `MCPServer` on uvicorn "
        "(`stateless_http=True, json_response=True`). Every reply was checked for HTTP 200 and the "
        "echoed text.",
        "",
        "| connections | coordinator calls/s | SDK calls/s | ratio | coordinator CPU/call | SDK CPU/call "
        "| ratio |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for connections in CONNECTIONS:
        ours_rps, theirs_rps = best[("coordinator", connections)].rps, best[("sdk", connections)].rps
        ours_cpu, theirs_cpu = leanest[("coordinator", connections)], leanest[("sdk", connections)]
        lines.append(
            f"| {connections} | {ours_rps:,.0f} | {theirs_rps:,.0f} | {ours_rps / theirs_rps:.1f}x "
            f"| {ours_cpu:,.0f} µs | {theirs_cpu:,.0f} µs | {theirs_cpu / ours_cpu:.1f}x |"
        )
    plot = _plot(best)
    lines += [
        "",
        *([f"![echo calls/s, coordinator vs SDK reference]({plot})", ""] if plot else []),
        f"Target: the coordinator at least {TARGET_RATIO:g}x the reference. CPU/call is the server process's "
        "user+system time over the calls it served (lowest round); its ratio is reference over coordinator.",
    ]
    return "\n".join(lines) + "\n"


def _plot(best: dict[tuple[str, int], Round]) -> str | None:
    """Draw calls/s per connection count as grouped bars into docs/; None when matplotlib is missing."""
    try:
        import matplotlib  # noqa: PLC0415 - optional, dev extra only

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        return None
    name = "benchmarks-echo.png"
    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
    width = 0.38
    series = (("coordinator", "codegen-mcp coordinator"), ("sdk", "mcp SDK MCPServer"))
    for offset, (server, label) in enumerate(series):
        xs = [i + (offset - 0.5) * width for i in range(len(CONNECTIONS))]
        ax.bar(xs, [best[(server, c)].rps for c in CONNECTIONS], width, label=label)
    ax.set_xticks(range(len(CONNECTIONS)), [f"{c} connection{'s' if c > 1 else ''}" for c in CONNECTIONS])
    ax.set_ylabel("echo calls/s (2026-07-28)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(Path(__file__).resolve().parent.parent / "docs" / name)
    plt.close(fig)
    return name


if __name__ == "__main__":
    print(asyncio.run(run()))
