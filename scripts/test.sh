#!/usr/bin/env bash
# The project's one test command: installs what the tests need, then runs formatting, clippy
# (-D warnings) and every test. `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
# pebble: the ACME test CA of the HTTPS lab tests (Debian's, 2.4); tcpdump: the passthrough
# lab test captures an edge's traffic.
for tool in ip:iproute2 nft:nftables iptables:iptables pebble:pebble tcpdump:tcpdump; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || need_apt+=("${tool##*:}")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "installing ${need_apt[*]}"
    apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  else
    echo "note: ${need_apt[*]} missing and not root; namespace lab tests will say why they skip"
  fi
fi
# The Docker tests need a running engine (no registry: their image is built here).
if [ "$(id -u)" = 0 ]; then
  if ! command -v docker >/dev/null 2>&1; then
    echo "installing docker.io"
    apt-get update -qq && apt-get install -y -qq docker.io >/dev/null
  fi
  if ! docker info >/dev/null 2>&1 && command -v dockerd >/dev/null 2>&1; then
    echo "starting dockerd"
    (dockerd >/tmp/hearth-dockerd.log 2>&1 &)
    for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  fi
fi
rustup component list --installed 2>/dev/null | grep -q rustfmt || rustup component add rustfmt clippy || true

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test (unit, in-process, lab and Docker tests)"
cargo build --workspace --bins --locked
# The 20-node lab test runs optimized binaries (Binaries::locate_release): twenty debug-built
# hearthd keep two cores busy and their failure detectors flap.
cargo build --release --workspace --bins --locked
# The Docker tests' image is FROM scratch: its service must be a static binary.
RUSTFLAGS="-C target-feature=+crt-static" cargo build -p hearth-testsrv --release \
  --target x86_64-unknown-linux-gnu --locked
# As root the namespace labs can run, so they must: a lab test that cannot run fails instead
# of skipping. Elsewhere they print why they skip. Run only the labs with
# `cargo test -p hearth-testnet --test lab`.
if [ "$(id -u)" = 0 ]; then export HEARTH_LAB=require; fi
# The 20-node lab runs alone afterwards: its twenty processes keep two cores busy, which would
# skew the timing of the labs running beside it.
TWENTY=store::twenty_nodes_partitioned_in_halves_converge_to_the_last_writer_after_healing
cargo test --workspace --locked -- --test-threads 2 --skip "$TWENTY"
cargo test -p hearth-testnet --test lab --locked -- --exact "$TWENTY"
