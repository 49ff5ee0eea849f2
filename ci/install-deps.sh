#!/usr/bin/env bash
# Installs what a fresh machine lacks for `make test`: Debian packages, helm/kubectl, the MCP Inspector.
# Idempotent: each step is skipped when its tool is already present.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS="${TOOLS:-$PWD/.tools}"
mkdir -p "$TOOLS/bin"

apt_packages=()
command -v redis-server >/dev/null || apt_packages+=(redis-server)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || apt_packages+=(nginx)
command -v shellcheck >/dev/null || apt_packages+=(shellcheck)
command -v debootstrap >/dev/null || [ -x /usr/sbin/debootstrap ] || apt_packages+=(debootstrap)
command -v dockerd >/dev/null || apt_packages+=(docker.io)
command -v wrk >/dev/null || apt_packages+=(wrk)
if [ "${#apt_packages[@]}" -gt 0 ]; then
  echo "installing Debian packages: ${apt_packages[*]}"
  sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${apt_packages[@]}" >/dev/null
fi
# The Debian packages start their services under systemd-less machines only sometimes; we start our own.

bash ci/install-helm.sh "$TOOLS/bin"

if [ ! -x "$TOOLS/node_modules/.bin/mcp-inspector" ]; then
  echo "installing the MCP Inspector CLI"
  npm install --silent --no-audit --no-fund --prefix "$TOOLS" @modelcontextprotocol/inspector@0 >/dev/null
fi
