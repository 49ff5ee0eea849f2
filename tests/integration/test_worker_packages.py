"""pkg.install against a real worker: pip option injection refused; a real install from the index."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from worker_fixtures import WorkerClient, WorkerProcess, start_worker

INJECTIONS = [
    "--index-url=https://evil.example/simple",
    "--extra-index-url https://evil.example/simple",
    "-r requirements.txt",
    "-e .",
    "-i https://evil.example/simple",
    "six --index-url https://evil.example/simple",
    "six; --trusted-host evil.example",
    "six @ https://evil.example/six-1.0-py3-none-any.whl",
    "six @ file:///tmp/six-1.0-py3-none-any.whl",
    "./local-package",
    "/tmp/local-package",
    "../outside.whl",
    "git+https://evil.example/repo.git",
    "",
]


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    proc = start_worker(
        tmp_path_factory.mktemp("pkg"),
        packages={"index_url": "https://pypi.org/simple", "use_pip_config_files": False},
        limits={"install_timeout_seconds": 240},
    )
    yield proc
    assert proc.stop() == 0


@pytest.mark.parametrize("spec", INJECTIONS)
async def test_pip_options_urls_and_paths_are_refused(api: WorkerClient, worker: WorkerProcess, spec: str) -> None:
    """Anything but a requirement specifier is invalid_argument, the message quotes it, and pip never runs."""
    sid = await api.new_session()
    status, body = await api.op(sid, "pkg/install", {"packages": ["iniconfig", spec]})
    assert status == 400, body
    assert body["error"]["code"] == "invalid_argument"
    assert repr(spec.strip()) in body["error"]["message"]
    assert not (worker.workspace_root / ".private" / sid / "venv").exists(), "pip's venv was prepared"


async def test_packages_must_be_a_non_empty_list(api: WorkerClient) -> None:
    """A string instead of a list, or an empty list, is refused with an example."""
    sid = await api.new_session()
    for packages in ("six", [], None, [3]):
        status, body = await api.op(sid, "pkg/install", {"packages": packages})
        assert (status, body["error"]["code"]) == (400, "invalid_argument"), packages


@pytest.mark.slow
async def test_real_install_from_the_index_is_importable_from_run_python(api: WorkerClient) -> None:
    """iniconfig installs into the session venv from PyPI, shows in `installed`, and imports in run.python."""
    sid = await api.new_session()
    status, body = await api.op(sid, "pkg/install", {"packages": ["iniconfig>=1"]})
    assert status == 200, body
    assert body["exit_code"] == 0, body["output"]
    assert "iniconfig" in body["installed"]
    status, run = await api.op(
        sid,
        "run/python",
        {"code": "import iniconfig, importlib.metadata as m; print(m.version('iniconfig'))"},
    )
    assert (status, run["exit_code"]) == (200, 0), run
    assert run["stdout"].strip() == body["installed"]["iniconfig"]
    other = await api.new_session()
    status, run = await api.op(other, "run/python", {"code": "import iniconfig"})
    assert run["exit_code"] == 1, "a package installed in one session leaked into another"


@pytest.mark.slow
async def test_unknown_package_is_a_result_with_pip_exit_code(api: WorkerClient) -> None:
    """A package the index lacks comes back as pip's non-zero exit code and output, not a worker error."""
    sid = await api.new_session()
    status, body = await api.op(sid, "pkg/install", {"packages": ["this-package-does-not-exist-codegen-mcp-x"]})
    assert status == 200
    assert body["exit_code"] != 0
    assert "No matching distribution" in body["output"] or "ERROR" in body["output"]


@pytest.mark.slow
async def test_default_config_installs_through_the_machines_pip_configuration(tmp_path: Path) -> None:
    """With no index configured, pip's own configuration (pip.conf files) decides, and six installs."""
    proc = start_worker(tmp_path)
    try:
        async with aiohttp.ClientSession() as http:
            api = WorkerClient(http, proc.url)
            sid = await api.new_session()
            status, body = await api.op(sid, "pkg/install", {"packages": ["six"]})
            assert (status, body["exit_code"]) == (200, 0), body
            status, run = await api.op(sid, "run/python", {"code": "import six; print(six.__name__)"})
            assert run["stdout"] == "six\n"
    finally:
        assert proc.stop() == 0


async def test_a_version_with_no_wheel_is_explained_as_wheels_only_not_missing(tmp_path: Path) -> None:
    """An sdist-only package fails with pip's output plus a note that only prebuilt wheels are installed."""
    project = tmp_path / "index" / "qa-sdist-only"
    project.mkdir(parents=True)
    (project / "qa_sdist_only-1.0.tar.gz").write_bytes(b"")
    (project / "index.html").write_text('<a href="qa_sdist_only-1.0.tar.gz">qa_sdist_only-1.0.tar.gz</a>\n')
    proc = start_worker(
        tmp_path, packages={"index_url": (tmp_path / "index").as_uri(), "use_pip_config_files": False}
    )
    try:
        async with aiohttp.ClientSession() as http:
            api = WorkerClient(http, proc.url)
            sid = await api.new_session()
            status, body = await api.op(sid, "pkg/install", {"packages": ["qa-sdist-only==1.0"]})
    finally:
        assert proc.stop() == 0
    assert status == 200, body
    assert body["exit_code"] != 0
    assert "No matching distribution found for qa-sdist-only==1.0" in body["output"]
    assert "installs prebuilt wheels only (packages.only_binary: true)" in body["output"]
