#!/usr/bin/env bash
# The GPU machine's job for the signal models, in one call: build ml_bench against the
# machine's own LibTorch (its python3's torch, the same 2.11 as PyPI's wheel), check our LSTM
# kernels against a reference and a model trained on the GPU against the same model on the CPU,
# time the seed's case on the GPU (fp32, fp16, bf16; fp32 also through cuDNN's LSTM and through
# LibTorch's AdamW, A/B) and on this machine's CPU, and run PyTorch-from-Python beside it as the peer.
#   OUT=/tmp/gt-ml bash bench/ml/run.sh        (from the repository root)
# EPOCHS=N trains N epochs a precision (12); SANITIZE=1 reruns the kernels' checks under
# compute-sanitizer; PROFILE=1 runs Nsight Compute on one launch of the large-batch kernel;
# BASELINE=DIR builds and times another commit's kernels beside these, in the same call: DIR holds
# that commit's bench/ml/cluster_lstm_check.cu and src/ml/cuda/* copied flat, e.g.
#   mkdir .old && for f in bench/ml/cluster_lstm_check.cu src/ml/cuda/*; do git show REV:$f >.old/${f##*/}; done
set -euo pipefail
cd "$(dirname "$0")/../.."
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1  # device README
OUT=${OUT:-/tmp/gt-ml}
mkdir -p "$OUT"
source bench/gpu/deps.sh
PY=$(command -v python3)
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpus.txt"
"$PY" -c 'import torch; print("torch", torch.__version__, "cudnn", torch.backends.cudnn.version())' | tee -a "$OUT/gpus.txt"
cmake -S . -B build/ml -G Ninja -DCMAKE_BUILD_TYPE=Release -DGT_CUDA=OFF -DGT_TORCH=ON -DGT_VENV_PYTHON="$PY" \
  -DGT_WERROR=OFF -DGT_BUILD_TESTS=OFF -DGT_BUILD_BENCH=ON "${EXTRA[@]}" >"$OUT/configure.log" 2>&1 ||
  { tail -30 "$OUT/configure.log"; exit 1; }
cmake --build build/ml -j"$(nproc)" --target ml_bench cluster_lstm_check lstm_training_check >"$OUT/build.log" 2>&1 ||
  { tail -40 "$OUT/build.log"; exit 1; }
# One kernel check (build/ml/$1) under compute-sanitizer's memcheck, within $2 seconds, appended to
# memcheck.txt.
memcheck() {
  timeout "$2" compute-sanitizer --tool memcheck "build/ml/$1" --check-only >>"$OUT/memcheck.txt" 2>&1
}
# One of our kernels' standalone checks (outputs against a double-precision reference, then times
# per call). When it fails or hangs nothing else is timed: the script stops, after running the
# failed check under memcheck unless it hung.
kernel_check() {
  local code=0
  timeout 200 "build/ml/$1" 2>&1 | tee "$OUT/$1.txt" || code=$?
  if ((code)); then
    echo "$1 failed (status $code; 124: hung): no further timing"
    if ((code != 124)); then
      memcheck "$1" 120 || true
      tail -30 "$OUT/memcheck.txt"
    fi
    exit 1
  fi
}
# Each step runs even when an earlier one failed (but for kernels that fail their checks or hang:
# see kernel_check); the script's status says whether all passed.
status=0
: >"$OUT/memcheck.txt"
kernel_check cluster_lstm_check   # the prediction kernels
kernel_check lstm_training_check  # the fp32 training recurrence, per layer and pass
GPUS=$(nvidia-smi --list-gpus | wc -l)
build/ml/ml_bench --device cuda --epochs "${EPOCHS:-12}" --dp-gpus "$GPUS" --json "$OUT/gtrader_cuda.json" 2>&1 |
  tee "$OUT/gtrader_cuda.txt" | grep -v '^frame #' || status=1
# A/B in the same call: fp32 training through cuDNN's LSTM instead of our recurrence kernels.
build/ml/ml_bench --cudnn-lstm --device cuda --precisions fp32 --epochs "${EPOCHS:-12}" --skip-predict \
  --graphs-ab false --json "$OUT/gtrader_cuda_cudnn.json" 2>&1 | tee "$OUT/gtrader_cuda_cudnn.txt" || status=1
# And through LibTorch's AdamW (a dozen launches a step) instead of our two optimizer kernels.
build/ml/ml_bench --libtorch-adamw --device cuda --precisions fp32 --epochs "${EPOCHS:-12}" --skip-predict \
  --graphs-ab false --json "$OUT/gtrader_cuda_libtorch_adamw.json" 2>&1 | tee "$OUT/gtrader_cuda_libtorch_adamw.txt" ||
  status=1
"$PY" bench/ml/peer_pytorch.py --device cuda --json "$OUT/peer_cuda.json" 2>&1 | tee "$OUT/peer_cuda.txt" || status=1
build/ml/ml_bench --device cpu --epochs 3 --batches 1,256,4096 --json "$OUT/gtrader_cpu.json" 2>&1 |
  tee "$OUT/gtrader_cpu.txt" || status=1
# SANITIZE=1: the kernels' checks again under memcheck.
if [[ ${SANITIZE:-0} == 1 ]]; then
  { memcheck cluster_lstm_check 240 && memcheck lstm_training_check 240; } || status=1
  tail -3 "$OUT/memcheck.txt"
fi
if [[ -n ${BASELINE:-} ]]; then
  if nvcc -O3 -std=c++20 -arch=sm_90 -I"$BASELINE" "$BASELINE"/cluster_lstm_check.cu "$BASELINE"/cluster_lstm.cu \
    "$BASELINE"/batched_lstm.cu -o build/ml/baseline_check >"$OUT/baseline_build.log" 2>&1; then
    timeout 200 build/ml/baseline_check >"$OUT/baseline_check.txt" 2>&1 || status=1
    echo "--- baseline ($BASELINE)"
    grep "^time batched" "$OUT/baseline_check.txt" || true
  else
    tail -20 "$OUT/baseline_build.log"
    status=1
  fi
fi
if [[ ${PROFILE:-0} == 1 ]]; then
  timeout 60 ncu --section SpeedOfLight --section WarpStateStats --section ComputeWorkloadAnalysis \
    --section MemoryWorkloadAnalysis --section Occupancy --section LaunchStats -k regex:batched_lstm_kernel \
    build/ml/cluster_lstm_check --profile >"$OUT/ncu.txt" 2>&1 || status=1
  grep -E "Duration|Issue Slots Busy|Warp Cycles Per Issued|Registers Per|Achieved Occupancy|Max Active Clusters" \
    "$OUT/ncu.txt" || true
fi
exit $status
