#!/usr/bin/env bash
# Issue 2 benchmark: one-change commit into a running configuration of N
# extensions (default 10,000), and rendering all UCI packages for it.
# Usage: tests/bench/core/run.sh [N] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/../../.."
cargo build --release -q -p besip-core --example commit_bench
exec target/release/examples/commit_bench "${1:-10000}" "${2:-50}"
