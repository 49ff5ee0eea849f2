"""Every option's objects render when enabled and vanish when disabled, with the right ports, selectors,
labels and securityContext."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
import yaml
from chartlib import CHART, FULLNAME, NAMESPACE, SCENARIOS, Rendered, containers, pod_spec, render

WORKER = f"{FULLNAME}-worker"
HEADLESS_FQDN = f"{FULLNAME}-worker-headless.{NAMESPACE}.svc.cluster.local"
STANDARD_LABELS = (
    "helm.sh/chart",
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
)


def container(owner: dict[str, Any], name: str) -> dict[str, Any]:
    for item in containers(owner):
        if item["name"] == name:
            return item
    raise AssertionError(f"no container {name}")


def env(item: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in item.get("env", [])}


def mounts(item: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["mountPath"]: m for m in item.get("volumeMounts", [])}


def volumes(owner: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in pod_spec(owner).get("volumes", [])}


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


# --- every object -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SCENARIOS)
def test_every_object_carries_the_standard_labels_and_namespace(
    scenarios: dict[str, Rendered], name: str
) -> None:
    """Every object has the recommended app.kubernetes.io labels and the release namespace."""
    for doc in scenarios[name].docs:
        labels = doc["metadata"].get("labels", {})
        for label in STANDARD_LABELS:
            assert label in labels, f"{doc['kind']}/{doc['metadata']['name']} lacks {label}"
        assert doc["metadata"]["namespace"] == NAMESPACE


RESTRICTED_VOLUME_TYPES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


def assert_restricted(owner: dict[str, Any]) -> None:
    """The Pod Security Standard "restricted" profile, checked field by field."""
    spec = pod_spec(owner)
    where = f"{owner['kind']}/{owner['metadata']['name']}"
    for host in ("hostNetwork", "hostPID", "hostIPC"):
        assert not spec.get(host), where
    pod_sc = spec.get("securityContext", {})
    assert pod_sc.get("runAsNonRoot") is True, where
    assert pod_sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
    for volume in spec.get("volumes", []):
        kinds = set(volume) - {"name"}
        assert kinds <= RESTRICTED_VOLUME_TYPES, f"{where} volume {volume['name']}: {kinds}"
    for item in containers(owner):
        sc = item.get("securityContext", {})
        label = f"{where} container {item['name']}"
        assert sc.get("allowPrivilegeEscalation") is False, label
        assert sc.get("capabilities", {}).get("drop") == ["ALL"], label
        assert not sc.get("capabilities", {}).get("add"), label
        assert not sc.get("privileged"), label
        assert sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True, label
        assert sc.get("runAsUser", pod_sc.get("runAsUser")) != 0, label
        assert sc.get("readOnlyRootFilesystem") is True, label
        assert "ports" not in item or all("hostPort" not in p for p in item["ports"]), label


@pytest.mark.parametrize("name", SCENARIOS)
def test_every_pod_meets_the_restricted_pod_security_profile(
    scenarios: dict[str, Rendered], name: str
) -> None:
    """Coordinator, worker, FluentBit and test pods all meet Pod Security "restricted"."""
    rendered = scenarios[name]
    owners = rendered.all("Deployment") + rendered.all("StatefulSet") + rendered.all("Pod")
    assert owners
    for owner in owners:
        assert_restricted(owner)


@pytest.mark.parametrize("name", SCENARIOS)
def test_every_service_selects_pods_the_chart_renders(scenarios: dict[str, Rendered], name: str) -> None:
    """Each Service's selector matches the pod template labels of exactly one workload."""
    rendered = scenarios[name]
    workloads = rendered.all("Deployment") + rendered.all("StatefulSet")
    for service in rendered.all("Service"):
        matching = [
            w
            for w in workloads
            if selects(service["spec"]["selector"], w["spec"]["template"]["metadata"]["labels"])
        ]
        assert len(matching) == 1, service["metadata"]["name"]
        names = {p["name"] for c in containers(matching[0]) for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in names, (service["metadata"]["name"], port)


@pytest.mark.parametrize("name", SCENARIOS)
def test_workload_selectors_match_their_pod_templates(scenarios: dict[str, Rendered], name: str) -> None:
    """Deployment and StatefulSet selectors match their own template labels and not each other's."""
    rendered = scenarios[name]
    workloads = rendered.all("Deployment") + rendered.all("StatefulSet")
    for workload in workloads:
        selector = workload["spec"]["selector"]["matchLabels"]
        for other in workloads:
            matched = selects(selector, other["spec"]["template"]["metadata"]["labels"])
            assert matched == (other is workload)


# --- coordinator Deployment ---------------------------------------------------------------------------


def test_coordinator_runs_the_contract_command_args_env_and_ports() -> None:
    """The coordinator container runs `coordinator --config /etc/codegen-mcp/config.yaml` on 8080 and 9090."""
    deployment = render().coordinator()
    main = container(deployment, "coordinator")
    assert main["image"] == "codegen-mcp-coordinator:0.1.0"
    assert main["command"] == ["coordinator"]
    assert main["args"] == ["--config", "/etc/codegen-mcp/config.yaml"]
    assert {k: v for k, v in env(main).items() if k in ("HOST", "PORT", "METRICS_PORT")} == {
        "HOST": "0.0.0.0",
        "PORT": "8080",
        "METRICS_PORT": "9090",
    }
    assert {p["name"]: p["containerPort"] for p in main["ports"]} == {"http": 8080, "metrics": 9090}
    assert mounts(main)["/etc/codegen-mcp"]["readOnly"] is True
    config_volume = volumes(deployment)["config"]["projected"]["sources"][0]["configMap"]
    assert config_volume["name"] == FULLNAME
    assert config_volume["items"] == [{"key": "config.yaml", "path": "config.yaml"}]


def test_image_tag_defaults_to_app_version_and_can_be_overridden() -> None:
    """coordinator.image.tag defaults to appVersion; a set tag and repository win."""
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert container(render().coordinator(), "coordinator")["image"].endswith(":" + chart["appVersion"])
    custom = render(
        "coordinator.image.repository=reg.example/coord", "coordinator.image.tag=9.9"
    ).coordinator()
    assert container(custom, "coordinator")["image"] == "reg.example/coord:9.9"


def test_coordinator_defaults_to_two_replicas_with_a_surge_only_rollout() -> None:
    """replicas 2; RollingUpdate with maxSurge 1 and maxUnavailable 0."""
    spec = render().coordinator()["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }


def test_probes_use_healthz_for_liveness_and_ready_for_readiness() -> None:
    """Liveness GETs /healthz and readiness /ready, both on the http port."""
    main = container(render().coordinator(), "coordinator")
    assert main["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert main["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert main["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}


def test_termination_grace_exceeds_prestop_drain_grace_and_tool_timeout() -> None:
    """A preStop hook runs; the grace period exceeds preStop + shutdown_grace + drain_delay + tool_timeout."""
    rendered = render()
    spec = pod_spec(rendered.coordinator())
    main = container(rendered.coordinator(), "coordinator")
    assert main["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "5"]
    config = rendered.config()
    assert config["server"]["drain_delay"] == "5s"
    assert spec["terminationGracePeriodSeconds"] > 5 + 30 + 5 + 300


def test_checksum_annotation_follows_the_config_only() -> None:
    """checksum/config changes with config and stays put when unrelated values change."""

    def checksum(rendered: Rendered) -> str:
        return rendered.coordinator()["spec"]["template"]["metadata"]["annotations"]["checksum/config"]

    base = checksum(render())
    assert checksum(render("config.server.log_level=debug")) != base
    assert checksum(render("service.annotations.team=mcp")) == base
    assert checksum(render("coordinator.podLabels.team=mcp")) == base


def test_prometheus_annotations_are_on_by_default_and_can_be_turned_off() -> None:
    """prometheus.io/scrape, port 9090 and path /metrics; absent with prometheusAnnotations=false."""
    annotations = render().coordinator()["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == "9090"
    assert annotations["prometheus.io/path"] == "/metrics"
    off = render("coordinator.prometheusAnnotations=false").coordinator()
    assert "prometheus.io/scrape" not in off["spec"]["template"]["metadata"]["annotations"]


def test_root_filesystem_is_read_only_with_an_emptydir_tmp() -> None:
    """readOnlyRootFilesystem, and /tmp is an emptyDir."""
    deployment = render().coordinator()
    main = container(deployment, "coordinator")
    assert main["securityContext"]["readOnlyRootFilesystem"] is True
    assert "emptyDir" in volumes(deployment)[mounts(main)["/tmp"]["name"]]


def test_pod_security_context_is_the_seeds_plus_seccomp() -> None:
    """runAsNonRoot, uid/gid/fsGroup 1000, seccomp RuntimeDefault on the pod."""
    spec = pod_spec(render().coordinator())
    assert spec["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 1000,
        "runAsGroup": 1000,
        "fsGroup": 1000,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def test_replicas_spread_by_preferred_hostname_anti_affinity() -> None:
    """The default is a preferred podAntiAffinity on kubernetes.io/hostname over coordinator pods."""
    deployment = render().coordinator()
    terms = pod_spec(deployment)["affinity"]["podAntiAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"
    ]
    term = terms[0]["podAffinityTerm"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    assert "affinity" not in pod_spec(render("coordinator.podAntiAffinity=none").coordinator())


@pytest.mark.parametrize(
    ("preset", "requests", "limits"),
    [
        ("small", {"cpu": "100m", "memory": "128Mi"}, {"cpu": "500m", "memory": "256Mi"}),
        ("medium", {"cpu": "250m", "memory": "256Mi"}, {"cpu": "1", "memory": "512Mi"}),
        ("large", {"cpu": "500m", "memory": "512Mi"}, {"cpu": "2", "memory": "1Gi"}),
    ],
)
def test_resource_presets_render_their_table_values(preset: str, requests: dict, limits: dict) -> None:
    """Each preset renders the documented requests and limits."""
    main = container(render(f"coordinator.resourcesPreset={preset}").coordinator(), "coordinator")
    assert main["resources"] == {"requests": requests, "limits": limits}


def test_explicit_resources_replace_the_preset_and_none_renders_no_resources() -> None:
    """coordinator.resources wins over the preset; preset none renders no resources."""
    main = container(render("coordinator.resources.requests.cpu=42m").coordinator(), "coordinator")
    assert main["resources"] == {"requests": {"cpu": "42m"}}
    bare = container(render("coordinator.resourcesPreset=none").coordinator(), "coordinator")
    assert "resources" not in bare


def test_extension_points_reach_the_pod() -> None:
    """extraEnv, extraEnvFrom, extraVolumes, extraVolumeMounts, extraContainers, imagePullSecrets,
    nodeSelector, tolerations and topologySpreadConstraints all render."""
    deployment = render(
        "coordinator.extraEnv[0].name=EXTRA",
        "coordinator.extraEnv[0].value=on",
        "coordinator.extraEnvFrom[0].configMapRef.name=extra-env",
        "coordinator.extraVolumes[0].name=extra",
        "coordinator.extraVolumes[0].emptyDir.medium=Memory",
        "coordinator.extraVolumeMounts[0].name=extra",
        "coordinator.extraVolumeMounts[0].mountPath=/extra",
        "coordinator.extraContainers[0].name=sidecar",
        "coordinator.extraContainers[0].image=busybox",
        "coordinator.imagePullSecrets[0].name=regcred",
        "coordinator.nodeSelector.pool=mcp",
        "coordinator.tolerations[0].key=dedicated",
        "coordinator.tolerations[0].operator=Exists",
        "coordinator.topologySpreadConstraints[0].maxSkew=1",
        "coordinator.topologySpreadConstraints[0].topologyKey=topology.kubernetes.io/zone",
        "coordinator.topologySpreadConstraints[0].whenUnsatisfiable=ScheduleAnyway",
    ).coordinator()
    spec = pod_spec(deployment)
    main = container(deployment, "coordinator")
    assert env(main)["EXTRA"] == "on"
    assert main["envFrom"] == [{"configMapRef": {"name": "extra-env"}}]
    assert volumes(deployment)["extra"] == {"name": "extra", "emptyDir": {"medium": "Memory"}}
    assert "/extra" in mounts(main)
    assert [c["name"] for c in spec["containers"]] == ["coordinator", "sidecar"]
    assert spec["imagePullSecrets"] == [{"name": "regcred"}]
    assert spec["nodeSelector"] == {"pool": "mcp"}
    assert spec["tolerations"] == [{"key": "dedicated", "operator": "Exists"}]
    constraint = spec["topologySpreadConstraints"][0]
    assert constraint["topologyKey"] == "topology.kubernetes.io/zone"
    assert constraint["labelSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]


# --- Service --------------------------------------------------------------------------------------------


def test_service_is_cluster_ip_with_http_and_metrics_ports() -> None:
    """ClusterIP, http 8080 -> http, metrics 9090 -> metrics."""
    service = render().get("Service", FULLNAME)
    assert service["spec"]["type"] == "ClusterIP"
    ports = {p["name"]: (p["port"], p["targetPort"]) for p in service["spec"]["ports"]}
    assert ports == {"http": (8080, "http"), "metrics": (9090, "metrics")}


def test_session_affinity_is_client_ip_by_default_and_configurable(scenarios: dict[str, Rendered]) -> None:
    """ClientIP with a timeout by default (memory store, 2 replicas); None in the Redis HA scenario."""
    default = scenarios["default"].get("Service", FULLNAME)["spec"]
    assert default["sessionAffinity"] == "ClientIP"
    assert default["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"] == 10800
    ha = scenarios["ha"].get("Service", FULLNAME)["spec"]
    assert ha["sessionAffinity"] == "None"
    assert "sessionAffinityConfig" not in ha


# --- ServiceAccount and RBAC ----------------------------------------------------------------------------


def test_service_account_and_rbac_render_by_default_and_toggle_off() -> None:
    """The SA, Role and RoleBinding render by default; each toggle removes its objects."""
    rendered = render()
    assert rendered.find("ServiceAccount", FULLNAME)
    binding = rendered.get("RoleBinding", FULLNAME)
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": FULLNAME}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}]
    assert pod_spec(rendered.coordinator())["serviceAccountName"] == FULLNAME
    no_rbac = render("rbac.create=false")
    assert not no_rbac.all("Role") and not no_rbac.all("RoleBinding")
    no_sa = render("serviceAccount.create=false")
    assert not no_sa.find("ServiceAccount", FULLNAME)
    assert pod_spec(no_sa.coordinator())["serviceAccountName"] == "default"


def test_role_grants_read_only_seed_rules_limited_to_the_charts_objects() -> None:
    """get/list/watch only; configmaps by name; endpoints and pods; no secrets rule without secrets."""
    rules = render().get("Role", FULLNAME)["rules"]
    assert all(rule["verbs"] == ["get", "list", "watch"] for rule in rules)
    by_resource = {resource: rule for rule in rules for resource in rule["resources"]}
    assert by_resource["configmaps"]["resourceNames"] == [FULLNAME, WORKER]
    assert "endpoints" in by_resource and "pods" in by_resource and "endpointslices" in by_resource
    assert "secrets" not in by_resource


def test_role_secrets_rule_names_only_the_charts_secrets(scenarios: dict[str, Rendered]) -> None:
    """With auth and Redis secrets the secrets rule lists exactly those names."""

    def secret_names(rendered: Rendered) -> list[str]:
        rules = rendered.get("Role", FULLNAME)["rules"]
        return next(rule["resourceNames"] for rule in rules if rule["resources"] == ["secrets"])

    assert secret_names(scenarios["secure"]) == [f"{FULLNAME}-auth"]
    assert secret_names(scenarios["ha"]) == ["codegen-mcp-redis"]


def test_service_account_token_is_not_mounted_unless_asked() -> None:
    """automountServiceAccountToken is false on the coordinator and worker, true when set."""
    rendered = render()
    assert pod_spec(rendered.coordinator())["automountServiceAccountToken"] is False
    assert pod_spec(rendered.worker())["automountServiceAccountToken"] is False
    on = render("serviceAccount.automountServiceAccountToken=true")
    assert pod_spec(on.coordinator())["automountServiceAccountToken"] is True


# --- PodDisruptionBudget and HPA ------------------------------------------------------------------------


def test_pdb_renders_with_more_than_one_replica_and_selects_the_coordinator() -> None:
    """Default: a PDB with minAvailable 1 over the coordinator pods."""
    rendered = render()
    pdb = rendered.get("PodDisruptionBudget", FULLNAME)
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == rendered.coordinator()["spec"]["selector"]["matchLabels"]


def test_pdb_is_absent_when_disabled_or_at_one_replica(scenarios: dict[str, Rendered]) -> None:
    """No PDB when podDisruptionBudget.enabled=false, nor with one replica."""
    assert not render("podDisruptionBudget.enabled=false").all("PodDisruptionBudget")
    assert not render("coordinator.replicas=1").all("PodDisruptionBudget")
    assert not scenarios["minimal"].all("PodDisruptionBudget")
    assert not scenarios["observability"].all("PodDisruptionBudget")


def test_pdb_max_unavailable_replaces_min_available() -> None:
    """Setting maxUnavailable renders it instead of minAvailable."""
    spec = render("podDisruptionBudget.maxUnavailable=1").get("PodDisruptionBudget", FULLNAME)["spec"]
    assert spec["maxUnavailable"] == 1
    assert "minAvailable" not in spec


def test_hpa_is_absent_by_default_and_omits_replicas_when_on(scenarios: dict[str, Rendered]) -> None:
    """The HA scenario has an HPA over the Deployment, and the Deployment leaves replicas to it."""
    assert not scenarios["default"].all("HorizontalPodAutoscaler")
    ha = scenarios["ha"]
    hpa = ha.get("HorizontalPodAutoscaler", FULLNAME)
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": FULLNAME}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 6)
    assert "replicas" not in ha.coordinator()["spec"]
    assert ha.get("PodDisruptionBudget", FULLNAME)["spec"]["minAvailable"] == 2


# --- NetworkPolicy ---------------------------------------------------------------------------------------


def allows_dns(policy: dict[str, Any]) -> bool:
    ports = [(p["port"], p["protocol"]) for rule in policy["spec"]["egress"] for p in rule.get("ports", [])]
    return (53, "UDP") in ports and (53, "TCP") in ports


def test_network_policies_are_absent_by_default(scenarios: dict[str, Rendered]) -> None:
    """networkPolicy.enabled=false renders no NetworkPolicy."""
    assert not scenarios["default"].all("NetworkPolicy")


def test_coordinator_policy_allows_clients_metrics_dns_and_workers(scenarios: dict[str, Rendered]) -> None:
    """Ingress: http from llm-client and the test pod, metrics from monitoring. Egress: DNS, workers."""
    rendered = scenarios["secure"]
    policy = rendered.get("NetworkPolicy", FULLNAME)
    coordinator = rendered.coordinator()
    assert policy["spec"]["podSelector"]["matchLabels"] == coordinator["spec"]["selector"]["matchLabels"]
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    http_rule, metrics_rule = policy["spec"]["ingress"]
    assert http_rule["ports"] == [{"port": "http", "protocol": "TCP"}]
    assert {"podSelector": {"matchLabels": {"app": "llm-client"}}} in http_rule["from"]
    test_pod = rendered.get("Pod", f"{FULLNAME}-test-mcp-call")
    assert any(
        "podSelector" in peer and selects(peer["podSelector"]["matchLabels"], test_pod["metadata"]["labels"])
        for peer in http_rule["from"]
    )
    assert metrics_rule["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    assert metrics_rule["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]
    assert allows_dns(policy)
    worker_rule = next(
        r for r in policy["spec"]["egress"] if r["ports"] == [{"port": 8081, "protocol": "TCP"}]
    )
    worker_labels = rendered.worker()["spec"]["template"]["metadata"]["labels"]
    assert selects(worker_rule["to"][0]["podSelector"]["matchLabels"], worker_labels)


def test_worker_policy_admits_only_the_coordinator_and_allows_dns_and_the_package_index(
    scenarios: dict[str, Rendered],
) -> None:
    """The worker accepts only coordinator pods; egress goes to DNS and the package index on 443."""
    rendered = scenarios["secure"]
    policy = rendered.get("NetworkPolicy", WORKER)
    assert (
        policy["spec"]["podSelector"]["matchLabels"] == rendered.worker()["spec"]["selector"]["matchLabels"]
    )
    (ingress,) = policy["spec"]["ingress"]
    (peer,) = ingress["from"]
    assert peer["podSelector"]["matchLabels"] == rendered.coordinator()["spec"]["selector"]["matchLabels"]
    assert allows_dns(policy)
    index_rule = policy["spec"]["egress"][1]
    assert index_rule["ports"] == [{"port": 443, "protocol": "TCP"}]
    assert "169.254.0.0/16" in index_rule["to"][0]["ipBlock"]["except"]


def test_coordinator_policy_allows_redis_when_configured() -> None:
    """With Redis and NetworkPolicy on, egress to the Redis port from redis.url is allowed."""
    policy = render("networkPolicy.enabled=true", values=(str(CHART / "ci" / "ha-values.yaml"),)).get(
        "NetworkPolicy", FULLNAME
    )
    assert any(rule["ports"] == [{"port": 6379, "protocol": "TCP"}] for rule in policy["spec"]["egress"])
    plain = render("networkPolicy.enabled=true").get("NetworkPolicy", FULLNAME)
    assert not any(rule["ports"] == [{"port": 6379, "protocol": "TCP"}] for rule in plain["spec"]["egress"])


def test_external_worker_egress_replaces_the_bundled_worker_rule() -> None:
    """Without the bundled worker, egress goes to external workers' ports and no worker policy renders."""
    rendered = render("networkPolicy.enabled=true", values=(str(CHART / "ci" / "minimal-values.yaml"),))
    policy = rendered.get("NetworkPolicy", FULLNAME)
    assert allows_dns(policy)
    assert any(
        "to" not in r and r["ports"] == [{"port": 8081, "protocol": "TCP"}] for r in policy["spec"]["egress"]
    )
    assert not rendered.find("NetworkPolicy", WORKER)


# --- FluentBit ---------------------------------------------------------------------------------------------


def test_fluentbit_is_absent_by_default(scenarios: dict[str, Rendered]) -> None:
    """No sidecar and no FluentBit ConfigMap unless enabled."""
    rendered = scenarios["default"]
    assert [c["name"] for c in containers(rendered.coordinator())] == ["coordinator"]
    assert not rendered.find("ConfigMap", f"{FULLNAME}-fluentbit")


def test_fluentbit_native_sidecar_tails_the_shared_audit_volume(scenarios: dict[str, Rendered]) -> None:
    """A native sidecar (init container, restartPolicy Always) mounts the audit volume and its ConfigMap."""
    rendered = scenarios["observability"]
    deployment = rendered.coordinator()
    (sidecar,) = pod_spec(deployment)["initContainers"]
    assert sidecar["name"] == "fluent-bit"
    assert sidecar["restartPolicy"] == "Always"
    main = container(deployment, "coordinator")
    assert mounts(sidecar)["/var/log/audit"]["name"] == mounts(main)["/var/log/audit"]["name"] == "audit"
    assert mounts(sidecar)["/var/log/audit"]["subPathExpr"] == "$(POD_NAME)"
    assert "POD_NAME" in env(sidecar)
    config = rendered.get("ConfigMap", f"{FULLNAME}-fluentbit")["data"]["fluent-bit.conf"]
    assert "Path              /var/log/audit/*.jsonl" in config
    assert "Name   stdout" in config
    assert volumes(deployment)["fluentbit-config"]["configMap"]["name"] == f"{FULLNAME}-fluentbit"
    assert "checksum/fluentbit" in deployment["spec"]["template"]["metadata"]["annotations"]


def test_fluentbit_classic_sidecar_and_custom_output() -> None:
    """nativeSidecar=false makes it a regular container; fluentbit.output replaces the stdout output."""
    rendered = render(
        "fluentbit.nativeSidecar=false",
        "fluentbit.output=Name loki\nMatch *\nHost loki.monitoring",
        values=(str(CHART / "ci" / "observability-values.yaml"),),
    )
    spec = pod_spec(rendered.coordinator())
    assert "initContainers" not in spec
    sidecar = spec["containers"][1]
    assert sidecar["name"] == "fluent-bit" and "restartPolicy" not in sidecar
    config = rendered.get("ConfigMap", f"{FULLNAME}-fluentbit")["data"]["fluent-bit.conf"]
    assert "Name loki" in config and "Host loki.monitoring" in config and "Name   stdout" not in config


# --- ServiceMonitor -----------------------------------------------------------------------------------


def test_service_monitor_is_absent_by_default(scenarios: dict[str, Rendered]) -> None:
    """serviceMonitor.enabled=false renders none."""
    assert not scenarios["default"].all("ServiceMonitor")


def test_service_monitor_scrapes_the_metrics_port_every_30s(scenarios: dict[str, Rendered]) -> None:
    """Interval 30s, path /metrics, port metrics, selecting the coordinator Service only."""
    rendered = scenarios["observability"]
    monitor = rendered.get("ServiceMonitor", FULLNAME)
    (endpoint,) = monitor["spec"]["endpoints"]
    assert (endpoint["interval"], endpoint["path"], endpoint["port"]) == ("30s", "/metrics", "metrics")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    selected = [
        s
        for s in rendered.all("Service")
        if selects(monitor["spec"]["selector"]["matchLabels"], s["metadata"]["labels"])
    ]
    assert [s["metadata"]["name"] for s in selected] == [FULLNAME]
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}


def test_service_monitor_renders_under_plain_helm_template(helm: str) -> None:
    """Gated by values, not .Capabilities: `helm template` without a cluster emits it."""
    proc = subprocess.run(
        [helm, "template", "rel", str(CHART), "--set", "serviceMonitor.enabled=true"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "kind: ServiceMonitor" in proc.stdout


# --- audit storage -------------------------------------------------------------------------------------


def test_audit_volume_is_absent_with_the_stdout_backend(scenarios: dict[str, Rendered]) -> None:
    """backend stdout: no PVC, no /var/log/audit mount."""
    rendered = scenarios["default"]
    assert not rendered.all("PersistentVolumeClaim")
    assert "/var/log/audit" not in mounts(container(rendered.coordinator(), "coordinator"))


def test_file_audit_backend_mounts_a_pvc_at_var_log_audit(scenarios: dict[str, Rendered]) -> None:
    """backend file: a PVC of the set size, mounted at /var/log/audit, and config.audit.file_path set."""
    rendered = scenarios["observability"]
    pvc = rendered.get("PersistentVolumeClaim", f"{FULLNAME}-audit")
    assert pvc["spec"]["resources"]["requests"]["storage"] == "2Gi"
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    deployment = rendered.coordinator()
    mount = mounts(container(deployment, "coordinator"))["/var/log/audit"]
    assert volumes(deployment)[mount["name"]]["persistentVolumeClaim"]["claimName"] == f"{FULLNAME}-audit"
    assert rendered.config()["audit"]["file_path"] == "/var/log/audit/audit.jsonl"


def test_audit_existing_claim_and_storage_class() -> None:
    """existingClaim mounts that claim and creates none; storageClass reaches the created claim."""
    observability = (str(CHART / "ci" / "observability-values.yaml"),)
    existing = render("audit.persistence.existingClaim=audit-logs", values=observability)
    assert not existing.all("PersistentVolumeClaim")
    assert volumes(existing.coordinator())["audit"]["persistentVolumeClaim"]["claimName"] == "audit-logs"
    classed = render("audit.persistence.storageClass=fast", values=observability)
    assert classed.get("PersistentVolumeClaim", f"{FULLNAME}-audit")["spec"]["storageClassName"] == "fast"


def test_audit_without_persistence_uses_an_emptydir() -> None:
    """audit.persistence.enabled=false puts /var/log/audit on an emptyDir."""
    rendered = render("config.audit.backend=file", "audit.persistence.enabled=false")
    assert not rendered.all("PersistentVolumeClaim")
    assert "emptyDir" in volumes(rendered.coordinator())["audit"]


# --- worker ----------------------------------------------------------------------------------------------


def test_bundled_worker_runs_the_contract_command_with_its_own_config() -> None:
    """A StatefulSet runs `worker --config /etc/codegen-mcp-worker/config.yaml` on 8081, probing /health."""
    rendered = render()
    worker = rendered.worker()
    main = container(worker, "worker")
    assert main["image"] == "codegen-mcp-worker:0.1.0"
    assert main["command"] == ["worker"]
    assert main["args"] == ["--config", "/etc/codegen-mcp-worker/config.yaml"]
    assert env(main) == {"HOST": "0.0.0.0", "PORT": "8081"}
    assert main["ports"] == [{"name": "http", "containerPort": 8081, "protocol": "TCP"}]
    assert main["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert main["readinessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert volumes(worker)["config"]["configMap"]["name"] == WORKER
    config = yaml.safe_load(rendered.get("ConfigMap", WORKER)["data"]["config.yaml"])
    assert config["workspace_root"] == "/workspaces"
    assert "emptyDir" in volumes(worker)[mounts(main)["/workspaces"]["name"]]
    assert "checksum/config" in worker["spec"]["template"]["metadata"]["annotations"]


def test_worker_services_are_the_seeds_worker_service_and_a_headless_one() -> None:
    """<fullname>-worker-service on 8081, and a headless Service that governs the StatefulSet."""
    rendered = render()
    service = rendered.get("Service", f"{FULLNAME}-worker-service")
    assert [(p["name"], p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [
        ("http", 8081, "http")
    ]
    headless = rendered.get("Service", f"{FULLNAME}-worker-headless")
    assert headless["spec"]["clusterIP"] == "None"
    assert rendered.worker()["spec"]["serviceName"] == f"{FULLNAME}-worker-headless"


def test_coordinator_discovers_the_bundled_worker_through_the_headless_service() -> None:
    """config.worker.discovery.dns_name is the headless Service's FQDN on port 8081."""
    config = render().config()
    assert config["worker"]["discovery"] == {"dns_name": HEADLESS_FQDN, "port": 8081}
    assert "url" not in config["worker"]


def test_a_user_worker_url_wins_over_discovery() -> None:
    """Setting config.worker.url keeps it and adds no discovery."""
    config = render("config.worker.url=http://w.example:8081").config()
    assert config["worker"]["url"] == "http://w.example:8081"
    assert "discovery" not in config["worker"]


def test_minimal_scenario_has_no_worker_objects_and_an_external_url(scenarios: dict[str, Rendered]) -> None:
    """worker.enabled=false: no StatefulSet, worker Services or ConfigMap; config.worker.url is external."""
    rendered = scenarios["minimal"]
    assert not rendered.all("StatefulSet")
    assert not [d for d in rendered.docs if d["metadata"]["name"].startswith(WORKER)]
    assert rendered.config()["worker"] == {
        "url": "http://codegen-mcp-worker.workers.svc.cluster.local:8081",
        "timeout": "120s",
        "max_retries": 3,
    }
    assert rendered.coordinator()["spec"]["replicas"] == 1


def test_worker_persistence_uses_a_volume_claim_template() -> None:
    """worker.persistence.enabled gives each worker pod a claim for /workspaces instead of an emptyDir."""
    worker = render("worker.persistence.enabled=true", "worker.persistence.size=5Gi").worker()
    (template,) = worker["spec"]["volumeClaimTemplates"]
    assert template["metadata"]["name"] == "workspaces"
    assert template["spec"]["resources"]["requests"]["storage"] == "5Gi"
    assert "workspaces" not in volumes(worker)


# --- secrets: auth and Redis ---------------------------------------------------------------------------


def test_auth_tokens_secret_is_created_and_mounted_at_tokens_file(scenarios: dict[str, Rendered]) -> None:
    """A chart-created Secret holds name:token lines, projected at config.auth.tokens_file."""
    rendered = scenarios["secure"]
    secret = rendered.get("Secret", f"{FULLNAME}-auth")
    assert secret["stringData"]["tokens"].strip() == "ci: ci-token-not-secret"
    sources = volumes(rendered.coordinator())["config"]["projected"]["sources"]
    assert {"secret": {"name": f"{FULLNAME}-auth", "items": [{"key": "tokens", "path": "tokens"}]}} in sources
    assert rendered.config()["auth"]["enabled"] is True


def test_auth_existing_secret_is_mounted_and_none_is_created() -> None:
    """auth.existingSecret: no Secret rendered, the existing one projected."""
    rendered = render("config.auth.enabled=true", "auth.existingSecret=my-tokens")
    assert not rendered.all("Secret")
    sources = volumes(rendered.coordinator())["config"]["projected"]["sources"]
    assert {"secret": {"name": "my-tokens", "items": [{"key": "tokens", "path": "tokens"}]}} in sources


def test_tokens_file_outside_the_config_directory_gets_its_own_mount() -> None:
    """A tokens_file elsewhere is mounted at its own directory."""
    rendered = render(
        "config.auth.enabled=true",
        "auth.existingSecret=my-tokens",
        "config.auth.tokens_file=/var/run/auth/tokens",
    )
    main = container(rendered.coordinator(), "coordinator")
    assert mounts(main)["/var/run/auth"]["name"] == "auth-tokens"
    assert volumes(rendered.coordinator())["auth-tokens"]["secret"]["secretName"] == "my-tokens"


def test_no_secret_renders_without_auth(scenarios: dict[str, Rendered]) -> None:
    """Auth off: no Secret object."""
    assert not scenarios["default"].all("Secret")


def test_redis_sets_the_store_url_and_password_file(scenarios: dict[str, Rendered]) -> None:
    """redis.enabled: session.store redis, the URL, and the existingSecret projected as password_file."""
    rendered = scenarios["ha"]
    redis = rendered.config()["session"]
    assert redis["store"] == "redis"
    assert redis["redis"] == {
        "url": "redis://redis-master.redis.svc.cluster.local:6379/0",
        "password_file": "/etc/codegen-mcp/redis-password",
    }
    sources = volumes(rendered.coordinator())["config"]["projected"]["sources"]
    assert {
        "secret": {"name": "codegen-mcp-redis", "items": [{"key": "password", "path": "redis-password"}]}
    } in sources


def test_redis_without_a_secret_has_no_password_file() -> None:
    """redis.enabled without existingSecret: no password_file and nothing projected."""
    rendered = render("redis.enabled=true", "redis.url=redis://r:6379/0")
    assert "password_file" not in rendered.config()["session"]["redis"]
    assert len(volumes(rendered.coordinator())["config"]["projected"]["sources"]) == 1


# --- helm test pod -------------------------------------------------------------------------------------


def test_helm_test_pod_is_a_hardened_hook_with_its_own_service_account() -> None:
    """The test Pod is a `test` hook deleted before re-creation and on success, with its own token-less SA."""
    rendered = render()
    pod = rendered.get("Pod", f"{FULLNAME}-test-mcp-call")
    annotations = pod["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "test"
    assert annotations["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded"
    assert pod["spec"]["serviceAccountName"] == f"{FULLNAME}-test"
    assert pod["spec"]["automountServiceAccountToken"] is False
    assert rendered.get("ServiceAccount", f"{FULLNAME}-test")["automountServiceAccountToken"] is False
    assert pod["spec"]["restartPolicy"] == "Never"
    assert_restricted(pod)


def test_helm_test_pod_runs_the_smoke_script_against_the_service() -> None:
    """It runs files/mcp-smoke-test.py with python3 against the Service's http port."""
    rendered = render()
    (main,) = rendered.get("Pod", f"{FULLNAME}-test-mcp-call")["spec"]["containers"]
    assert main["command"] == ["python3", "-c"]
    assert main["args"][0].strip() == (CHART / "files" / "mcp-smoke-test.py").read_text().strip()
    service = rendered.get("Service", FULLNAME)
    http_port = next(p["port"] for p in service["spec"]["ports"] if p["name"] == "http")
    assert env(main)["MCP_URL"] == f"http://{FULLNAME}.{NAMESPACE}.svc:{http_port}"


def test_helm_test_pod_reads_a_token_when_auth_is_on(scenarios: dict[str, Rendered]) -> None:
    """With auth, the test pod mounts the tokens Secret and is told where it is."""
    (main,) = scenarios["secure"].get("Pod", f"{FULLNAME}-test-mcp-call")["spec"]["containers"]
    assert env(main)["TOKENS_FILE"] == "/etc/codegen-mcp-test/tokens"


def test_helm_test_objects_are_absent_when_disabled() -> None:
    """tests.enabled=false renders neither the Pod nor its ServiceAccount."""
    rendered = render("tests.enabled=false")
    assert not rendered.all("Pod")
    assert not rendered.find("ServiceAccount", f"{FULLNAME}-test")


# --- names and rollouts ----------------------------------------------------------------------------------


def test_cluster_domain_reaches_the_discovery_name() -> None:
    """clusterDomain changes the headless Service FQDN the coordinator resolves."""
    config = render("clusterDomain=k8s.internal").config()
    assert (
        config["worker"]["discovery"]["dns_name"]
        == f"{FULLNAME}-worker-headless.{NAMESPACE}.svc.k8s.internal"
    )


def test_worker_config_change_rolls_only_the_workers() -> None:
    """A worker.config change changes the worker's checksum/config and not the coordinator's."""

    def checksums(rendered: Rendered) -> tuple[str, str]:
        return (
            rendered.coordinator()["spec"]["template"]["metadata"]["annotations"]["checksum/config"],
            rendered.worker()["spec"]["template"]["metadata"]["annotations"]["checksum/config"],
        )

    base = checksums(render())
    changed = checksums(render("worker.config.max_sessions=8"))
    assert changed[0] == base[0] and changed[1] != base[1]


def test_chart_created_tokens_roll_the_coordinator_when_they_change() -> None:
    """checksum/auth follows auth.tokens of the chart-created Secret."""
    secure = (str(CHART / "ci" / "secure-values.yaml"),)

    def checksum(rendered: Rendered) -> str:
        return rendered.coordinator()["spec"]["template"]["metadata"]["annotations"]["checksum/auth"]

    assert checksum(render(values=secure)) != checksum(
        render("auth.tokens[0].token=another-token-of-32-characters", values=secure)
    )


@pytest.mark.parametrize("version", ["1.29.0", "1.37.0"])
def test_chart_renders_for_the_supported_kubernetes_versions(helm: str, version: str) -> None:
    """`helm template --kube-version` accepts 1.29 (the native sidecar minimum) and a current release."""
    proc = subprocess.run(
        [helm, "template", "rel", str(CHART), "--kube-version", version],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def test_chart_refuses_kubernetes_older_than_1_29(helm: str) -> None:
    """kubeVersion >=1.29 stops an install on a cluster without native sidecars."""
    proc = subprocess.run(
        [helm, "template", "rel", str(CHART), "--kube-version", "1.28.0"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode != 0
    assert "kubeVersion" in proc.stderr or "1.29" in proc.stderr


def test_long_names_stay_within_the_63_character_dns_label_limit() -> None:
    """With an 80-character fullnameOverride every object name, including the worker's, fits a DNS label."""
    rendered = render("fullnameOverride=" + "x" * 80)
    for doc in rendered.docs:
        assert len(doc["metadata"]["name"]) <= 63, doc["metadata"]["name"]
        assert not doc["metadata"]["name"].endswith("-")
