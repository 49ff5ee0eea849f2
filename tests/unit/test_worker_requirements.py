"""pkg.install's requirement check and pip command line: specifiers pass, options, URLs and paths do not."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.config import PackageSettings
from worker.errors import WorkerError
from worker.packages import parse_requirements, pip_argv, pip_env


def test_plain_specifiers_are_accepted_and_normalised() -> None:
    """Names, versions, extras and markers pass through in canonical form."""
    specs = ["six", "attrs >= 23", "requests[socks]==2.32.3", 'tomli; python_version < "3.11"']
    assert parse_requirements(specs, PackageSettings()) == [
        "six",
        "attrs>=23",
        "requests[socks]==2.32.3",
        'tomli; python_version < "3.11"',
    ]


@pytest.mark.parametrize(
    "spec",
    ["--index-url=x", "-rreq.txt", "-e .", "six @ https://x/y.whl", "six @ file:///y.whl", "./p", "a/b"],
)
def test_options_urls_and_paths_are_refused_by_default(spec: str) -> None:
    """The default settings admit requirement specifiers only, and the message quotes the entry."""
    with pytest.raises(WorkerError) as info:
        parse_requirements([spec], PackageSettings())
    assert info.value.code == "invalid_argument"
    assert repr(spec) in info.value.message


def test_url_and_local_requirements_pass_only_when_config_allows() -> None:
    """allow_urls and allow_local_paths open exactly their own kind."""
    urls = PackageSettings(allow_urls=True)
    assert parse_requirements(["six @ https://x/six.whl"], urls) == ["six @ https://x/six.whl"]
    with pytest.raises(WorkerError):
        parse_requirements(["six @ file:///six.whl"], urls)
    local = PackageSettings(allow_local_paths=True)
    assert parse_requirements(["six @ file:///six.whl"], local) == ["six @ file:///six.whl"]


def test_pip_command_takes_the_index_from_config_and_ends_options_with_double_dash(tmp_path: Path) -> None:
    """The index, extra indexes and trusted hosts come from config; requirements follow `--`."""
    settings = PackageSettings(
        index_url="https://idx/simple", extra_index_urls=("https://x/simple",), trusted_hosts=("x",)
    )
    argv = pip_argv(tmp_path / "py", ["six"], settings)
    assert argv[argv.index("--index-url") + 1] == "https://idx/simple"
    assert argv[argv.index("--extra-index-url") + 1] == "https://x/simple"
    assert argv[argv.index("--trusted-host") + 1] == "x"
    assert argv[-2:] == ["--", "six"]
    assert "--only-binary" in argv


def test_pip_environment_drops_pip_variables_and_can_ignore_config_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PIP_* from the worker's environment never reach pip; use_pip_config_files=false blanks pip.conf."""
    monkeypatch.setenv("PIP_INDEX_URL", "https://evil/simple")
    env = pip_env(tmp_path, tmp_path, PackageSettings(use_pip_config_files=False))
    assert "PIP_INDEX_URL" not in env
    assert env["PIP_CONFIG_FILE"] == "/dev/null"
    assert "PIP_CONFIG_FILE" not in pip_env(tmp_path, tmp_path, PackageSettings())
