#!/usr/bin/env bash
# Runs on a GPU machine with no network and no Rust toolchain: takes the CUDA build of filot
# (dist/filot-cuda.xz, made by scripts/build-cuda-dist.sh), reads the specimen set on the GPU,
# checks the readings against the CPU's, and prints throughput. Output goes to $OUT when set.
#
#   scripts/gpu-check.sh [SPECIMENS_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
SPECIMENS="${1:-shared/specimens}"
OUT="${OUT:-$(mktemp -d)}"
BIN="$(mktemp -d)/filot"
if command -v xz >/dev/null 2>&1; then
  xz -dc dist/filot-cuda.xz > "$BIN"
else
  python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' dist/filot-cuda.xz "$BIN"
fi
chmod +x "$BIN"

# Kernels with math functions need libdevice from a CUDA install.
if [ -z "${CUDA_PATH:-}" ]; then
  for d in /usr/local/cuda /usr/local/cuda-13* /usr/local/cuda-12* /opt/cuda; do
    if [ -f "$d/nvvm/libdevice/libdevice.10.bc" ]; then export CUDA_PATH="$d"; break; fi
  done
fi
echo "CUDA_PATH=${CUDA_PATH:-unset}"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true

dirs=()
for d in clean hard phone; do [ -d "$SPECIMENS/$d" ] && dirs+=("$SPECIMENS/$d"); done
cards=$(ls "$SPECIMENS"/clean/*.jpg "$SPECIMENS"/clean/*.png 2>/dev/null | head -n 10)

echo "== GPU readings vs ground truth"
"$BIN" ocr-report --device cuda:0 "${dirs[@]}" | tee "$OUT/gpu-report.txt"
echo "== CPU readings vs ground truth (same binary, same cards)"
timeout 300 "$BIN" ocr-report --device cpu "${dirs[@]}" | tee "$OUT/cpu-report.txt" || echo "(CPU report timed out)"
if cmp -s "$OUT/gpu-report.txt" "$OUT/cpu-report.txt"; then
  echo "GPU and CPU rates are identical"
else
  echo "GPU and CPU rates differ:"; diff "$OUT/cpu-report.txt" "$OUT/gpu-report.txt" || true
fi

echo "== throughput"
# shellcheck disable=SC2086
"$BIN" bench-ocr --device cuda:0 --rec-batch 1 --rounds 3 --results "$OUT/bench.jsonl" $cards
# shellcheck disable=SC2086
"$BIN" bench-ocr --device cuda:0 --rec-batch 32 --rounds 3 --results "$OUT/bench.jsonl" $cards
# shellcheck disable=SC2086
"$BIN" bench-ocr --device cpu --rec-batch 8 --rounds 1 --results "$OUT/bench.jsonl" $cards

echo "== service throughput (real service, N cards in flight, OCR stage split)"
for n in 8 32; do
  # shellcheck disable=SC2086
  timeout 60 "$BIN" bench-ocr --device cuda:0 --workers 4 --rec-batch 64 --concurrency "$n" \
    --seconds 20 --results "$OUT/bench.jsonl" $cards || echo "(service bench at $n in flight failed)"
done
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader || true
