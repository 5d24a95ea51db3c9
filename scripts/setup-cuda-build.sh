#!/usr/bin/env bash
# Makes `cargo build --features cuda` work offline. cubecl-cuda pulls cubecl-llvm, whose build
# script (tracel-llvm-bundler 23.1.0-4) downloads an LLVM bundle from the internet; instead we
# take the same static LLVM 23 (with NVPTX) from PyPI wheels and put it where the bundler
# looks. No CUDA toolkit is needed to compile (cudarc loads CUDA at run time).
#
#   eval "$(scripts/setup-cuda-build.sh)"    # prints the export to use
set -euo pipefail

CACHE="${FILOT_LLVM_CACHE:-$HOME/.cache/filot-llvm}"
VERSION="23.1.1.post0"
export XDG_DATA_HOME="${XDG_DATA_HOME:-$CACHE/xdg}"
TARGET="$XDG_DATA_HOME/tracel/tracel-llvm-23.1.0-4"

if [ ! -f "$TARGET/.tracel-llvm-installed" ]; then
  mkdir -p "$CACHE/wheels" "$CACHE/unpacked" "$(dirname "$TARGET")"
  if ! ls "$CACHE"/wheels/mlc_llvm_static-"$VERSION"-*.whl >/dev/null 2>&1 ||
     ! ls "$CACHE"/wheels/mlc_llvm_static_extra_targets-"$VERSION"-*.whl >/dev/null 2>&1; then
    python3 -m pip download --quiet --no-deps -d "$CACHE/wheels" \
      "mlc-llvm-static==$VERSION" "mlc-llvm-static-extra-targets==$VERSION" >&2
  fi
  for whl in "$CACHE"/wheels/mlc_llvm_static*-"$VERSION"-*.whl; do
    python3 -m zipfile -e "$whl" "$CACHE/unpacked" >&2
  done
  chmod +x "$CACHE/unpacked/mlc_llvm_static/static/bin/llvm-config"
  rm -rf "$TARGET"
  ln -s "$CACHE/unpacked/mlc_llvm_static/static" "$TARGET"
  touch "$TARGET/.tracel-llvm-installed"
fi
echo "export XDG_DATA_HOME=$XDG_DATA_HOME"
