#!/usr/bin/env bash
# Builds the CUDA-enabled binary here (no GPU or CUDA toolkit needed) and packs it as
# dist/filot-cuda.xz for scripts/gpu-check.sh on a GPU machine.
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(scripts/setup-cuda-build.sh)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/filot-target}"
cargo build --release --features cuda
mkdir -p dist
strip -o dist/filot-cuda "$CARGO_TARGET_DIR/release/filot"
xz -T0 -6 -f dist/filot-cuda
ls -la dist/filot-cuda.xz
