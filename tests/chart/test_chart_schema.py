"""values.schema.json: the embedded config schemas stay identical to schemas/, and helm enforces them."""

from __future__ import annotations

import json
import subprocess
import sys

import jsonschema
import pytest
import yaml
from chartlib import CHART, FULLNAME, ROOT, SCENARIOS, Rendered, render, render_error

VALUES_SCHEMA = json.loads((CHART / "values.schema.json").read_text())
CONFIG_SCHEMA = json.loads((ROOT / "schemas" / "config.schema.json").read_text())
WORKER_SCHEMA_PATH = ROOT / "schemas" / "worker-config.schema.json"


def test_embedded_config_schema_is_identical_to_schemas_config() -> None:
    """properties.config of values.schema.json equals schemas/config.schema.json exactly."""
    assert VALUES_SCHEMA["properties"]["config"] == CONFIG_SCHEMA


def test_embedded_worker_schema_is_identical_to_schemas_worker_config() -> None:
    """properties.worker.properties.config equals schemas/worker-config.schema.json exactly."""
    if not WORKER_SCHEMA_PATH.exists():
        pytest.skip("schemas/worker-config.schema.json does not exist yet")
    embedded = VALUES_SCHEMA["properties"]["worker"]["properties"]["config"]
    assert embedded == json.loads(WORKER_SCHEMA_PATH.read_text())


def test_render_values_schema_script_reports_the_file_fresh() -> None:
    """ci/render-values-schema.py --check finds nothing to rewrite."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "ci" / "render-values-schema.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def test_root_schema_stays_open_and_declares_global() -> None:
    """The root has no additionalProperties: false, since Helm injects `global`, and declares it."""
    assert VALUES_SCHEMA.get("additionalProperties", True) is not False
    assert "global" in VALUES_SCHEMA["properties"]


def test_nested_chart_sections_are_closed() -> None:
    """Every top-level section but config and global rejects unknown keys."""
    for key, prop in VALUES_SCHEMA["properties"].items():
        if prop.get("type") == "object" and key not in ("global",):
            assert prop.get("additionalProperties") is False, key


def test_global_values_are_accepted() -> None:
    """A parent chart's `global` values render."""
    render("global.imageRegistry=registry.example.com")


def test_bad_duration_is_rejected_with_the_schema_message() -> None:
    """A bad duration fails `helm template` at its JSON path, through the embedded $ref to $defs."""
    error = render_error("config.server.shutdown_grace=10x")
    assert "/config/server/shutdown_grace" in error
    assert "'10x' does not match pattern" in error


def test_bad_nested_duration_is_rejected() -> None:
    """A bad duration deeper in the tree (session.redis) is rejected too."""
    error = render_error("config.session.redis.connect_timeout=soon")
    assert "/config/session/redis/connect_timeout" in error


def test_unknown_config_key_is_rejected() -> None:
    """An unknown key under config fails with additional properties not allowed."""
    error = render_error("config.server.colour=blue")
    assert "/config/server" in error
    assert "'colour' not allowed" in error


def test_unknown_top_level_config_section_is_rejected() -> None:
    """An unknown config section fails too."""
    error = render_error("config.bogus.key=1")
    assert "'bogus' not allowed" in error


def test_unknown_worker_config_key_is_rejected() -> None:
    """worker.config is validated against the worker's schema."""
    error = render_error("worker.config.colour=blue")
    assert "/worker/config" in error and "'colour' not allowed" in error


def test_unknown_chart_key_is_rejected() -> None:
    """A typo in a chart section fails instead of being ignored."""
    error = render_error("coordinator.replica=3")
    assert "/coordinator" in error and "'replica' not allowed" in error


def test_unknown_resource_preset_is_rejected_with_the_allowed_set() -> None:
    """coordinator.resourcesPreset accepts none, small, medium and large only."""
    error = render_error("coordinator.resourcesPreset=huge")
    assert "/coordinator/resourcesPreset" in error
    assert "'none', 'small', 'medium', 'large'" in error


@pytest.mark.parametrize("name", SCENARIOS)
def test_rendered_config_validates_against_the_config_schema(
    scenarios: dict[str, Rendered], name: str
) -> None:
    """The coordinator's rendered config.yaml is valid against schemas/config.schema.json."""
    jsonschema.Draft202012Validator(CONFIG_SCHEMA).validate(scenarios[name].config())


@pytest.mark.parametrize("name", [n for n in SCENARIOS if n != "minimal"])
def test_rendered_worker_config_validates_against_the_worker_schema(
    scenarios: dict[str, Rendered], name: str
) -> None:
    """The worker's rendered config.yaml is valid against schemas/worker-config.schema.json."""
    if not WORKER_SCHEMA_PATH.exists():
        pytest.skip("schemas/worker-config.schema.json does not exist yet")
    config = yaml.safe_load(scenarios[name].get("ConfigMap", f"{FULLNAME}-worker")["data"]["config.yaml"])
    jsonschema.Draft202012Validator(json.loads(WORKER_SCHEMA_PATH.read_text())).validate(config)
