#!/usr/bin/env bash
# Starts a private Docker daemon whose every file lives under STATE_DIR, and waits until it answers.
#
#   ci/start-dockerd.sh STATE_DIR
#
# STATE_DIR gets docker.sock, dockerd.pid, dockerd.log, data/ (images, layers) and exec/ (runtime state,
# the daemon's own containerd). On success the last line printed is `DOCKER_HOST=unix://STATE_DIR/docker.sock`.
# Stop it by its PID: kill "$(cat STATE_DIR/dockerd.pid)", then wait for that PID to go.
#
# The flags are the ones that work on a machine with no bridge or NAT of its own (DESIGN.md): no default
# bridge, no iptables rules, no masquerading. Containers and `docker build` then use `--network host`
# (or none). Needs root and Debian's docker.io (dockerd, containerd, runc).
set -euo pipefail

if [ "$#" -ne 1 ]; then
  echo "usage: $0 STATE_DIR" >&2
  exit 64
fi
command -v dockerd >/dev/null || {
  echo "dockerd not found: install Debian's docker.io (ci/install-deps.sh does)" >&2
  exit 69
}

mkdir -p "$1"
state="$(cd "$1" && pwd)"
socket="$state/docker.sock"
pidfile="$state/dockerd.pid"
log="$state/dockerd.log"
timeout_s="${DOCKERD_START_TIMEOUT:-60}"

# The daemon's containerd socket sits at exec/containerd/containerd.sock; a unix socket path holds 107 bytes.
if [ "${#state}" -gt 70 ]; then
  echo "STATE_DIR '$state' is too long for unix socket paths (at most 70 characters)" >&2
  exit 64
fi
if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  echo "a dockerd (pid $(cat "$pidfile")) already runs on $state" >&2
  exit 75
fi
rm -f "$socket" "$pidfile"

# setsid: the daemon outlives this script and ignores the caller's terminal signals; it is stopped by PID.
setsid dockerd \
  --data-root "$state/data" \
  --exec-root "$state/exec" \
  --host "unix://$socket" \
  --pidfile "$pidfile" \
  --bridge=none \
  --iptables=false \
  --ip-masq=false \
  --log-level warn \
  </dev/null >"$log" 2>&1 &
launched=$!

deadline=$((SECONDS + timeout_s))
until [ -S "$socket" ] && DOCKER_HOST="unix://$socket" docker version >/dev/null 2>&1; do
  if ! kill -0 "$launched" 2>/dev/null; then
    echo "dockerd exited during start-up; last lines of $log:" >&2
    tail -n 20 "$log" >&2
    exit 1
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "dockerd did not answer on $socket within ${timeout_s}s; last lines of $log:" >&2
    tail -n 20 "$log" >&2
    kill "$launched" 2>/dev/null || true
    exit 1
  fi
  sleep 0.2
done
echo "DOCKER_HOST=unix://$socket"
