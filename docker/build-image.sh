#!/usr/bin/env bash
# docker/build-image.sh BASE TAG: builds docker/Dockerfile's `host-binaries`
# target as TAG on the runtime base BASE, from the release binaries already
# built on this machine (cargo build --release, as .ci/run does), and prints
# the image's size, user and the checks below. Offline: no image is pulled.
#
# The build context is a temporary directory holding only what that target
# copies (the binaries and docker/h2hop-probe, at their repository paths):
# the classic builder, which CI uses, ignores Dockerfile.dockerignore and
# would otherwise send target/ (gigabytes).
set -euo pipefail
base=${1:?usage: docker/build-image.sh BASE TAG}
tag=${2:?usage: docker/build-image.sh BASE TAG}
bins=(h2hop-front h2hop-sidecar h2hop-certs h2hop-echo)

if ! docker image inspect "$base" >/dev/null 2>&1 && ! docker pull --quiet "$base" >/dev/null; then
  echo "no image $base here, and it cannot be pulled: build one with docker/base-image.sh $base" >&2
  exit 1
fi

context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
mkdir -p "$context/docker" "$context/target/release"
cp docker/h2hop-probe "$context/docker/"
for bin in "${bins[@]}"; do
  cp "target/release/$bin" "$context/target/release/"
done

# BuildKit needs the buildx plugin, which Debian's docker.io lacks; the
# classic builder reads the same Dockerfile. Host networking: RUN steps need
# no network, and the daemon may run without a bridge.
DOCKER_BUILDKIT=0 docker build --quiet --network host \
  -f docker/Dockerfile --target host-binaries \
  --build-arg "RUNTIME_BASE=$base" -t "$tag" "$context" >/dev/null

size=$(docker image inspect -f '{{.Size}}' "$tag")
user=$(docker image inspect -f '{{.Config.User}}' "$tag")
echo "image $tag: $(awk -v s="$size" 'BEGIN { printf "%.1f MB", s / 1e6 }'), user $user"
for bin in "${bins[@]}"; do
  bytes=$(stat -c %s "target/release/$bin")
  echo "  /usr/local/bin/$bin: $(awk -v s="$bytes" 'BEGIN { printf "%.1f MB", s / 1e6 }')"
done

# It runs as 10001 with a read-only root and no capabilities, and each
# binary starts there (--version reads nothing else).
[ "$user" = 10001:10001 ] || { echo "image user is '$user', not 10001:10001" >&2; exit 1; }
run=(docker run --rm --network host --read-only --cap-drop ALL --security-opt no-new-privileges:true "$tag")
uid=$("${run[@]}" id -u)
[ "$uid" = 10001 ] || { echo "the image runs as uid $uid, not 10001" >&2; exit 1; }
if "${run[@]}" touch /usr/local/bin/x 2>/dev/null; then
  echo "the root filesystem is writable under --read-only" >&2
  exit 1
fi
for bin in "${bins[@]}"; do
  "${run[@]}" "$bin" --version
done
# What the Kubernetes manifests run inside the container: the preStop
# hooks' sleep, and the rotation command's timeout, sha256sum and bash's
# kill (deploy/kubernetes/).
"${run[@]}" bash -c 'for tool in sleep timeout sha256sum; do command -v "$tool" >/dev/null || { echo "no $tool in the image" >&2; exit 1; }; done; sleep 0'
echo "the image has sleep, timeout and sha256sum for the Kubernetes hooks"
