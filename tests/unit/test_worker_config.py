"""Worker config: defaults, file < env < overrides, schema errors naming their JSON path, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from worker.cli import main
from worker.config import ConfigError, Limits, load_config


def test_defaults_need_no_file_and_bind_loopback_8081() -> None:
    """With nothing given the worker listens on 127.0.0.1:8081 over ./.workspaces."""
    config = load_config(env={})
    assert (config.host, config.port, config.workspace_root) == ("127.0.0.1", 8081, Path(".workspaces"))
    assert config.limits == Limits()
    assert config.packages.index_url is None


def test_file_then_env_then_overrides_take_precedence(tmp_path: Path) -> None:
    """Environment beats the file; code overrides beat both; nested sections merge key by key."""
    path = tmp_path / "w.yaml"
    path.write_text("worker_id: from-file\nmax_sessions: 3\nlimits:\n  cpu_seconds: 5\n  max_files: 9\n")
    env = {
        "WORKER_ID": "from-env",
        "MAX_SESSIONS": "7",
        "PORT": "0",
        "HOST": "0.0.0.0",
        "WORKSPACE_ROOT": "/w",
    }
    config = load_config(str(path), env=env, overrides={"limits": {"cpu_seconds": 6}, "log_level": "DEBUG"})
    assert (config.worker_id, config.max_sessions, config.port, config.host) == ("from-env", 7, 0, "0.0.0.0")
    assert config.workspace_root == Path("/w")
    assert (config.limits.cpu_seconds, config.limits.max_files) == (6, 9)
    assert config.log_level == "debug"


def test_schema_errors_name_their_json_path_and_the_allowed_keys(tmp_path: Path) -> None:
    """Every violation is reported, one line each, starting with its JSON path."""
    path = tmp_path / "w.json"
    path.write_text(json.dumps({"port": 70000, "limits": {"cpu_seconds": "ten", "colour": 1}}))
    with pytest.raises(ConfigError) as info:
        load_config(str(path), env={})
    errors = info.value.errors
    assert len(errors) == 3
    assert any(e.startswith("$.port: 70000 is greater than the maximum") for e in errors)
    assert any(e.startswith("$.limits.cpu_seconds: 'ten' is not of type 'integer'") for e in errors)
    assert any(e.startswith("$.limits: ") and "allowed keys: cpu_seconds" in e for e in errors)


def test_bad_integer_in_the_environment_names_the_variable() -> None:
    """MAX_SESSIONS=lots is reported with the variable and the key it sets."""
    with pytest.raises(ConfigError, match=r"\$MAX_SESSIONS: 'lots' is not an integer \(it sets max_sessions\)"):
        load_config(env={"MAX_SESSIONS": "lots"})


def test_unreadable_and_non_mapping_files_are_config_errors(tmp_path: Path) -> None:
    """A missing file or a YAML list is a ConfigError, not a traceback."""
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(str(tmp_path / "absent.yaml"), env={})
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(str(path), env={})


def test_cli_exits_2_with_one_line_per_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`worker --config bad.yaml` prints each error on its own line and exits 2."""
    path = tmp_path / "bad.yaml"
    path.write_text("max_sessions: 0\nbogus: true\n")
    assert main(["--config", str(path)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2
    assert all(line.startswith("worker: config: $") for line in lines)


def test_cli_check_config_accepts_a_valid_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--check-config validates and exits 0 without serving."""
    path = tmp_path / "ok.yaml"
    path.write_text("max_sessions: 2\n")
    assert main(["--config", str(path), "--check-config"]) == 0
    assert "config OK" in capsys.readouterr().err
