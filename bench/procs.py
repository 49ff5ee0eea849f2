"""What the benchmarks read off and do to the server processes they start: CPU time, RSS, a clean stop."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds consumed so far by process `pid` (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    """Resident set size of `pid` in MiB (VmRSS), NaN when /proc does not say."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def terminate(proc: asyncio.subprocess.Process, timeout: float = 30.0) -> None:
    """SIGTERM `proc` and wait for it; SIGKILL when it outlives `timeout` seconds."""
    if proc.returncode is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        async with asyncio.timeout(timeout):
            await proc.wait()
    except TimeoutError:
        proc.kill()
        await proc.wait()
