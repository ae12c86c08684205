#!/usr/bin/env bash
# CI for the fuzz targets: installs cargo-fuzz if it is missing, builds
# every target and runs each for a short while (FUZZ_SECONDS, 20 by
# default) from its committed seeds, which include every crash found so
# far. Any crash, or a stale fuzz/Cargo.lock, fails the run.
#
# cargo-fuzz is installed under the build folder, target/tools/ at the
# repository root, and run from there: nothing is written to ~/.cargo/bin,
# and removing target/ removes it too.
#
# Runs on the stable toolchain: without a sanitizer (AddressSanitizer needs
# nightly), which costs little here, as h2hop forbids unsafe code and every
# target checks its invariants with assertions. Long runs use the same
# build: `../target/tools/bin/cargo-fuzz fuzz run --sanitizer none <target>
# corpus/<target> <seeds> -- -max_total_time=600`.
set -euo pipefail
cd "$(dirname "$0")"

cargo_fuzz_version=0.13.2
seconds=${FUZZ_SECONDS:-20}

tools=$(cd .. && pwd)/target/tools
cargo_fuzz=$tools/bin/cargo-fuzz
if ! "$cargo_fuzz" --version 2>/dev/null | grep -qxF "cargo-fuzz $cargo_fuzz_version"; then
  cargo install cargo-fuzz --version "$cargo_fuzz_version" --locked --root "$tools"
fi
# `cargo fuzz ARGS`, but always this copy: cargo would look in ~/.cargo/bin
# before PATH.
fuzz() { "$cargo_fuzz" fuzz "$@"; }

# cargo fuzz has no --locked: check the committed lock file first.
if ! cargo metadata --locked --format-version 1 >/dev/null; then
  echo "fuzz/Cargo.lock is out of date: run 'cargo metadata --manifest-path fuzz/Cargo.toml >/dev/null' and commit it" >&2
  exit 1
fi

fuzz build --sanitizer none

log=$(mktemp)
trap 'rm -f "$log"' EXIT
for target in $(fuzz list); do
  case $target in
    classify_h1 | h1_to_h2) seeds=seeds/http1 extra=(-dict=http1.dict) ;;
    *) seeds=seeds/$target extra=() ;;
  esac
  mkdir -p "corpus/$target"
  echo "== fuzz $target for ${seconds}s"
  # -timeout: an input that takes seconds is a bug too.
  if ! fuzz run --sanitizer none "$target" "corpus/$target" "$seeds" --     -max_total_time="$seconds" -timeout=10 "${extra[@]}" >"$log" 2>&1; then
    grep -vE '^#[0-9]+' "$log" >&2
    echo "fuzz target $target failed; its input is in fuzz/artifacts/$target/" >&2
    exit 1
  fi
  grep -E '^#[0-9]+[[:space:]]+DONE|^Done' "$log"
done
