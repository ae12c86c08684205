#!/usr/bin/env bash
# Runs h2hop-bench: installs the peer proxies it compares against (Debian's
# nghttp2-proxy and haproxy) and h2load (nghttp2-client, the gRPC row's
# load) if they are missing, builds the release
# binaries, and passes its arguments on (see --help). Results go to
# integration/bench/results/ unless --out says otherwise.
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v nghttpx >/dev/null || ! command -v haproxy >/dev/null \
   || ! command -v h2load >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nghttp2-proxy nghttp2-client haproxy
fi
cargo build --release --locked --bin h2hop-front --bin h2hop-sidecar --bin h2hop-bench
exec target/release/h2hop-bench "$@"
