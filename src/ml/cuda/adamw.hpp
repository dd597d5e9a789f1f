// The optimizer step of fp32 training on a GPU in two kernel launches: the gradients' global norm
// for clipping, then AdamW on every parameter. LibTorch's path for the same step (a foreach norm, a
// stack, a norm, a scale, a foreach multiply, a step count, the fused AdamW) is a dozen launches
// whose blocks each walk 65,536 elements, a visible share of a small network's step; these kernels
// work in blocks of 1,024 elements (docs/PERFORMANCE.md "Signal models").
//
// The arithmetic is PyTorch's fused AdamW (decoupled weight decay; moments and the bias corrections
// in double where PyTorch's kernel has them in double), so that the GPU's training matches the
// CPU's, which keeps LibTorch's AdamW, to rounding.
//
// Plain CUDA and host C++ (no LibTorch). Built only in GT_TORCH_CUDA builds with nvcc.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace gt::ml::cuda {

// Up to kMaxTensors fp32 tensors, dense, on the current device.
struct AdamwTensors {
  static constexpr int kMaxTensors = 32;
  int count = 0;
  float* param[kMaxTensors] = {};
  const float* grad[kMaxTensors] = {};
  float* exp_avg[kMaxTensors] = {};
  float* exp_avg_sq[kMaxTensors] = {};
  std::int64_t size[kMaxTensors] = {};
};

struct AdamwSettings {
  double beta1 = 0.9, beta2 = 0.999, weight_decay = 0.0, eps = 1e-8;
  double max_grad_norm = 0.0;  // > 0: gradients scaled by min(1, max_grad_norm / (norm + 1e-6))
};

// How many floats of workspace adamw_step needs for these tensors (one partial sum a block).
std::int64_t adamw_workspace(const AdamwTensors& tensors);

// One step, enqueued on `stream` (capturable in a CUDA graph): `step` (one float on the device,
// the steps taken) is incremented and the parameters and moments updated, unless `found_inf` (one
// float on the device, or null) is non-zero, when nothing changes, as in PyTorch's fused AdamW
// with a gradient scaler. `learning_rate` is one float on the device.
cudaError_t adamw_step(const AdamwTensors& tensors, const AdamwSettings& settings, const float* learning_rate,
                       float* step, const float* found_inf, float* workspace, cudaStream_t stream);

}  // namespace gt::ml::cuda
