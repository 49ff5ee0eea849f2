"""pkg.install: requirement specifiers only (checked with `packaging`), pip-installed into the venv."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from packaging.requirements import InvalidRequirement, Requirement

from worker.config import Limits, PackageSettings
from worker.errors import WorkerError, invalid
from worker.processes import ProcessGroups, RLimits, run_captured
from worker.runner import SYSTEM_PATH

MAX_PACKAGES = 64
MAX_SPEC_CHARS = 512
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")
LIST_DISTRIBUTIONS = (
    "import importlib.metadata as m, json;print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))"
)


def parse_requirements(items: object, settings: PackageSettings) -> list[str]:
    """Canonical requirements for `items`; refuses pip options, URLs and local paths (unless allowed)."""
    if not isinstance(items, list) or not items:
        raise invalid("packages must be a non-empty list of requirement specifiers, e.g. ['six', 'attrs>=23']")
    if len(items) > MAX_PACKAGES:
        raise invalid(f"packages holds {len(items)} entries; at most {MAX_PACKAGES} are allowed per call")
    out = []
    for item in items:
        if not isinstance(item, str):
            raise invalid(f"packages entry {item!r} is not a string")
        spec = item.strip()
        if len(spec) > MAX_SPEC_CHARS:
            raise invalid(f"packages entry {spec[:40]!r}... is longer than {MAX_SPEC_CHARS} characters")
        if spec.startswith("-"):
            raise invalid(
                f"packages entry {spec!r} looks like a pip option; only requirement specifiers are accepted "
                "(the index comes from the worker's config)"
            )
        if "/" in spec.split("@")[0] or spec.startswith((".", "~")):
            raise invalid(f"packages entry {spec!r} is a local path; give a requirement specifier such as 'six>=1.16'")
        try:
            req = Requirement(spec)
        except InvalidRequirement as exc:
            raise invalid(f"packages entry {spec!r} is not a valid requirement specifier: {exc}") from None
        if req.url is not None:
            scheme = urlparse(req.url).scheme
            if scheme == "file" and not settings.allow_local_paths:
                raise invalid(f"packages entry {spec!r} points to a local path; packages.allow_local_paths is false")
            if scheme != "file" and not settings.allow_urls:
                raise invalid(f"packages entry {spec!r} is a URL requirement; packages.allow_urls is false")
        out.append(str(req))
    return out


def pip_argv(python: Path, requirements: list[str], settings: PackageSettings) -> list[str]:
    """The pip command line: the worker's own pip, aimed at the session venv with --python."""
    argv = [
        sys.executable, "-m", "pip", "--python", str(python), "install",
        "--no-input", "--disable-pip-version-check", "--progress-bar", "off", "--no-cache-dir",
    ]  # fmt: skip
    if settings.only_binary:
        argv += ["--only-binary", ":all:"]
    if settings.index_url:
        argv += ["--index-url", settings.index_url]
    for url in settings.extra_index_urls:
        argv += ["--extra-index-url", url]
    for host in settings.trusted_hosts:
        argv += ["--trusted-host", host]
    return [*argv, "--", *requirements]


def pip_env(venv: Path, home: Path, settings: PackageSettings) -> dict[str, str]:
    """pip's scrubbed environment: no PIP_* variables; proxies pass through; config files per settings."""
    env = {
        "PATH": f"{venv}/bin:{SYSTEM_PATH}",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "TMPDIR": str(home),
    }
    env.update({k: os.environ[k] for k in PROXY_VARS if k in os.environ})
    if not settings.use_pip_config_files:
        env["PIP_CONFIG_FILE"] = os.devnull
    return env


async def install(
    requirements: list[str],
    *,
    python: Path,
    venv: Path,
    private: Path,
    settings: PackageSettings,
    limits: Limits,
    time_limit: float,
    groups: ProcessGroups,
    session_id: str,
) -> dict[str, Any]:
    """Install into the venv; answers pip's exit code and output and the venv's distributions."""
    home = private / "pip-home"
    home.mkdir(exist_ok=True)
    captured = await run_captured(
        pip_argv(python, requirements, settings),
        cwd=home,
        env=pip_env(venv, home, settings),
        stdin=None,
        time_limit=time_limit,
        max_output=limits.max_output_bytes,
        rlimits=RLimits(open_files=1024, file_bytes=limits.max_file_bytes * 10),
        groups=groups,
        session_id=session_id,
        merge_stderr=True,
    )
    output = captured.stdout.decode("utf-8", errors="replace")
    if captured.timed_out:
        raise WorkerError(
            "timeout",
            f"pkg.install ran past its timeout of {time_limit:g}s "
            "(capped by limits.install_timeout_seconds); pip was killed",
            details={"output": output},
        )
    if captured.killed:
        raise WorkerError(
            "capacity_exhausted", "pip was killed: its session was deleted or the worker is shutting down"
        )
    if captured.exit_code != 0 and settings.only_binary and "No matching distribution found" in output:
        # pip's "from versions: ..." lists wheels only, which reads as if the asked version did not exist.
        output += (
            "Note: this worker installs prebuilt wheels only (packages.only_binary: true); a version "
            "published only as a source distribution is not offered. Pick a version listed above.\n"
        )
    listing = await run_captured(
        [str(python), "-c", LIST_DISTRIBUTIONS],
        cwd=home,
        env=pip_env(venv, home, settings),
        stdin=None,
        time_limit=30,
        max_output=limits.max_output_bytes,
        rlimits=RLimits(),
        groups=groups,
        session_id=session_id,
    )
    try:
        installed: dict[str, str] = json.loads(listing.stdout or b"{}")
    except ValueError:
        installed = {}
    return {
        "exit_code": captured.exit_code,
        "output": output,
        "output_truncated": captured.stdout_truncated,
        "installed": dict(sorted(installed.items(), key=lambda kv: kv[0].lower())),
    }
