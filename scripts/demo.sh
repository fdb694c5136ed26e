#!/usr/bin/env bash
# Builds Hearth and runs the demo mesh until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --workspace --bins
exec target/release/hearth-testnet demo "$@"
