#!/usr/bin/env bash
# docker/base-image.sh TAG: builds a minimal Debian bookworm root filesystem
# with mmdebstrap from this machine's own apt sources, and imports it into
# Docker as TAG: the runtime base for docker/Dockerfile where no image
# registry is reachable (CI passes it as RUNTIME_BASE).
#
# The `essential` variant plus `passwd` (useradd for the Dockerfile) is all
# the runtime stage needs: glibc, libgcc, bash (h2hop-probe) and coreutils
# (`sleep`, for a preStop hook). Documentation, manuals and translations are
# left out, as in Debian's own slim images, and /usr is merged by
# mmdebstrap's hook rather than by the usrmerge package, which would pull
# in perl. The result is about 56 MB, against 75 MB for bookworm-slim.
#
# Needs root, mmdebstrap, and an apt source for bookworm in
# /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list. The tar is
# kept in $H2HOP_BASE_CACHE (default target/docker-base) and reused.
#
# A variant for another purpose (docker/ci-systemd.sh boots systemd) names
# its extra packages, comma-separated, in $H2HOP_BASE_EXTRA and the tar it
# is cached as in $H2HOP_BASE_NAME; both unset give the image above.
set -euo pipefail
tag=${1:?usage: docker/base-image.sh TAG}
cache=${H2HOP_BASE_CACHE:-target/docker-base}
name=${H2HOP_BASE_NAME:-bookworm-essential}
include=passwd${H2HOP_BASE_EXTRA:+,$H2HOP_BASE_EXTRA}
tar="$cache/$name.tar"
log="$cache/${H2HOP_BASE_NAME:+$name.}mmdebstrap.log"

sources=/etc/apt/sources.list.d/debian.sources
[ -f "$sources" ] || sources=/etc/apt/sources.list
if [ ! -s "$tar" ]; then
  mkdir -p "$cache"
  # Its output (the merged-usr hook's dpkg lines) goes to a log, shown only
  # if it fails. The partial file's name ends in .tar: mmdebstrap picks the
  # output format from it.
  partial="$cache/$name.partial.tar"
  if ! mmdebstrap --quiet --format=tar --variant=essential --include="$include" \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --customize-hook='rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/* "$1"/var/log/*' \
    bookworm "$partial" "$sources" >"$log" 2>&1; then
    tail -30 "$log" >&2
    echo "mmdebstrap failed; its log: $log" >&2
    exit 1
  fi
  mv "$partial" "$tar"
fi
docker import --change 'CMD ["bash"]' "$tar" "$tag" >/dev/null
echo "base image $tag: $(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.1f MB", $1 / 1e6}')"
