"""The pod contract: the rendered pods' command, args, env, mounted files and ports run the real processes.

From the rendered Deployment and StatefulSet, the coordinator and the worker are started locally with exactly
the command, args and env they specify, and with their ConfigMap and Secret volumes written to a temporary
root. Only what a laptop cannot give is rewritten: HOST becomes 127.0.0.1, each container port a free port,
each mount path a directory under the temporary root, and the worker headless Service's DNS name 127.0.0.1.
Then the probes are run as the kubelet would, and the helm test pod's own command makes an MCP call on the
port the Service targets.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import yaml
from chartlib import FULLNAME, SCENARIOS, Rendered, pod_spec, render, scenario

BIN = Path(sys.executable).parent
STARTUP_TIMEOUT = 60.0
# Pod fields the kubelet fills in that a local run must invent.
FIELD_REFS = {"metadata.name": f"{FULLNAME}-0", "metadata.namespace": "codegen"}


def console_script(name: str) -> str | None:
    local = BIN / name
    if local.exists():
        return str(local)
    return shutil.which(name)


def script_works(name: str, *args: str) -> bool:
    path = console_script(name)
    if path is None:
        return False
    try:
        proc = subprocess.run([path, *args], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


COORDINATOR_READY = script_works("coordinator", "--version")
WORKER_READY = script_works("worker", "--help")
needs_coordinator = pytest.mark.skipif(
    not COORDINATOR_READY,
    reason="the `coordinator` console script is missing or `coordinator --version` fails",
)
needs_worker = pytest.mark.skipif(
    not WORKER_READY, reason="the `worker` console script is missing or `worker --help` fails"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LocalPod:
    """One rendered container, materialized under a temporary root with its ports remapped."""

    owner: dict[str, Any]
    container: dict[str, Any]
    rendered: Rendered
    root: Path
    ports: dict[int, int] = field(default_factory=dict)  # containerPort -> local port
    named: dict[str, int] = field(default_factory=dict)  # port name -> containerPort

    def __post_init__(self) -> None:
        for port in self.container.get("ports", []):
            self.ports[port["containerPort"]] = free_port()
            self.named[port["name"]] = port["containerPort"]
        mount_paths = sorted(
            (m["mountPath"] for m in self.container.get("volumeMounts", [])), key=len, reverse=True
        )
        self._mount_pattern = (
            re.compile(r"(?<![\w.-])(" + "|".join(map(re.escape, mount_paths)) + r")(?=/|$|[\s\"'])")
            if mount_paths
            else None
        )

    def local_path(self, path: str) -> str:
        """A container path rewritten into the temporary root if it lies under a mount."""
        if self._mount_pattern is None:
            return path
        return self._mount_pattern.sub(lambda m: str(self.root) + m.group(1), path)

    def local_port(self, port: int | str) -> int:
        return self.ports[self.named[port] if isinstance(port, str) else port]

    def materialize(self, rewrite_config: Any = None) -> None:
        """Write every mounted ConfigMap and Secret file; create every other mount as an empty directory."""
        volumes = {v["name"]: v for v in pod_spec(self.owner).get("volumes", [])}
        for mount in self.container.get("volumeMounts", []):
            target = Path(self.local_path(mount["mountPath"]))
            target.mkdir(parents=True, exist_ok=True)
            volume = volumes.get(mount["name"])
            if volume is None:
                continue  # a volumeClaimTemplate: an empty directory stands in for the claim
            if "projected" in volume:
                sources = volume["projected"]["sources"]
            elif "configMap" in volume or "secret" in volume:
                sources = [volume]
            else:
                continue
            for source in sources:
                for path, content in self._files(source):
                    text = rewrite_config(content) if path == "config.yaml" and rewrite_config else content
                    (target / path).write_text(text)

    def _files(self, source: dict[str, Any]) -> Iterator[tuple[str, str]]:
        if "configMap" in source:
            ref = source["configMap"]
            data = self.rendered.get("ConfigMap", ref["name"])["data"]
        else:
            ref = source["secret"]
            name = ref.get("name", ref.get("secretName"))
            secret = self.rendered.find("Secret", name)
            if secret is None:
                # An existingSecret the operator creates: a stand-in value at the same path.
                data = {item["key"]: "stand-in-for-an-existing-secret" for item in ref["items"]}
            else:
                data = secret.get("stringData", {})
        items = ref.get("items") or [{"key": key, "path": key} for key in data]
        for item in items:
            content = data[item["key"]]
            yield item["path"], self.local_path(content) if item["path"] == "config.yaml" else content

    def environment(self) -> dict[str, str]:
        """The container env with HOST on loopback and every container port swapped for its local port."""
        env = {
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "HOME": str(self.root),
            "LANG": "C.UTF-8",
        }
        for item in self.container.get("env", []):
            if "value" in item:
                env[item["name"]] = item["value"]
            else:
                env[item["name"]] = FIELD_REFS[item["valueFrom"]["fieldRef"]["fieldPath"]]
        assert env.get("HOST") == "0.0.0.0", "the container must listen on all interfaces"
        env["HOST"] = "127.0.0.1"
        for name, value in list(env.items()):
            if name.endswith("PORT") and value.isdigit():
                assert int(value) in self.ports, f"{name}={value} is not a declared containerPort"
                env[name] = str(self.ports[int(value)])
        # Every declared containerPort must be the one the process is told to listen on.
        told = {
            int(item["value"])
            for item in self.container["env"]
            if item["name"].endswith("PORT") and "value" in item
        }
        assert set(self.ports) == told, f"containerPorts {set(self.ports)} but the env sets {told}"
        return env

    def argv(self) -> list[str]:
        return [self.local_path(arg) for arg in [*self.container["command"], *self.container.get("args", [])]]


def kubelet_probe(pod: LocalPod, probe: dict[str, Any]) -> tuple[bool, str]:
    """One HTTP probe, judged as the kubelet judges it: 200-399 succeeds."""
    get = probe["httpGet"]
    url = f"http://127.0.0.1:{pod.local_port(get['port'])}{get['path']}"
    try:
        with urllib.request.urlopen(url, timeout=probe.get("timeoutSeconds", 1)) as answer:
            return 200 <= answer.status < 400, f"{url} -> {answer.status}"
    except urllib.error.HTTPError as exc:
        return False, f"{url} -> {exc.code} {exc.read()[:300]!r}"
    except OSError as exc:
        return False, f"{url} -> {exc}"


def wait_until_probe_passes(proc: subprocess.Popen[bytes], pod: LocalPod, probe_name: str, log: Path) -> None:
    """Poll a declared probe until it passes; fail early if the process dies, and after STARTUP_TIMEOUT."""
    probe = pod.container[probe_name]
    last = ""
    attempts = int(STARTUP_TIMEOUT / 0.2)
    for _ in range(attempts):
        ok, last = kubelet_probe(pod, probe)
        if ok:
            return
        try:
            proc.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            continue
        pytest.fail(
            f"{pod.container['name']} exited {proc.returncode} before {probe_name} passed:\n{log.read_text()}"
        )
    pytest.fail(f"{pod.container['name']} {probe_name} never passed ({last}):\n{log.read_text()[-4000:]}")


@contextmanager
def started(pod: LocalPod, name: str) -> Iterator[subprocess.Popen[bytes]]:
    log = pod.root / f"{name}.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            pod.argv(), env=pod.environment(), cwd=pod.root, stdout=sink, stderr=subprocess.STDOUT
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


@contextmanager
def redis_server(
    port: int, coordinator: LocalPod, settings: dict[str, Any], tmp_path: Path
) -> Iterator[None]:
    """A real redis-server on loopback, with the password the pod reads from its mounted password_file."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (ci/install-deps.sh installs it)")
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    if "password_file" in settings:
        password = Path(coordinator.local_path(settings["password_file"])).read_text().strip()
        args += ["--requirepass", password]
    proc = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(int(STARTUP_TIMEOUT / 0.1)):
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            try:
                proc.wait(timeout=0.1)
            except subprocess.TimeoutExpired:
                continue
            pytest.fail(f"redis-server exited {proc.returncode}")
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def container_named(owner: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in pod_spec(owner)["containers"] if c["name"] == name)


def run_pod_contract(rendered: Rendered, tmp_path: Path, *, drain: bool) -> None:
    worker_owner = render().worker() if not rendered.all("StatefulSet") else rendered.worker()
    worker_source = rendered if rendered.all("StatefulSet") else render()
    worker = LocalPod(
        worker_owner, container_named(worker_owner, "worker"), worker_source, tmp_path / "worker"
    )
    worker.materialize()
    worker_port = worker.local_port("http")

    redis_port = free_port()

    def point_at_local_worker(text: str) -> str:
        config = yaml.safe_load(text)
        store = config.get("session", {})
        if store.get("store") == "redis":
            # An external service, like the worker's DNS name: the same URL, on a local redis-server.
            url = urlsplit(store["redis"]["url"])
            store["redis"]["url"] = urlunsplit(url._replace(netloc=f"127.0.0.1:{redis_port}"))
        section = config.setdefault("worker", {})
        if "discovery" in section:
            assert section["discovery"]["dns_name"].endswith(".svc.cluster.local")
            section["discovery"].update({"dns_name": "127.0.0.1", "port": worker_port})
        else:
            assert section["url"].startswith("http"), section
            section["url"] = f"http://127.0.0.1:{worker_port}"
        return yaml.safe_dump(config)

    deployment = rendered.coordinator()
    coordinator = LocalPod(
        deployment, container_named(deployment, "coordinator"), rendered, tmp_path / "coordinator"
    )
    coordinator.materialize(rewrite_config=point_at_local_worker)

    with ExitStack() as stack:
        rendered_config = yaml.safe_load(rendered.get("ConfigMap", FULLNAME)["data"]["config.yaml"])
        redis_settings = rendered_config.get("session", {}).get("redis")
        if redis_settings:
            stack.enter_context(redis_server(redis_port, coordinator, redis_settings, tmp_path))
        # Both start at once, as pods do; the coordinator turns ready once it reaches the worker.
        worker_proc = stack.enter_context(started(worker, "worker"))
        proc = stack.enter_context(started(coordinator, "coordinator"))
        log = coordinator.root / "coordinator.log"
        wait_until_probe_passes(worker_proc, worker, "readinessProbe", worker.root / "worker.log")
        assert kubelet_probe(worker, worker.container["livenessProbe"])[0]
        wait_until_probe_passes(proc, coordinator, "startupProbe", log)
        wait_until_probe_passes(proc, coordinator, "livenessProbe", log)
        wait_until_probe_passes(proc, coordinator, "readinessProbe", log)

        # The Service's ports: http carries MCP, metrics serves what the ServiceMonitor scrapes.
        service = rendered.get("Service", FULLNAME)
        ports = {p["name"]: coordinator.local_port(p["targetPort"]) for p in service["spec"]["ports"]}
        with urllib.request.urlopen(f"http://127.0.0.1:{ports['metrics']}/metrics", timeout=10) as answer:
            assert answer.status == 200

        # The helm test pod's own command, pointed at the Service's target port.
        test_pod = rendered.get("Pod", f"{FULLNAME}-test-mcp-call")
        tester = LocalPod(test_pod, test_pod["spec"]["containers"][0], rendered, tmp_path / "tester")
        tester.materialize()
        env = {"PATH": os.environ.get("PATH", ""), "LANG": "C.UTF-8"}
        env |= {e["name"]: tester.local_path(e["value"]) for e in tester.container["env"]}
        env["MCP_URL"] = f"http://127.0.0.1:{ports['http']}"
        call = subprocess.run(
            tester.argv(), env=env, capture_output=True, text=True, timeout=120, check=False
        )
        assert call.returncode == 0, f"{call.stdout}\n{call.stderr}\n{log.read_text()[-4000:]}"
        assert "tools/call echo:" in call.stdout

        audit = yaml.safe_load(rendered.get("ConfigMap", FULLNAME)["data"]["config.yaml"]).get("audit", {})
        if audit.get("backend") == "file":
            audit_file = Path(coordinator.local_path(audit["file_path"]))
            assert audit_file.exists(), f"no audit file at {audit_file}"
            assert "echo" in audit_file.read_text()

        if drain:
            # SIGTERM, as the kubelet sends after preStop: the coordinator drains and exits 0.
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=120) == 0, log.read_text()[-4000:]


@needs_coordinator
@needs_worker
@pytest.mark.slow
@pytest.mark.parametrize("name", SCENARIOS)
def test_rendered_pods_serve_probes_and_an_mcp_call(name: str, tmp_path: Path) -> None:
    """The coordinator and worker, started exactly as rendered, pass their probes and answer an MCP call."""
    # The SIGTERM drain lasts config.server.drain_delay; one scenario proves the exit code.
    run_pod_contract(scenario(name), tmp_path, drain=name == "default")


@needs_coordinator
@pytest.mark.parametrize("name", SCENARIOS)
def test_rendered_config_passes_coordinator_check_config(name: str, tmp_path: Path) -> None:
    """The rendered command and args plus `--check-config` accept every scenario's mounted config.yaml."""
    rendered = scenario(name)
    deployment = rendered.coordinator()
    coordinator = LocalPod(deployment, container_named(deployment, "coordinator"), rendered, tmp_path)
    coordinator.materialize()
    proc = subprocess.run(
        [*coordinator.argv(), "--check-config"],
        env=coordinator.environment(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@needs_worker
@pytest.mark.parametrize("name", [n for n in SCENARIOS if n != "minimal"])
def test_rendered_worker_config_passes_worker_check_config(name: str, tmp_path: Path) -> None:
    """`worker --check-config` accepts the worker's rendered config.yaml."""
    config = tmp_path / "config.yaml"
    config.write_text(scenario(name).get("ConfigMap", f"{FULLNAME}-worker")["data"]["config.yaml"])
    proc = subprocess.run(
        [str(console_script("worker")), "--check-config", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
