"""The container tier runs the images as the rendered chart does: same images, flags, config paths, ports."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from container_support import CHART_SECURITY, COORDINATOR_CONFIG, REPO, WORKER_CONFIG

CONFIG_PATHS = {"coordinator": COORDINATOR_CONFIG, "worker": WORKER_CONFIG}


def _helm() -> str:
    found = shutil.which("helm") or str(REPO / ".tools" / "bin" / "helm")
    if not Path(found).exists():
        pytest.skip("helm not installed (ci/install-helm.sh installs it into .tools/bin)")
    return found


@pytest.fixture(scope="module")
def workloads() -> dict[str, dict[str, Any]]:
    """The coordinator Deployment's and the worker StatefulSet's pod specs, from `helm template` defaults."""
    rendered = subprocess.run(
        [_helm(), "template", "contract", str(REPO / "chart")],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert rendered.returncode == 0, rendered.stderr
    pods: dict[str, dict[str, Any]] = {}
    for doc in yaml.safe_load_all(rendered.stdout):
        if doc and doc["kind"] in ("Deployment", "StatefulSet"):
            component = doc["metadata"]["labels"]["app.kubernetes.io/component"]
            pods[component] = doc["spec"]["template"]["spec"]
    assert set(pods) == {"coordinator", "worker"}
    return pods


def _container(pod: dict[str, Any], name: str) -> dict[str, Any]:
    matches = [c for c in pod["containers"] if c["name"] == name]
    assert matches, f"no container {name!r} in {[c['name'] for c in pod['containers']]}"
    return matches[0]


def _dockerfile(component: str) -> str:
    return (REPO / "docker" / component / "Dockerfile").read_text()


@pytest.mark.parametrize("component", ["coordinator", "worker"])
def test_chart_deploys_the_images_this_repository_builds(
    workloads: dict[str, dict[str, Any]], component: str
) -> None:
    """Image name and default tag (the package version), and the command, equal the image's ENTRYPOINT."""
    container = _container(workloads[component], component)
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert container["image"] == f"codegen-mcp-{component}:{version}"
    assert f'ENTRYPOINT ["{component}"]' in _dockerfile(component)
    assert container["command"] == [component]


@pytest.mark.parametrize("component", ["coordinator", "worker"])
def test_container_tier_flags_are_the_charts_security_context(
    workloads: dict[str, dict[str, Any]], component: str
) -> None:
    """--user, --read-only, --tmpfs /tmp, --cap-drop ALL, no-new-privileges mirror the rendered pod spec."""
    pod = workloads[component]
    context = {**pod.get("securityContext", {}), **_container(pod, component)["securityContext"]}
    flags = " ".join(CHART_SECURITY)
    assert f"--user {context['runAsUser']}:{context['runAsGroup']}" in flags
    assert context["readOnlyRootFilesystem"] is True
    assert "--read-only" in flags
    assert context["capabilities"]["drop"] == ["ALL"]
    assert "--cap-drop ALL" in flags
    assert context["allowPrivilegeEscalation"] is False
    assert "--security-opt no-new-privileges" in flags
    mounts = {m["mountPath"] for m in _container(pod, component)["volumeMounts"]}
    assert "/tmp" in mounts
    assert "--tmpfs /tmp" in flags
    assert re.search(r"^USER 1000:1000$", _dockerfile(component), re.MULTILINE)


@pytest.mark.parametrize("component", ["coordinator", "worker"])
def test_config_path_and_ports_match_the_chart(workloads: dict[str, dict[str, Any]], component: str) -> None:
    """--config names the read-only ConfigMap mount the tier uses; every container port is EXPOSEd."""
    container = _container(workloads[component], component)
    config_path = CONFIG_PATHS[component]
    assert container["args"] == ["--config", config_path]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    config_mount = mounts[str(PurePosixPath(config_path).parent)]
    assert config_mount.get("readOnly") is True
    exposed = {int(p) for line in re.findall(r"^EXPOSE (.+)$", _dockerfile(component), re.MULTILINE)
               for p in line.split()}
    assert {p["containerPort"] for p in container["ports"]} == exposed
