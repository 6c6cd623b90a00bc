#!/usr/bin/env bash
# A base image with no registry: Debian bookworm (Python 3.11) from debootstrap, `docker import`ed.
#
#   bash docker/base.sh [TAG]        default TAG azr-base:bookworm; prints the tag
#
# The images' Dockerfiles take `--build-arg BASE=...`; by default they start from the
# registry's python:3.11-slim-bookworm, which is the same Debian release and Python. The root
# file system is kept as a tarball in the cache ($AZR_CACHE_DIR or ~/.cache/azr/docker), so a
# second build imports it without fetching anything. Needs root, debootstrap and a Debian mirror.
# DOCKER (default: docker) is the client command, e.g. "docker -H unix:///run/other.sock";
# AZR_BASE_PACKAGES adds Debian packages (the CPU image wants "gcc g++ libc6-dev python3-dev libgomp1 libnuma1").
set -euo pipefail
tag=${1:-azr-base:bookworm}
docker=${DOCKER:-docker}
if $docker image inspect "$tag" >/dev/null 2>&1; then echo "$tag"; exit 0; fi
cache=${AZR_CACHE_DIR:-$HOME/.cache/azr}/docker
extra=${AZR_BASE_PACKAGES:-}
tarball=$cache/bookworm-python3.11${extra:+-$(echo "$extra" | sha256sum | cut -c1-12)}-rootfs.tar
mkdir -p "$cache"
if [ ! -s "$tarball" ]; then
  root=$(mktemp -d)
  trap 'rm -rf "$root"' EXIT
  # python3-venv brings ensurepip; a C compiler is the GPU images' business (Triton), not the base's.
  debootstrap --variant=minbase --include="python3,python3-venv,ca-certificates${extra:+,${extra// /,}}" bookworm "$root" \
    "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" >&2
  chroot "$root" apt-get clean
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/usr/share/doc/* "$root"/usr/share/man/*
  tar -C "$root" --numeric-owner -cf "$tarball.part" .
  mv "$tarball.part" "$tarball"
fi
$docker import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8' \
  --change 'CMD ["python3"]' "$tarball" "$tag" >&2
echo "$tag"
