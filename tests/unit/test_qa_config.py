"""QA findings on config messages: what a platform engineer reads when a value is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from coordinator.config import ConfigError, load_config


def test_a_bare_number_for_a_duration_says_to_add_a_unit(tmp_path: Path) -> None:
    """`cleanup_interval: 5` (YAML reads a number) is reported as a duration missing its unit, not 'not a string'."""
    path = tmp_path / "config.yaml"
    path.write_text("session:\n  cleanup_interval: 5\nserver:\n  shutdown_grace: 1.5\n")
    with pytest.raises(ConfigError) as err:
        load_config(str(path), env={})
    assert err.value.errors == [
        "config.yaml: server.shutdown_grace: 1.5 is not a duration; give it a unit, e.g. '1.5s' "
        "(examples: 30m, 1h30m)",
        "config.yaml: session.cleanup_interval: 5 is not a duration; give it a unit, e.g. '5s' "
        "(examples: 30m, 1h30m)",
    ]
