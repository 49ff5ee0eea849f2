"""QA findings on the coordinator's command line, run as a real process."""

from __future__ import annotations

import subprocess
from pathlib import Path

from coordinator_fixtures import coordinator_command, hermetic_env


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*coordinator_command(), *args],
        capture_output=True,
        text=True,
        env=hermetic_env(),
        timeout=60,
        check=False,
    )


def test_check_config_reports_a_missing_auth_token_file_that_would_stop_the_server(tmp_path: Path) -> None:
    """--check-config exits 2 naming auth.tokens_file when auth is on and the file cannot be read."""
    config = tmp_path / "config.yaml"
    missing = tmp_path / "tokens"
    config.write_text(f"auth:\n  enabled: true\n  tokens_file: {missing}\n")
    done = run_cli("--check-config", "--config", str(config))
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"config.yaml: auth.tokens_file: auth token file {str(missing)!r} cannot be read: No such file or directory"
    )


def test_check_config_accepts_auth_with_a_well_formed_token_file(tmp_path: Path) -> None:
    """With a readable `name:token` file, --check-config still prints 'config OK' and exits 0."""
    tokens = tmp_path / "tokens"
    tokens.write_text("# callers\nci-bot:9f1c6c0d6a2e4b55a7d5c3e8\n")
    config = tmp_path / "config.yaml"
    config.write_text(f"auth:\n  enabled: true\n  tokens_file: {tokens}\n")
    done = run_cli("--check-config", "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("config OK")
