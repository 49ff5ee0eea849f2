#!/usr/bin/env bash
# The kind tier (`make e2e-kind`): creates a kind cluster, loads freshly built images, installs the chart
# with every chart/ci/*-values.yaml scenario and runs `helm test` on each, then installs the e2e release
# and runs `pytest tests/e2e` against it. The cluster is deleted at the end, on failure too.
#
# Needs docker (a daemon that can pull) and python3 with pip. helm v4 and kubectl always come from
# ci/install-helm.sh into .tools/bin, first on PATH: the same helm as the chart tier's, and helm v4 is needed
# because v3's `helm test --logs` fails when the test pod's hook-succeeded policy has already deleted it
# (helm/helm#9098). kind is used from PATH when it is KIND_VERSION, else fetched. Runs in GitHub Actions
# (.github/workflows/ci.yml); a machine that cannot run kind cannot run this script.
#
# Environment (all optional):
#   CLUSTER_NAME   kind cluster name (default codegen-mcp-e2e)
#   KIND_VERSION   kind release, fetched when the one on PATH differs (default v0.33.0: Kubernetes 1.37 nodes, the
#                  minor version of the kubectl, helm v4 and kubernetes client used here)
#   TAG            image tag (default: the version in pyproject.toml, which is the chart's appVersion)
#   SCENARIOS      space-separated subset of chart/ci/*-values.yaml names, e.g. "default secure"
#   KEEP_CLUSTER=1 leave the cluster running for debugging
set -euo pipefail
cd "$(dirname "$0")/.."

repo="$PWD"
tools="${TOOLS:-$repo/.tools}"
export PATH="$tools/bin:$repo/.venv/bin:$PATH"
cluster="${CLUSTER_NAME:-codegen-mcp-e2e}"
kind_version="${KIND_VERSION:-v0.33.0}"
version="$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml | head -n 1)"
tag="${TAG:-$version}"
e2e_namespace="codegen-mcp-e2e"
e2e_release="e2e"
python="${PYTHON:-python3}"
[ -x "$repo/.venv/bin/python" ] && python="$repo/.venv/bin/python"

log() { printf '\n==> %s\n' "$*"; }

ensure_tools() {
  mkdir -p "$tools/bin"
  # Always ours (idempotent), even when the runner has its own helm v3 and kubectl further down PATH.
  bash ci/install-helm.sh "$tools/bin"
  # `kind version` prints "kind v0.33.0 go1.x linux/amd64"; another release (a runner's preinstalled one)
  # would bring other default node images, so the pinned one is fetched into .tools/bin, first on PATH.
  local have_kind=""
  command -v kind >/dev/null && have_kind="$(kind version 2>/dev/null || true)"
  if [[ "$have_kind " != *" $kind_version "* ]]; then
    local arch
    case "$(uname -m)" in
      aarch64 | arm64) arch=arm64 ;;
      *) arch=amd64 ;;
    esac
    log "installing kind $kind_version into $tools/bin"
    curl -fsSLo "$tools/bin/kind" "https://kind.sigs.k8s.io/dl/$kind_version/kind-linux-$arch"
    chmod +x "$tools/bin/kind"
  fi
  kind version
  helm version --short
  case "$(helm version --short)" in
    v4.*) ;;
    *) echo "helm v4 is needed (helm test --logs with hook-succeeded test pods); got $(helm version --short)" >&2; exit 1 ;;
  esac
  kubectl version --client
}

# `kind load docker-image` runs `docker save | ctr import --all-platforms`. With Docker 29's containerd image
# store that can fail with "content digest ... not found" (kubernetes-sigs/kind#3795); the fallback saves just
# this machine's platform and loads the archive.
load_images() {
  local image archive platform
  platform="linux/$(docker version --format '{{.Server.Arch}}')"
  for image in "$@"; do
    if kind load docker-image --name "$cluster" "$image"; then
      continue
    fi
    log "kind load docker-image $image failed; retrying with docker save --platform $platform"
    archive="$(mktemp)"
    docker image save --platform "$platform" --output "$archive" "$image"
    kind load image-archive --name "$cluster" "$archive"
    rm -f "$archive"
  done
}

diagnose() {
  log "diagnostics"
  kubectl get nodes -o wide || true
  kubectl get pods --all-namespaces -o wide || true
  kubectl get events --all-namespaces --sort-by=.lastTimestamp | tail -n 60 || true
  local ns pod
  for ns in $(kubectl get namespaces -o name | sed 's|namespace/||' | grep -E '^(ct-|codegen-mcp|workers|redis)' || true); do
    for pod in $(kubectl -n "$ns" get pods -o name || true); do
      echo "--- $ns/$pod"
      kubectl -n "$ns" describe "$pod" | tail -n 30 || true
      kubectl -n "$ns" logs "$pod" --all-containers --tail=50 || true
    done
  done
}

cleanup() {
  local status=$?
  if [ "$status" -ne 0 ]; then
    diagnose
  fi
  if [ "${KEEP_CLUSTER:-0}" = 1 ]; then
    log "KEEP_CLUSTER=1: leaving cluster $cluster running"
  else
    log "deleting cluster $cluster"
    kind delete cluster --name "$cluster" || true
  fi
  exit "$status"
}

# Redis for the ha scenario: redis-master.redis.svc:6379 with a password, the one ha-values.yaml names.
redis_password="e2e-redis-password-not-secret"
install_redis() {
  kubectl create namespace redis --dry-run=client -o yaml | kubectl apply -f -
  kubectl -n redis create secret generic redis-auth --from-literal=password="$redis_password" \
    --dry-run=client -o yaml | kubectl apply -f -
  kubectl apply -f - <<'EOF'
apiVersion: apps/v1
kind: Deployment
metadata:
  name: redis-master
  namespace: redis
spec:
  replicas: 1
  selector:
    matchLabels: {app: redis-master}
  template:
    metadata:
      labels: {app: redis-master}
    spec:
      containers:
        - name: redis
          image: redis:7-alpine
          args: ["--requirepass", "$(REDIS_PASSWORD)", "--save", "", "--appendonly", "no"]
          env:
            - name: REDIS_PASSWORD
              valueFrom: {secretKeyRef: {name: redis-auth, key: password}}
          ports: [{containerPort: 6379, name: redis}]
          readinessProbe:
            tcpSocket: {port: 6379}
            periodSeconds: 2
---
apiVersion: v1
kind: Service
metadata:
  name: redis-master
  namespace: redis
spec:
  selector: {app: redis-master}
  ports: [{port: 6379, targetPort: redis, name: redis}]
EOF
  kubectl -n redis rollout status deployment/redis-master --timeout=180s
}

# The external worker of the minimal scenario: codegen-mcp-worker.workers.svc:8081, the image run as the chart runs it.
install_external_worker() {
  kubectl create namespace workers --dry-run=client -o yaml | kubectl apply -f -
  sed "s|@WORKER_IMAGE@|codegen-mcp-worker:$tag|" <<'EOF' | kubectl apply -f -
apiVersion: apps/v1
kind: Deployment
metadata:
  name: codegen-mcp-worker
  namespace: workers
spec:
  replicas: 1
  selector:
    matchLabels: {app: codegen-mcp-worker}
  template:
    metadata:
      labels: {app: codegen-mcp-worker}
    spec:
      securityContext:
        runAsNonRoot: true
        runAsUser: 1000
        runAsGroup: 1000
        fsGroup: 1000
        seccompProfile: {type: RuntimeDefault}
      containers:
        - name: worker
          image: @WORKER_IMAGE@
          imagePullPolicy: IfNotPresent
          env:
            - {name: WORKSPACE_ROOT, value: /workspaces}
          ports: [{containerPort: 8081, name: http}]
          readinessProbe:
            httpGet: {path: /health, port: http}
            periodSeconds: 2
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities: {drop: [ALL]}
          volumeMounts:
            - {name: tmp, mountPath: /tmp}
            - {name: workspaces, mountPath: /workspaces}
      volumes:
        - {name: tmp, emptyDir: {}}
        - {name: workspaces, emptyDir: {}}
---
apiVersion: v1
kind: Service
metadata:
  name: codegen-mcp-worker
  namespace: workers
spec:
  selector: {app: codegen-mcp-worker}
  ports: [{port: 8081, targetPort: http, name: http}]
EOF
  kubectl -n workers rollout status deployment/codegen-mcp-worker --timeout=180s
}

# The ServiceMonitor CRD of the observability scenario (the prometheus-operator's, nothing else of it).
install_servicemonitor_crd() {
  kubectl apply --server-side -f \
    "https://raw.githubusercontent.com/prometheus-operator/prometheus-operator/v0.79.2/example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml"
  kubectl wait --for=condition=Established crd/servicemonitors.monitoring.coreos.com --timeout=60s
}

image_values=(
  --set "coordinator.image.tag=$tag"
  --set "worker.image.tag=$tag"
  --set "coordinator.image.pullPolicy=IfNotPresent"
  --set "worker.image.pullPolicy=IfNotPresent"
)

install_scenario() {
  local scenario="$1" values="chart/ci/$1-values.yaml" namespace="ct-$1"
  log "scenario $scenario: helm install + helm test in namespace $namespace"
  kubectl create namespace "$namespace" --dry-run=client -o yaml | kubectl apply -f -
  if [ "$scenario" = ha ]; then
    kubectl -n "$namespace" create secret generic codegen-mcp-redis --from-literal=password="$redis_password" \
      --dry-run=client -o yaml | kubectl apply -f -
  fi
  helm upgrade --install "$scenario" chart --namespace "$namespace" --values "$values" "${image_values[@]}" \
    --wait --timeout 10m
  helm test "$scenario" --namespace "$namespace" --logs --timeout 5m
  helm uninstall "$scenario" --namespace "$namespace" --wait --timeout 5m
  kubectl delete namespace "$namespace" --wait=true --timeout=180s
}

ensure_tools
trap cleanup EXIT

log "creating kind cluster $cluster (kind-config.yaml: 1 control plane, 2 workers)"
kind create cluster --name "$cluster" --config kind-config.yaml --wait 180s
kubectl cluster-info --context "kind-$cluster"

log "building images (tag $tag)"
TAG="$tag" bash ci/build-images.sh
load_images "codegen-mcp-coordinator:$tag" "codegen-mcp-worker:$tag"

log "scenario prerequisites"
install_redis
install_external_worker
install_servicemonitor_crd

scenarios="${SCENARIOS:-}"
if [ -z "$scenarios" ]; then
  for values in chart/ci/*-values.yaml; do
    name="$(basename "$values" -values.yaml)"
    scenarios="$scenarios $name"
  done
fi
for scenario in $scenarios; do
  install_scenario "$scenario"
done

log "installing the e2e release ($e2e_release in $e2e_namespace) and running tests/e2e"
helm upgrade --install "$e2e_release" chart --namespace "$e2e_namespace" --create-namespace \
  --values chart/ci/default-values.yaml "${image_values[@]}" \
  --set networkPolicy.enabled=true \
  --wait --timeout 10m
# E2E_REQUIRED=1: a test that would skip (no cluster, no release) fails instead.
E2E_REQUIRED=1 E2E_NAMESPACE="$e2e_namespace" E2E_RELEASE="$e2e_release" E2E_CHART="$repo/chart" E2E_IMAGE_TAG="$tag" \
  "$python" -m pytest tests/e2e -v -p no:cacheprovider
