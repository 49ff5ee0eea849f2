"""values.yaml documentation, the generated README table, and NOTES.txt."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from types import ModuleType

import pytest
import yaml
from chartlib import CHART, FULLNAME, ROOT, render


def chart_readme() -> ModuleType:
    spec = importlib.util.spec_from_file_location("chart_readme", ROOT / "ci" / "chart-readme.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def all_keys(tree: dict, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    keys = set()
    for key, value in tree.items():
        keys.add((*prefix, key))
        if isinstance(value, dict):
            keys |= all_keys(value, (*prefix, key))
    return keys


def test_values_yaml_opens_with_the_schema_modeline() -> None:
    """Line 1 of values.yaml points editors at values.schema.json."""
    first = (CHART / "values.yaml").read_text().splitlines()[0]
    assert first == "# yaml-language-server: $schema=values.schema.json"


def test_every_values_key_has_a_doc_comment() -> None:
    """Every key of values.yaml, at every depth, carries a `# --` sentence."""
    text = (CHART / "values.yaml").read_text()
    docs = chart_readme().parse_docs(text)
    assert set(docs) == all_keys(yaml.safe_load(text))
    assert all(description for description in docs.values())


def test_doc_parser_refuses_an_undocumented_key() -> None:
    """The README generator fails on a key without `# --`, naming it."""
    module = chart_readme()
    with pytest.raises(module.UndocumentedKeyError, match=r"coordinator\.replicas has no '# --' comment"):
        module.parse_docs("# -- The coordinator.\ncoordinator:\n  replicas: 2\n")


def test_readme_values_table_matches_values_yaml() -> None:
    """chart/README.md's table is what ci/chart-readme.py generates from values.yaml now."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "ci" / "chart-readme.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    readme = (CHART / "README.md").read_text()
    assert "| `coordinator.replicas` | int | `2` |" in readme


def test_readme_documents_pod_security_admission_and_client_ip_affinity() -> None:
    """The README names the PSA labels that replace PodSecurityPolicy and when ClientIP is needed."""
    readme = (CHART / "README.md").read_text()
    assert "pod-security.kubernetes.io/enforce=restricted" in readme
    assert "PodSecurityPolicy was removed in Kubernetes 1.25" in readme
    assert "service.sessionAffinity=ClientIP" in readme and "handshake-era clients" in readme


PORT_FORWARD = re.compile(r"port-forward service/(?P<name>\S+) (?P<local>\d+):(?P<remote>\d+)")


@pytest.mark.parametrize("sets", [(), ("service.port=18080",)], ids=["default-port", "custom-port"])
def test_notes_port_forward_targets_the_services_http_port(sets: tuple[str, ...]) -> None:
    """NOTES forwards to the Service's http port, and its client URLs use the local end."""
    rendered = render(*sets)
    match = PORT_FORWARD.search(rendered.notes)
    assert match, rendered.notes
    service = rendered.get("Service", match["name"])
    http_port = next(p["port"] for p in service["spec"]["ports"] if p["name"] == "http")
    assert int(match["remote"]) == http_port
    assert f"http://127.0.0.1:{match['local']}/mcp" in rendered.notes
    assert f"http://127.0.0.1:{match['local']}/ready" in rendered.notes


def test_notes_warn_first_about_risky_values() -> None:
    """Warnings about auth, NetworkPolicy and the memory store come before the connection steps."""
    notes = render().notes
    first_warning = notes.index("WARNING: config.auth.enabled=false")
    assert first_warning < notes.index("is installed as")
    assert "WARNING: networkPolicy.enabled=false" in notes
    assert "WARNING: config.session.store=memory with more than one replica" in notes


def test_notes_drop_warnings_that_no_longer_apply() -> None:
    """The secure scenario has no auth or NetworkPolicy warning; its inspector command sends a token."""
    notes = render(values=(str(CHART / "ci" / "secure-values.yaml"),)).notes
    assert "config.auth.enabled=false" not in notes
    assert "networkPolicy.enabled=false" not in notes
    assert '--header "Authorization: Bearer YOUR_TOKEN"' in notes


def test_notes_explain_health_checks_and_helm_test() -> None:
    """NOTES give /ready, /healthz and the helm test command."""
    notes = render().notes
    assert "/healthz" in notes and "helm test rel" in notes
    assert f"service/{FULLNAME}" in notes
