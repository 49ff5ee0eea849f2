#!/usr/bin/env bash
# Builds the coordinator and worker images (`make images`) from the repository root.
#
#   ci/build-images.sh
#
# Environment (all optional):
#   TAG           image tag; default: the version in pyproject.toml
#   BASE_IMAGE    base of both stages; default: the Dockerfiles' own (python:3.12-slim-bookworm)
#   WHEELHOUSE=1  build the images offline, from .cache/wheelhouse/images: pip first fills it inside a
#                 BASE_IMAGE container on the host network (with the host pip's CA bundle and index, when
#                 it names them), and the builds then install with --no-index. For daemons whose build
#                 containers reach no index, like the private dockerd of tests/container. The filled
#                 wheelhouse is cached under ~/.cache/codegen-mcp/wheelhouse, per requirements and base.
#   WHEELHOUSE_REFRESH=1  resolve the wheelhouse again instead of reusing the cached one
#   WHEELHOUSE_DIR where the wheelhouse goes, under .cache/wheelhouse/; default .cache/wheelhouse/images
#   BUILD_NETWORK value of `docker build --network` (host, none, ...); default: the daemon's default
#   DOCKER        the docker CLI; default: docker. The daemon is the one $DOCKER_HOST names.
set -euo pipefail
cd "$(dirname "$0")/.."

docker_cmd="${DOCKER:-docker}"
version="$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml | head -n 1)"
tag="${TAG:-${version:-dev}}"
revision="$(git rev-parse --verify --quiet HEAD 2>/dev/null || echo unknown)"
created="$(date -u +%Y-%m-%dT%H:%M:%SZ)"

if ! "$docker_cmd" version >/dev/null 2>&1; then
  echo "no Docker daemon answers${DOCKER_HOST:+ at $DOCKER_HOST}. On a machine without one (and without registry" >&2
  echo "access), start a private daemon and build on a debootstrap base, as tests/container does:" >&2
  echo "  eval \"export \$(bash ci/start-dockerd.sh /tmp/codegen-mcp-dockerd)\"" >&2
  echo "  bash ci/build-base-image.sh && BASE_IMAGE=codegen-mcp-base:bookworm WHEELHOUSE=1 bash ci/build-images.sh" >&2
  exit 69
fi

build_args=(
  --build-arg "VERSION=$version"
  --build-arg "REVISION=$revision"
  --build-arg "CREATED=$created"
)
if [ -n "${BASE_IMAGE:-}" ]; then
  build_args+=(--build-arg "BASE_IMAGE=$BASE_IMAGE")
fi
if [ -n "${BUILD_NETWORK:-}" ]; then
  build_args+=(--network "$BUILD_NETWORK")
fi

if [ "${WHEELHOUSE:-0}" = 1 ]; then
  wheelhouse="${WHEELHOUSE_DIR:-.cache/wheelhouse/images}"
  case "$wheelhouse" in
    .cache/wheelhouse/?*) ;;
    *)
      echo "WHEELHOUSE_DIR must be a directory under .cache/wheelhouse/ (.dockerignore admits only that), not '$wheelhouse'" >&2
      exit 64
      ;;
  esac
  cache_root="${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/codegen-mcp"
  pip_cache="$cache_root/pip"
  base="${BASE_IMAGE:-python:3.12-slim-bookworm}"
  "$docker_cmd" image inspect "$base" >/dev/null 2>&1 || "$docker_cmd" pull "$base"
  # The runtime requirements, the redis extra and the build backend, read from pyproject.toml.
  mapfile -t requirements < <(python3 -c '
import tomllib
with open("pyproject.toml", "rb") as f:
    p = tomllib.load(f)
print("\n".join(p["project"]["dependencies"] + p["project"]["optional-dependencies"]["redis"]
                + p["build-system"]["requires"]))')
  # A filled wheelhouse is kept per (requirements, base image layers): later runs copy it instead of
  # resolving again. WHEELHOUSE_REFRESH=1 resolves anew (for newer releases of the dependencies).
  key="$({ printf '%s\n' "${requirements[@]}"; "$docker_cmd" image inspect --format '{{json .RootFS.Layers}}' "$base"; } \
    | sha256sum | cut -c1-16)"
  cached="$cache_root/wheelhouse/$key"
  mkdir -p "$cache_root/wheelhouse"
  # One filler at a time per machine; a concurrent run waits, then reuses what the first one filled.
  exec 8>"$cache_root/wheelhouse/.lock"
  flock 8
  if [ "${WHEELHOUSE_REFRESH:-0}" = 1 ] || [ ! -f "$cached/.complete" ]; then
    filling="$cached.partial.$$"
    trap 'rm -rf "$filling"' EXIT
    rm -rf "$filling"
    mkdir -p "$filling" "$pip_cache"
    # pip runs inside the base image, so that markers (python_full_version, platform) and wheel tags are
    # the base's own; it is the only step that needs an index. The host's CA bundle is passed in when the
    # host's pip names one (machines behind a TLS-inspecting proxy).
    run_args=(--rm --network host --user "$(id -u):$(id -g)" -e HOME=/tmp -e PIP_CACHE_DIR=/pip-cache
      -e PIP_DISABLE_PIP_VERSION_CHECK=1 -e PIP_ROOT_USER_ACTION=ignore
      -v "$pip_cache:/pip-cache" -v "$filling:/wheelhouse")
    ca="${PIP_CERT:-$(python3 -m pip config get global.cert 2>/dev/null || true)}"
    if [ -n "$ca" ] && [ -f "$ca" ]; then
      run_args+=(-v "$ca:/etc/codegen-mcp-ca.crt:ro" -e PIP_CERT=/etc/codegen-mcp-ca.crt)
    fi
    index="${PIP_INDEX_URL:-$(python3 -m pip config get global.index-url 2>/dev/null || true)}"
    if [ -n "$index" ]; then
      run_args+=(-e "PIP_INDEX_URL=$index")
    fi
    echo "filling the wheelhouse in $base"
    "$docker_cmd" run "${run_args[@]}" --entrypoint sh "$base" -c \
      'python3 -m venv /tmp/venv && /tmp/venv/bin/pip wheel --quiet --wheel-dir /wheelhouse "$@"' \
      wheelhouse "${requirements[@]}"
    touch "$filling/.complete"
    rm -rf "$cached"
    mv "$filling" "$cached"
    trap - EXIT
  else
    echo "reusing the wheelhouse $cached"
  fi
  flock -u 8
  rm -rf "$wheelhouse"
  mkdir -p "$wheelhouse"
  cp -a "$cached/." "$wheelhouse/"
  build_args+=(--build-arg PIP_NO_INDEX=1 --build-arg "PIP_FIND_LINKS=/wheelhouse/${wheelhouse#.cache/wheelhouse/}")
fi

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
for component in coordinator worker; do
  image="codegen-mcp-$component:$tag"
  echo "building $image"
  started=$SECONDS
  if ! "$docker_cmd" build "${build_args[@]}" -f "docker/$component/Dockerfile" -t "$image" . >"$log" 2>&1; then
    echo "building $image failed; last lines of the build:" >&2
    tail -n 40 "$log" >&2
    exit 1
  fi
  echo "built $image in $((SECONDS - started))s"
done
