"""Worker benchmarks: fs.read of 4 KiB over HTTP (ops/s, one worker process) and run.python print(1) latency.

`await run()` returns a markdown section for docs/benchmarks.md; `python bench/worker_bench.py` prints it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp

# The reference: the least an aiohttp server can do for the same request (open, read, JSON answer).
REFERENCE_SERVER = """
import json, sys
from aiohttp import web
async def read(request):
    body = await request.json()
    with open(sys.argv[1] + '/' + body['path'], 'rb') as f:
        data = f.read()
    return web.json_response({'path': body['path'], 'content': data.decode()})
app = web.Application()
app.router.add_post('/v1/sessions/{sid}/fs/read', read)
app.router.add_route('*', '/v1/sessions/{sid}', lambda r: web.json_response({}))
app.router.add_post('/v1/sessions/{sid}/fs/write', lambda r: web.json_response({}))
web.run_app(app, host='127.0.0.1', port=int(sys.argv[2]), print=None, access_log=None)
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def _reference(home: Path, cpu: int | None) -> AsyncIterator[str]:
    """A bare aiohttp server answering fs.read from one directory (no sessions, no path checks)."""
    (home / "data.txt").write_text("x" * 4096)
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-c", REFERENCE_SERVER, str(home), str(port)])
    try:
        if cpu is not None:
            os.sched_setaffinity(proc.pid, {cpu})
        deadline = time.monotonic() + 30
        while True:
            try:
                _reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                await writer.wait_closed()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("reference server did not start") from None
                await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


async def _bare_spawn(python: Path) -> float:
    """The reference for one run.python: the same venv's `python -c 'print(1)'` spawned directly."""
    t0 = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        str(python), "-c", "print(1)", stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    await proc.communicate()
    return (time.perf_counter() - t0) * 1000


@contextlib.asynccontextmanager
async def _worker(home: Path, log_level: str, cpu: int | None) -> AsyncIterator[str]:
    """A real worker process on 127.0.0.1:0, optionally pinned to one CPU; yields its URL."""
    config = home / "worker.json"
    config.write_text(json.dumps({"port": 0, "workspace_root": str(home / "ws"), "log_level": log_level}))
    port_file = home / "port"
    with (home / "worker.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "worker", "--config", str(config), "--port-file", str(port_file)],
            stdout=log,
            stderr=log,
        )
    try:
        if cpu is not None:
            os.sched_setaffinity(proc.pid, {cpu})
        deadline = time.monotonic() + 30
        while not port_file.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker did not start: {(home / 'worker.log').read_text()}")
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{int(port_file.read_text())}"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


async def _post(http: aiohttp.ClientSession, url: str, body: dict[str, object]) -> dict[str, object]:
    async with http.post(url, json=body) as resp:
        answer: dict[str, object] = await resp.json()
        if resp.status != 200:
            raise RuntimeError(f"{url} answered {resp.status}: {answer}")
        return answer


async def bench_reads(url: str, seconds: float, concurrency: int, sessions: int) -> tuple[float, int]:
    """fs.read of a 4 KiB file, `concurrency` keep-alive requests in flight over `sessions` sessions."""
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:
        sids = [f"bench-read-{i}" for i in range(sessions)]
        for sid in sids:
            async with http.put(f"{url}/v1/sessions/{sid}", json={}):
                pass
            await _post(http, f"{url}/v1/sessions/{sid}/fs/write", {"path": "data.txt", "content": "x" * 4096})
        count = 0
        stop_at = time.monotonic() + seconds

        async def loop(i: int) -> None:
            nonlocal count
            target = f"{url}/v1/sessions/{sids[i % sessions]}/fs/read"
            body = {"path": "data.txt"}
            while time.monotonic() < stop_at:
                async with http.post(target, json=body) as resp:
                    await resp.read()
                    if resp.status != 200:
                        raise RuntimeError(f"fs.read answered {resp.status}")
                count += 1

        await asyncio.gather(*(loop(i) for i in range(concurrency)))  # warm-up pass is the first second
        started = time.monotonic()
        count = 0
        stop_at = started + seconds
        await asyncio.gather(*(loop(i) for i in range(concurrency)))
        elapsed = time.monotonic() - started
    return count / elapsed, count


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


async def bench_runs(url: str, venv_python: Path, runs: int) -> dict[str, float]:
    """run.python print(1), sequential, each call followed by its reference (a bare spawn of the venv python).

    Interleaving puts both under the same load on a shared machine. Also times the first call of a
    session, which creates the venv.
    """
    async with aiohttp.ClientSession() as http:
        async with http.put(f"{url}/v1/sessions/bench-run", json={}):
            pass
        target = f"{url}/v1/sessions/bench-run/run/python"
        t0 = time.perf_counter()
        await _post(http, target, {"code": "print(1)"})
        first = (time.perf_counter() - t0) * 1000
        latencies, bare = [], []
        for _ in range(runs):
            t0 = time.perf_counter()
            answer = await _post(http, target, {"code": "print(1)"})
            latencies.append((time.perf_counter() - t0) * 1000)
            assert answer["stdout"] == "1\n"
            bare.append(await _bare_spawn(venv_python))
    return {
        "p50": statistics.median(latencies),
        "p99": _percentile(latencies, 99),
        "bare_p50": statistics.median(bare),
        "bare_p99": _percentile(bare, 99),
        "first": first,
    }


async def run(seconds: float = 1.0, rounds: int = 5, runs: int = 200, concurrency: int = 16, sessions: int = 4) -> str:
    """Run every worker benchmark, each beside its reference, and return the markdown section."""
    cpus = sorted(os.sched_getaffinity(0))
    worker_cpu = cpus[0] if len(cpus) > 1 else None
    if worker_cpu is not None:
        os.sched_setaffinity(0, set(cpus[1:]))
    try:
        with tempfile.TemporaryDirectory(prefix="worker-bench-") as tmp:
            (Path(tmp) / "worker").mkdir()
            (Path(tmp) / "reference").mkdir()
            async with (
                _worker(Path(tmp) / "worker", "info", worker_cpu) as url,
                _reference(Path(tmp) / "reference", worker_cpu) as ref_url,
            ):
                # Alternate short rounds so that load drifting on a shared machine hits both alike.
                worker_rounds, ref_rounds = [], []
                for _ in range(rounds):
                    worker_rounds.append((await bench_reads(url, seconds, concurrency, sessions))[0])
                    ref_rounds.append((await bench_reads(ref_url, seconds, concurrency, sessions))[0])
                ops, ref_ops = statistics.median(worker_rounds), statistics.median(ref_rounds)
                venv_python = Path(tmp) / "worker" / "ws" / ".private" / "bench-run" / "venv" / "bin" / "python"
                lat = await bench_runs(url, venv_python, runs)
    finally:
        if worker_cpu is not None:
            os.sched_setaffinity(0, set(cpus))
    pinned = f"pinned to CPU {worker_cpu}, the client on the others" if worker_cpu is not None else "unpinned"
    return "\n".join(
        [
            "## Worker",
            "",
            f"`bench/worker_bench.py`: one worker process ({pinned}), default config (log_level info), "
            f"aiohttp client with keep-alive on 127.0.0.1, {concurrency} requests in flight over "
            f"{sessions} sessions. {platform.python_implementation()} {platform.python_version()}, "
            f"{os.cpu_count()} CPUs. The reference column is the least the same request can cost: a bare "
            "aiohttp handler that opens and returns the file (no sessions, no path checks), and spawning "
            "the session venv's `python -c 'print(1)'` directly.",
            "",
            "| measure | worker | reference | target |",
            "|---|---|---|---|",
            f"| `fs.read` 4 KiB over HTTP, one core (median of {rounds} rounds of {seconds:g}s) "
            f"| **{ops:,.0f} ops/s** (rounds: {', '.join(f'{r:,.0f}' for r in worker_rounds)}) "
            f"| {ref_ops:,.0f} ops/s | >= 3,000 ops/s |",
            f"| `run.python` `print(1)` p50 ({runs} sequential calls) | {lat['p50']:.1f} ms "
            f"| {lat['bare_p50']:.1f} ms | report |",
            f"| `run.python` `print(1)` p99 | {lat['p99']:.1f} ms | {lat['bare_p99']:.1f} ms | report |",
            f"| first `run.python` of a session (creates the venv) | {lat['first']:.1f} ms | | report |",
            "",
        ]
    )


if __name__ == "__main__":
    print(asyncio.run(run()))
