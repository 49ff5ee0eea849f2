"""Chart tier helpers: the helm binary, and renders of the chart cached per set of values."""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "chart"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
SCENARIOS = [path.name.removesuffix("-values.yaml") for path in CI_VALUES]
RELEASE = "rel"
NAMESPACE = "codegen"
FULLNAME = f"{RELEASE}-codegen-mcp"


def find_helm() -> str | None:
    """helm on PATH, else the copy ci/install-helm.sh puts in .tools/bin."""
    on_path = shutil.which("helm")
    if on_path:
        return on_path
    local = ROOT / ".tools" / "bin" / "helm"
    return str(local) if os.access(local, os.X_OK) else None


HELM = find_helm()


SKIP_REASON = "helm is not installed: run `bash ci/install-helm.sh .tools/bin` (make test does)"


@dataclass(frozen=True, slots=True)
class Rendered:
    """The documents of one `helm template`, with lookups by kind and name."""

    docs: tuple[dict[str, Any], ...]
    notes: str

    def kinds(self) -> list[str]:
        return [doc["kind"] for doc in self.docs]

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [doc for doc in self.docs if doc["kind"] == kind]

    def find(self, kind: str, name: str) -> dict[str, Any] | None:
        for doc in self.all(kind):
            if doc["metadata"]["name"] == name:
                return doc
        return None

    def get(self, kind: str, name: str) -> dict[str, Any]:
        doc = self.find(kind, name)
        assert doc is not None, (
            f"no {kind}/{name}; rendered: {[(d['kind'], d['metadata']['name']) for d in self.docs]}"
        )
        return doc

    def coordinator(self) -> dict[str, Any]:
        return self.get("Deployment", FULLNAME)

    def worker(self) -> dict[str, Any]:
        return self.get("StatefulSet", f"{FULLNAME}-worker")

    def config(self) -> dict[str, Any]:
        """The coordinator's rendered config.yaml, parsed."""
        return yaml.safe_load(self.get("ConfigMap", FULLNAME)["data"]["config.yaml"])


class RenderError(Exception):
    """helm template failed; the message is helm's stderr."""


def _helm_args(values_files: tuple[str, ...], sets: tuple[str, ...]) -> list[str]:
    args: list[str] = []
    for path in values_files:
        args += ["--values", path]
    for item in sets:
        args += ["--set", item]
    return args


@functools.cache
def _render(values_files: tuple[str, ...], sets: tuple[str, ...]) -> Rendered | RenderError:
    assert HELM is not None
    # `helm install --dry-run=client` renders like `helm template` and also prints NOTES.txt.
    proc = subprocess.run(
        [
            HELM,
            "install",
            RELEASE,
            str(CHART),
            "--namespace",
            NAMESPACE,
            "--dry-run=client",
            *_helm_args(values_files, sets),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        return RenderError(proc.stderr)
    sections = re.split(r"^(HOOKS|MANIFEST|NOTES):$\n?", proc.stdout, flags=re.MULTILINE)
    parts = dict(zip(sections[1::2], sections[2::2], strict=True))
    notes = parts.get("NOTES", "")
    docs = tuple(
        doc for doc in yaml.safe_load_all(parts.get("HOOKS", "") + "\n---\n" + parts["MANIFEST"]) if doc
    )
    return Rendered(docs=docs, notes=notes)


def render(*sets: str, values: tuple[str, ...] = ()) -> Rendered:
    """Render the chart with `--set` items (and values files); cached, so repeated renders are free."""
    if HELM is None:
        pytest.skip(SKIP_REASON)
    result = _render(tuple(values), tuple(sets))
    if isinstance(result, RenderError):
        raise result
    return result


def render_error(*sets: str, values: tuple[str, ...] = ()) -> str:
    """helm's stderr for values that must fail to render."""
    if HELM is None:
        pytest.skip(SKIP_REASON)
    result = _render(tuple(values), tuple(sets))
    assert isinstance(result, RenderError), f"rendering with {sets} {values} succeeded but must fail"
    return str(result)


def scenario(name: str) -> Rendered:
    """The render of chart/ci/<name>-values.yaml."""
    return render(values=(str(CHART / "ci" / f"{name}-values.yaml"),))


def containers(pod_owner: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every container and init container of a Deployment, StatefulSet or Pod."""
    spec = pod_owner["spec"]
    pod = spec["template"]["spec"] if "template" in spec else spec
    yield from pod.get("initContainers", [])
    yield from pod["containers"]


def pod_spec(pod_owner: dict[str, Any]) -> dict[str, Any]:
    spec = pod_owner["spec"]
    return spec["template"]["spec"] if "template" in spec else spec
