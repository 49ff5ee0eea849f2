"""The chart on a real cluster: readiness and probes, MCP through the Service, rollouts, PDB, policies."""

from __future__ import annotations

import datetime
import json
import subprocess
import uuid
from typing import Any

import pytest
from e2e_support import (
    CHART,
    Release,
    helm,
    kubectl,
    load_pod_manifest,
    pod_ready,
    port_forward,
    wait_until,
)
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from mcp.client import Client
from mcp_types import CallToolResult

pytestmark = pytest.mark.slow


def payload(result: CallToolResult) -> dict[str, Any]:
    """The tool's structured result; a tool error fails the test with the tool's own message."""
    text = " ".join(getattr(block, "text", "") for block in result.content)
    assert not result.is_error, f"tool error: {text}"
    if isinstance(result.structured_content, dict):
        return result.structured_content
    parsed = json.loads(text)
    assert isinstance(parsed, dict)
    return parsed


def test_network_policy_objects_exist_for_coordinator_and_worker(release: Release) -> None:
    """The release carries a NetworkPolicy for the coordinator (ingress on http) and one for the worker."""
    policies = release.networking.list_namespaced_network_policy(
        release.namespace, label_selector=f"app.kubernetes.io/instance={release.name}"
    ).items
    by_component = {p.metadata.labels.get("app.kubernetes.io/component"): p for p in policies}
    assert {"coordinator", "worker"} <= set(by_component), [p.metadata.name for p in policies]
    coordinator = by_component["coordinator"]
    assert set(coordinator.spec.policy_types) == {"Ingress", "Egress"}
    ingress_ports = {
        str(port.port) for rule in coordinator.spec.ingress or [] for port in rule.ports or []
    }
    assert ingress_ports & {"8080", "http"}, ingress_ports
    worker_policy = by_component["worker"]
    assert "Ingress" in worker_policy.spec.policy_types


def test_coordinator_and_worker_pods_become_ready_and_their_probes_pass(release: Release) -> None:
    """Every pod of the release turns Ready with started, ready containers that never restarted."""
    release.wait_rolled_out()
    deployment = release.coordinator()
    container = deployment.spec.template.spec.containers[0]
    assert container.liveness_probe.http_get.path == "/healthz"
    assert container.readiness_probe.http_get.path == "/ready"

    workers = release.apps.list_namespaced_stateful_set(
        release.namespace, label_selector=release.selector("worker")
    ).items
    expected = {"coordinator": deployment.spec.replicas, "worker": sum(s.spec.replicas for s in workers)}
    for component, count in expected.items():
        pods = wait_until(
            lambda component=component, count=count: (
                ready if len(ready := [p for p in release.pods(component) if pod_ready(p)]) == count else None
            ),
            300,
            f"{count} Ready {component} pods",
        )
        for pod in pods:
            for status in pod.status.container_statuses:
                assert status.ready, f"{pod.metadata.name}/{status.name} is not ready"
                assert status.started is not False, f"{pod.metadata.name}/{status.name} has not started"
                where = f"{pod.metadata.name}/{status.name}"
                assert status.restart_count == 0, f"{where} restarted (did a probe fail?)"


async def test_mcp_tools_call_round_trip_through_the_service(release: Release) -> None:
    """session.create, fs.write, run.python and fs.read through a port-forward to the coordinator Service."""
    release.wait_rolled_out()
    with port_forward(release.namespace, f"svc/{release.service_name()}", 8080) as port:
        async with Client(f"http://127.0.0.1:{port}/mcp") as mcp:
            session_id = payload(await mcp.call_tool("session.create", {}))["session_id"]
            payload(await mcp.call_tool(
                "fs.write", {"session_id": session_id, "path": "data/n.txt", "content": "21"}
            ))
            ran = payload(await mcp.call_tool("run.python", {
                "session_id": session_id,
                "code": (
                    "n = int(open('data/n.txt').read())\n"
                    "open('data/out.txt', 'w').write(str(n * 2))\n"
                    "print(n)"
                ),
            }))
            assert ran["exit_code"] == 0, ran
            assert ran["stdout"].strip() == "21"
            read = payload(await mcp.call_tool("fs.read", {"session_id": session_id, "path": "data/out.txt"}))
            assert read["content"] == "42"


def test_pdb_refuses_an_eviction_below_min_available(release: Release) -> None:
    """Evictions succeed down to minAvailable healthy pods; the next one is refused with 429."""
    release.wait_rolled_out()
    budgets = release.policy.list_namespaced_pod_disruption_budget(
        release.namespace, label_selector=release.selector("coordinator")
    ).items
    assert len(budgets) == 1, "expected one PodDisruptionBudget for the coordinator"
    budget = budgets[0]
    min_available = budget.spec.min_available
    assert isinstance(min_available, int), f"minAvailable={min_available!r}: this test handles counts"
    replicas = release.coordinator().spec.replicas
    assert replicas > min_available, "the PDB test needs more replicas than minAvailable"

    def settled() -> client.V1PodDisruptionBudget | None:
        pdb = release.policy.read_namespaced_pod_disruption_budget(budget.metadata.name, release.namespace)
        status = pdb.status
        ok = status.current_healthy == replicas and status.disruptions_allowed == replicas - min_available
        return pdb if ok else None

    pdb = wait_until(settled, 300, "the PDB to count every coordinator pod healthy")
    pods = sorted(p.metadata.name for p in release.pods("coordinator") if pod_ready(p))
    allowed = pdb.status.disruptions_allowed

    def eviction(name: str) -> client.V1Eviction:
        return client.V1Eviction(
            api_version="policy/v1",
            kind="Eviction",
            metadata=client.V1ObjectMeta(name=name, namespace=release.namespace),
        )

    try:
        for name in pods[:allowed]:
            release.core.create_namespaced_pod_eviction(name, release.namespace, eviction(name))
        with pytest.raises(ApiException) as refused:
            release.core.create_namespaced_pod_eviction(
                pods[allowed], release.namespace, eviction(pods[allowed]), dry_run="All"
            )
        assert refused.value.status == 429, refused.value
        assert "disruption budget" in str(refused.value.body).lower()
    finally:
        release.wait_rolled_out()


def test_configmap_change_rolls_the_coordinator_pods(release: Release) -> None:
    """`helm upgrade` with a new config value changes the ConfigMap, its checksum, and replaces every pod."""
    release.wait_rolled_out()
    before = release.coordinator().spec.template.metadata.annotations or {}
    before_pods = {p.metadata.name for p in release.pods("coordinator")}
    new_max_age = f"{40 + uuid.uuid4().int % 19}m"
    upgrade = subprocess.run(
        [helm(), "upgrade", release.name, str(CHART), "--namespace", release.namespace, "--reuse-values",
         "--set", f"config.session.max_age={new_max_age}", "--wait", "--timeout", "10m"],
        capture_output=True, text=True, timeout=900, check=False,
    )
    assert upgrade.returncode == 0, upgrade.stderr

    configmaps = release.core.list_namespaced_config_map(
        release.namespace, label_selector=release.selector("coordinator")
    ).items
    assert any(new_max_age in "".join((cm.data or {}).values()) for cm in configmaps)
    after = release.coordinator().spec.template.metadata.annotations or {}
    assert after.get("checksum/config") and after.get("checksum/config") != before.get("checksum/config")
    release.wait_rolled_out()
    after_pods = {p.metadata.name for p in release.pods("coordinator")}
    assert before_pods.isdisjoint(after_pods), (before_pods, after_pods)


def test_rolling_restart_under_light_mcp_load_loses_no_call(release: Release) -> None:
    """An in-cluster client calling echo through the Service sees no failed call across a rolling restart."""
    release.wait_rolled_out()
    deployment = release.coordinator()
    image = deployment.spec.template.spec.containers[0].image
    url = f"http://{release.service_name()}.{release.namespace}.svc:8080"
    name = f"e2e-load-{uuid.uuid4().hex[:8]}"
    before_pods = {p.metadata.name for p in release.pods("coordinator")}
    release.core.create_namespaced_pod(release.namespace, load_pod_manifest(name, image, url))
    try:
        def logs() -> str:
            return str(release.core.read_namespaced_pod_log(name, release.namespace))

        def answering() -> bool:
            pod = release.core.read_namespaced_pod(name, release.namespace)
            if pod.status.phase in ("Failed", "Succeeded"):
                pytest.fail(f"the load pod ended early ({pod.status.phase}):\n{logs()}")
            return pod.status.phase == "Running" and "load: first call answered" in logs()

        wait_until(answering, 300, "the load pod's first answered call")

        restarted_at = datetime.datetime.now(datetime.UTC).isoformat()
        restart = {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": restarted_at}}}
        release.apps.patch_namespaced_deployment(
            deployment.metadata.name, release.namespace, {"spec": {"template": restart}}
        )

        def replaced() -> bool:
            now = {p.metadata.name for p in release.pods("coordinator")}
            return release.rolled_out() and before_pods.isdisjoint(now)

        wait_until(
            replaced,
            600,
            "the rolling restart to replace every coordinator pod",
        )

        # kubectl exec, not kubernetes.stream: no websocket client runs under pytest's filterwarnings=error.
        stop = subprocess.run(
            [kubectl(), "exec", "--namespace", release.namespace, name, "--",
             "python3", "-c", "open('/tmp/stop', 'w').close()"],
            capture_output=True, text=True, timeout=120, check=False,
        )
        assert stop.returncode == 0, f"could not stop the load pod: {stop.stderr}"

        def finished() -> bool:
            phase = release.core.read_namespaced_pod(name, release.namespace).status.phase
            return phase in ("Succeeded", "Failed")

        wait_until(
            finished,
            300,
            "the load pod to finish",
        )
        summary_lines = [line for line in logs().splitlines() if line.startswith("load-summary ")]
        assert summary_lines, logs()
        summary = json.loads(summary_lines[-1].removeprefix("load-summary "))
        # The load ran until the stop file, i.e. across the whole rollout, and every call was answered.
        assert summary["stopped_by"] == "stop-file", summary
        assert summary["calls"] > 1, summary
        assert summary["failed"] == 0, summary["errors"]
    finally:
        release.core.delete_namespaced_pod(name, release.namespace, grace_period_seconds=0)
