"""`python -m bench`: run every benchmark in one go and write docs/benchmarks.md.

Each benchmark module exposes `async def run() -> str` returning a markdown section. They run one
after another (never in parallel: the machine has two cores and the figures must not disturb each
other), and a module that is missing or fails is reported in the file instead of aborting the run.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib
import os
import platform
import sys
import traceback
from pathlib import Path

MODULES = ["echo_bench", "coordinator_bench", "worker_bench", "ha_bench"]
OUT = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def _machine() -> str:
    return (
        f"{platform.node() or 'host'}: {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


async def _main(selected: list[str]) -> int:
    sections = []
    failed = 0
    for name in selected:
        print(f"== {name}", file=sys.stderr, flush=True)
        try:
            module = importlib.import_module(f"bench.{name}")
            sections.append(await module.run())
        except Exception:
            failed += 1
            sections.append(f"## {name}\n\nThis benchmark failed in this run:\n\n```\n{traceback.format_exc()}```\n")
    header = (
        "# Benchmarks\n\n"
        "Written by `make bench` (`python -m bench`); do not edit by hand. Every figure comes from one run on one\n"
        "machine, with the reference measured in the same run, side by side.\n\n"
        f"- Run: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}\n- Machine: {_machine()}\n"
    )
    OUT.write_text(header + "\n" + "\n".join(sections))
    print(f"wrote {OUT}", file=sys.stderr)
    return 1 if failed else 0


def main() -> None:
    selected = sys.argv[1:] or MODULES
    raise SystemExit(asyncio.run(_main(selected)))


if __name__ == "__main__":
    main()
