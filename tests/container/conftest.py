"""Container tier fixtures: a private dockerd, a debootstrap base image, both images, chart-like runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from container_support import BASE_TAG, REPO, TAG, Docker, Images, Runner, mounts_under, stop_dockerd, tail


@pytest.fixture(scope="session")
def docker() -> Iterator[Docker]:
    """A private dockerd started by ci/start-dockerd.sh, stopped by PID at the end of the session."""
    if os.geteuid() != 0:
        pytest.skip("container tier: starting a private dockerd needs root")
    if shutil.which("dockerd") is None:
        pytest.skip("container tier: dockerd not found (Debian's docker.io; ci/install-deps.sh installs it)")
    cli = shutil.which("docker")
    if cli is None:
        pytest.skip("container tier: the docker CLI is not installed (Debian's docker.io)")
    state = Path(tempfile.mkdtemp(prefix="cgm-dockerd-", dir="/tmp"))
    started = subprocess.run(
        ["bash", str(REPO / "ci" / "start-dockerd.sh"), str(state)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    pidfile = state / "dockerd.pid"
    if started.returncode != 0:
        if pidfile.exists():
            stop_dockerd(int(pidfile.read_text()))
        shutil.rmtree(state, ignore_errors=True)
        reason = (started.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.skip(f"container tier: dockerd cannot run on this machine: {reason}")
    pid = int(pidfile.read_text())
    try:
        yield Docker(host=f"unix://{state}/docker.sock", cli=cli)
    finally:
        stop_dockerd(pid)
        # dockerd leaves the bind mount of its default network namespace (exec/netns/default) behind.
        for mount in reversed(mounts_under(state)):
            subprocess.run(["umount", "--lazy", mount], check=False)
        leftover = mounts_under(state)
        if leftover:
            pytest.fail(f"dockerd left mounts behind under {state} that umount could not remove: {leftover}")
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="session")
def base_image(docker: Docker) -> str:
    """The debootstrap bookworm base (python3 + venv), imported from the machine's cached tarball."""
    if shutil.which("debootstrap") is None and not Path("/usr/sbin/debootstrap").exists():
        pytest.skip("container tier: debootstrap not found (ci/install-deps.sh installs it)")
    proc = subprocess.run(
        ["bash", str(REPO / "ci" / "build-base-image.sh"), BASE_TAG],
        env=docker.env(), capture_output=True, text=True, timeout=900, check=False,
    )
    if proc.returncode != 0:
        pytest.fail(f"ci/build-base-image.sh failed:\n{tail(proc.stderr + proc.stdout)}")
    return BASE_TAG


@pytest.fixture(scope="session")
def images(docker: Docker, base_image: str) -> Iterator[Images]:
    """Both images, built by ci/build-images.sh on the debootstrap base from a fresh wheelhouse."""
    wheelhouse = Path(".cache") / "wheelhouse" / f"container-test-{os.getpid()}"
    env = {
        **docker.env(),
        "TAG": TAG,
        "BASE_IMAGE": base_image,
        "WHEELHOUSE": "1",
        "WHEELHOUSE_DIR": str(wheelhouse),
    }
    try:
        proc = subprocess.run(
            ["bash", str(REPO / "ci" / "build-images.sh")],
            env=env, capture_output=True, text=True, timeout=900, check=False,
        )
        if proc.returncode != 0:
            pytest.fail(f"ci/build-images.sh failed:\n{tail(proc.stderr + proc.stdout)}")
        yield Images(
            coordinator=f"codegen-mcp-coordinator:{TAG}",
            worker=f"codegen-mcp-worker:{TAG}",
            wheelhouse=REPO / wheelhouse,
        )
    finally:
        shutil.rmtree(REPO / wheelhouse, ignore_errors=True)


@pytest.fixture
def runner(docker: Docker) -> Iterator[Runner]:
    """Starts chart-like containers for one test and removes them all afterwards."""
    started = Runner(docker)
    try:
        yield started
    finally:
        started.remove_all()
