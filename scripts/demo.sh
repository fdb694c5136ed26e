#!/usr/bin/env bash
# Builds Hearth and runs the demo mesh until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
# As root the demo is a namespace lab with a real ACME CA (Debian's Pebble) on a host of its own.
if [ "$(id -u)" = 0 ] && ! command -v pebble >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq pebble >/dev/null || echo "note: cannot install pebble; the demo's HTTPS will be self-signed"
fi
cargo build --release --workspace --bins
exec target/release/hearth-testnet demo "$@"
