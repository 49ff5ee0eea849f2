"""Every rendered document passes `kubernetes-validate --strict`; the ServiceMonitor passes its CRD schema."""

from __future__ import annotations

import copy
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate.utils
import pytest
import yaml
from chartlib import SCENARIOS, Rendered, render

HERE = Path(__file__).resolve().parent
CRD = yaml.safe_load((HERE / "crds" / "monitoring.coreos.com_servicemonitors.yaml").read_text())
OLDEST = "1.29.0"
NEWEST = kubernetes_validate.utils.latest_version()
# Kinds kubernetes-validate has no schema for, each checked by its own test below.
CUSTOM_KINDS = {"ServiceMonitor"}


def kubernetes_validate_cli() -> list[str]:
    """The kubernetes-validate console script of this interpreter's environment."""
    script = Path(sys.executable).with_name("kubernetes-validate")
    if script.exists():
        return [str(script)]
    found = shutil.which("kubernetes-validate")
    assert found, "kubernetes-validate is not installed (pip install -e '.[dev]')"
    return [found]


def write_docs(rendered: Rendered, directory: Path) -> list[Path]:
    paths = []
    for index, doc in enumerate(rendered.docs):
        if doc["kind"] in CUSTOM_KINDS:
            continue
        path = directory / f"{index:02d}-{doc['kind'].lower()}-{doc['metadata']['name']}.yaml"
        path.write_text(yaml.safe_dump(doc))
        paths.append(path)
    return paths


def test_newest_bundled_kubernetes_version_is_not_1_29() -> None:
    """The newest version kubernetes-validate bundles is a second, later target than 1.29."""
    assert kubernetes_validate.utils.major_minor(NEWEST) > "1.29"


@pytest.mark.parametrize("name", SCENARIOS)
def test_every_document_passes_kubernetes_validate_strict(
    scenarios: dict[str, Rendered], name: str, tmp_path: Path
) -> None:
    """`kubernetes-validate --strict` accepts every rendered document for 1.29 and the newest version."""
    paths = write_docs(scenarios[name], tmp_path)
    proc = subprocess.run(
        [*kubernetes_validate_cli(), "--strict", "--quiet", "-k", OLDEST, "-k", NEWEST, *map(str, paths)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # A kind without a bundled schema only warns; none of ours may be skipped that way.
    assert "WARN" not in proc.stdout, proc.stdout


def test_kubernetes_validate_strict_rejects_an_unknown_field(tmp_path: Path) -> None:
    """The strict validator is not vacuous: a misspelled Deployment field fails it."""
    deployment = copy.deepcopy(render().coordinator())
    deployment["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    path = tmp_path / "deployment.yaml"
    path.write_text(yaml.safe_dump(deployment))
    proc = subprocess.run(
        [*kubernetes_validate_cli(), "--strict", "--quiet", "-k", OLDEST, str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode != 0
    assert "livenesProbe" in proc.stdout


def strict_crd_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The CRD schema with unknown fields rejected, as the API server's strict field validation does.

    Objects that declare `properties` and no `additionalProperties` get `additionalProperties: false`;
    `metadata` is left open (the API server validates it against ObjectMeta).
    """
    schema = copy.deepcopy(schema)

    def close(node: Any) -> None:
        if isinstance(node, dict):
            if "properties" in node and "additionalProperties" not in node:
                node["additionalProperties"] = False
            for value in node.values():
                close(value)
        elif isinstance(node, list):
            for item in node:
                close(item)

    close(schema)
    return schema


def servicemonitor_validator() -> jsonschema.protocols.Validator:
    version = CRD["spec"]["versions"][0]
    assert version["name"] == "v1"
    schema = strict_crd_schema(version["schema"]["openAPIV3Schema"])
    return jsonschema.Draft7Validator(schema)


def test_servicemonitor_matches_the_prometheus_operator_crd(scenarios: dict[str, Rendered]) -> None:
    """The observability scenario's ServiceMonitor is valid against the vendored CRD's openAPIV3Schema."""
    monitors = scenarios["observability"].all("ServiceMonitor")
    assert len(monitors) == 1
    monitor = monitors[0]
    assert monitor["apiVersion"] == f"{CRD['spec']['group']}/v1"
    errors = sorted(servicemonitor_validator().iter_errors(monitor), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def test_crd_validation_rejects_a_bad_servicemonitor(scenarios: dict[str, Rendered]) -> None:
    """The CRD check is not vacuous: a bad interval and an unknown field both fail."""
    monitor = copy.deepcopy(scenarios["observability"].all("ServiceMonitor")[0])
    monitor["spec"]["endpoints"][0]["interval"] = "30 seconds"
    monitor["spec"]["endpoints"][0]["portName"] = "metrics"
    messages = [error.message for error in servicemonitor_validator().iter_errors(monitor)]
    assert any("does not match" in message for message in messages)
    assert any("portName" in message for message in messages)
