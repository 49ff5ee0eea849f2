"""kind tier helpers: finding the cluster and the release, bounded waits, port-forward, the load pod."""

from __future__ import annotations

import os
import queue
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from kubernetes import client, config

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = os.environ.get("E2E_NAMESPACE", "codegen-mcp-e2e")
RELEASE = os.environ.get("E2E_RELEASE", "e2e")
CHART = Path(os.environ.get("E2E_CHART", str(REPO / "chart")))
API_TIMEOUT_S = 5

T = TypeVar("T")


def cluster_unreachable_reason() -> str | None:
    """None when a Kubernetes API server answers through the current kubeconfig, else one line why not."""
    try:
        config.load_kube_config()
    except (config.ConfigException, OSError) as exc:
        try:
            config.load_incluster_config()
        except config.ConfigException:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return f"no Kubernetes cluster: no usable kubeconfig ({first}); ci/kind-e2e.sh creates one"
    try:
        client.VersionApi().get_code(_request_timeout=API_TIMEOUT_S)
    except Exception as exc:  # any transport or API failure means "unreachable" for a skip reason
        host = client.Configuration.get_default_copy().host
        detail = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        return f"no Kubernetes cluster: the API server at {host} is unreachable ({detail})"
    return None


def wait_until(check: Callable[[], T | None], timeout_s: float, what: str, interval_s: float = 1.0) -> T:
    """Poll `check` until it returns a value other than None or False; fail naming `what` at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(interval_s)  # poll interval of a bounded wait on the cluster's state


@dataclass(frozen=True, slots=True)
class Release:
    """The chart release under test and typed API clients for it."""

    namespace: str
    name: str
    core: client.CoreV1Api
    apps: client.AppsV1Api
    policy: client.PolicyV1Api
    networking: client.NetworkingV1Api

    def selector(self, component: str) -> str:
        return (
            f"app.kubernetes.io/instance={self.name},app.kubernetes.io/name=codegen-mcp,"
            f"app.kubernetes.io/component={component}"
        )

    def coordinator(self) -> client.V1Deployment:
        selector = self.selector("coordinator")
        found = self.apps.list_namespaced_deployment(self.namespace, label_selector=selector)
        assert len(found.items) == 1, f"expected one coordinator Deployment, found {len(found.items)}"
        deployment: client.V1Deployment = found.items[0]
        return deployment

    def service_name(self) -> str:
        found = self.core.list_namespaced_service(self.namespace, label_selector=self.selector("coordinator"))
        names = [svc.metadata.name for svc in found.items if svc.spec.cluster_ip not in (None, "None")]
        assert names, "no coordinator Service (ClusterIP) in the release"
        return str(sorted(names, key=len)[0])

    def pods(self, component: str) -> list[client.V1Pod]:
        pods = self.core.list_namespaced_pod(self.namespace, label_selector=self.selector(component)).items
        return [pod for pod in pods if pod.metadata.deletion_timestamp is None]

    def rolled_out(self) -> bool:
        """What `kubectl rollout status` waits for: every replica updated, available, and no old pod left."""
        dep = self.coordinator()
        status, want = dep.status, dep.spec.replicas or 0
        settled = (status.observed_generation or 0) >= (dep.metadata.generation or 0)
        updated = (status.updated_replicas or 0) == want
        no_old = (status.replicas or 0) == want
        available = (status.available_replicas or 0) == want
        ready_pods = [pod for pod in self.pods("coordinator") if pod_ready(pod)]
        return settled and updated and no_old and available and len(ready_pods) == want

    def wait_rolled_out(self, timeout_s: float = 600) -> None:
        wait_until(self.rolled_out, timeout_s, f"the coordinator of {self.name} to finish rolling out")


def pod_ready(pod: client.V1Pod) -> bool:
    conditions = pod.status.conditions or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def kubectl() -> str:
    found = shutil.which("kubectl") or str(REPO / ".tools" / "bin" / "kubectl")
    if not Path(found).exists():
        pytest.fail("kubectl is needed for port-forward (ci/install-helm.sh installs it into .tools/bin)")
    return found


def helm() -> str:
    found = shutil.which("helm") or str(REPO / ".tools" / "bin" / "helm")
    if not Path(found).exists():
        pytest.fail("helm is needed for upgrades (ci/install-helm.sh installs it into .tools/bin)")
    return found


@contextmanager
def port_forward(namespace: str, target: str, remote_port: int) -> Iterator[int]:
    """`kubectl port-forward TARGET :REMOTE` on 127.0.0.1; yields the local port, stops kubectl after."""
    proc = subprocess.Popen(
        [kubectl(), "port-forward", "--namespace", namespace, "--address", "127.0.0.1",
         target, f":{remote_port}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    found: queue.Queue[int | None] = queue.Queue()

    def read_output() -> None:
        # Keeps draining kubectl's "Handling connection" lines so that its pipe never fills.
        assert proc.stdout is not None
        for line in proc.stdout:
            match = re.search(r"Forwarding from 127\.0\.0\.1:(\d+)", line)
            if match:
                found.put(int(match.group(1)))
        found.put(None)

    reader = threading.Thread(target=read_output, daemon=True)
    reader.start()
    try:
        try:
            port = found.get(timeout=60)
        except queue.Empty:
            port = None
        if port is None:
            pytest.fail(f"kubectl port-forward {target} did not start (exit {proc.poll()})")
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        # The reader ends at EOF once kubectl is gone; closing the pipe then avoids a ResourceWarning, which
        # pyproject's filterwarnings=error would turn into a failure of whichever test the GC runs in.
        reader.join(timeout=10)
        assert proc.stdout is not None
        proc.stdout.close()


LOAD_SCRIPT = r'''
import json, os, time, urllib.request
URL = os.environ["MCP_URL"].rstrip("/") + "/mcp"
PROTOCOL = "2026-07-28"
HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
           "MCP-Protocol-Version": PROTOCOL, "Mcp-Method": "tools/call", "Mcp-Name": "echo"}
STOP_FILE = os.environ.get("STOP_FILE", "/tmp/stop")
deadline = time.monotonic() + float(os.environ.get("MAX_SECONDS", "1800"))
calls, failures = 0, []
while not os.path.exists(STOP_FILE) and time.monotonic() < deadline:
    calls += 1
    marker = "call-%d" % calls
    body = {"jsonrpc": "2.0", "id": calls, "method": "tools/call",
            "params": {"name": "echo", "arguments": {"text": marker},
                       "_meta": {"io.modelcontextprotocol/protocolVersion": PROTOCOL,
                                 "io.modelcontextprotocol/clientCapabilities": {}}}}
    request = urllib.request.Request(URL, data=json.dumps(body).encode(), headers=HEADERS, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            raw = answer.read().decode()
        if marker not in raw or '"isError": true' in raw or '"isError":true' in raw:
            failures.append("%s: unexpected answer %s" % (marker, raw[:200]))
    except Exception as exc:
        failures.append("%s: %r" % (marker, exc))
    if calls == 1:
        print("load: first call answered", flush=True)
    time.sleep(float(os.environ.get("PAUSE_SECONDS", "0.05")))
stopped_by = "stop-file" if os.path.exists(STOP_FILE) else "deadline"
print("load-summary " + json.dumps({"calls": calls, "failed": len(failures), "errors": failures[:10],
                                    "stopped_by": stopped_by}), flush=True)
'''


def load_pod_manifest(name: str, image: str, url: str) -> dict[str, Any]:
    """A hardened pod, labelled as an allowed MCP client, calling echo through the Service until stopped."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": {"app": "llm-client", "app.kubernetes.io/component": "e2e-load"},
        },
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "securityContext": {
                "runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 1000,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [{
                "name": "load",
                "image": image,
                "imagePullPolicy": "IfNotPresent",
                "command": ["python3", "-c", LOAD_SCRIPT],
                "env": [{"name": "MCP_URL", "value": url}],
                "securityContext": {
                    "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                    "capabilities": {"drop": ["ALL"]},
                },
                "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
            }],
            "volumes": [{"name": "tmp", "emptyDir": {}}],
        },
    }
