#!/usr/bin/env bash
# Builds a Debian bookworm base image with debootstrap and imports it into Docker, for machines that
# cannot pull from any registry. The images then build `--build-arg BASE_IMAGE=<this tag>`.
#
#   ci/build-base-image.sh [TAG]        (default TAG: codegen-mcp-base:bookworm)
#
# The rootfs holds python3 and python3-venv on debootstrap's minbase variant, with no docs, man pages,
# locales or apt lists. It is cached as a tarball under $BASE_CACHE_DIR (default /var/cache/codegen-mcp),
# so only the first run on a machine pays for debootstrap (about 35 s here); later runs only
# `docker import` (a few seconds). Talks to the daemon named by $DOCKER_HOST. Needs root and debootstrap.
set -euo pipefail

tag="${1:-codegen-mcp-base:bookworm}"
suite="${DEBIAN_SUITE:-bookworm}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
packages="python3,python3-venv"
cache_dir="${BASE_CACHE_DIR:-/var/cache/codegen-mcp}"
# The name carries every input of the rootfs, so a change of suite or packages never reuses a stale tarball.
tarball="$cache_dir/debootstrap-$suite-minbase-${packages//,/-}.tar.gz"
docker_cmd="${DOCKER:-docker}"

if "$docker_cmd" image inspect "$tag" >/dev/null 2>&1; then
  echo "base image $tag already present"
  exit 0
fi

mkdir -p "$cache_dir"
# One debootstrap at a time per machine: a second caller waits, then finds the tarball.
exec 9>"$cache_dir/.lock"
flock 9
if [ ! -s "$tarball" ]; then
  command -v debootstrap >/dev/null || [ -x /usr/sbin/debootstrap ] || {
    echo "debootstrap not found: install Debian's debootstrap (ci/install-deps.sh does)" >&2
    exit 69
  }
  rootfs="$(mktemp -d "$cache_dir/rootfs.XXXXXX")"
  partial="$tarball.partial.$$"
  trap 'rm -rf "$rootfs" "$rootfs.log" "$partial"' EXIT
  echo "debootstrap $suite (minbase + $packages) into $rootfs"
  PATH="$PATH:/usr/sbin:/sbin" debootstrap --variant=minbase --include="$packages" \
    "$suite" "$rootfs" "$mirror" >"$rootfs.log" 2>&1 || {
    echo "debootstrap failed; last lines of its log:" >&2
    tail -n 20 "$rootfs.log" >&2
    exit 1
  }
  rm -f "$rootfs.log"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/usr/share/doc "$rootfs"/usr/share/man "$rootfs"/usr/share/locale "$rootfs"/usr/share/info \
    "$rootfs"/var/log/* "$rootfs"/var/cache/debconf/*-old
  tar --numeric-owner --one-file-system -C "$rootfs" -czf "$partial" .
  mv "$partial" "$tarball"
  rm -rf "$rootfs"
  trap - EXIT
fi
flock -u 9

echo "importing $tarball as $tag"
"$docker_cmd" import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["/bin/bash"]' \
  "$tarball" "$tag" >/dev/null
