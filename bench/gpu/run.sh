#!/usr/bin/env bash
# The GPU machine's whole job in one call: build with CUDA for sm_90, check the CUDA engine
# against the CPU engine (also under compute-sanitizer), time it, and scale it over the GPUs.
#   bench/gpu/run.sh            (from the repository root; logs under $OUT when set)
set -euo pipefail
cd "$(dirname "$0")/../.."
export NCCL_NVLS_ENABLE=0  # never NVLink multicast on the shared machines (device README)
OUT=${OUT:-/tmp/gt-gpu}
mkdir -p "$OUT"
source bench/gpu/deps.sh
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpus.txt"
# GT_WERROR off: the image's newer g++ raises -Wdangling-reference false positives (see docs/PERFORMANCE.md).
cmake -S . -B build/gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DGT_CUDA=ON -DGT_WERROR=OFF -DGT_BUILD_TESTS=OFF \
  -DGT_BUILD_BENCH=ON -DCMAKE_CUDA_ARCHITECTURES="90-real;90-virtual" "${EXTRA[@]}" >"$OUT/configure.log" 2>&1 ||
  { tail -30 "$OUT/configure.log"; exit 1; }
cmake --build build/gpu -j"$(nproc)" --target cuda_check >"$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log"; exit 1; }
compute-sanitizer --tool memcheck --error-exitcode 9 build/gpu/cuda_check --quick 2>&1 | tee "$OUT/sanitizer.txt" | tail -5
build/gpu/cuda_check 2>&1 | tee "$OUT/cuda_check.txt"
