// Large-batch LSTM prediction in fp16 or bf16 on tensor cores, in one kernel launch: a cluster of
// four thread blocks runs 64 windows through every step of every layer, each block the gate rows
// of a quarter of the hidden units (held in registers), the hidden states never leaving shared
// memory. Each step is one tensor-core product per layer ([x_t; h0] or [h0; h1] by the gate rows,
// accumulated in fp32) whose gates are applied in the registers that hold it; the cell state stays
// in fp32 registers; the new hidden states (fp16/bf16) go to the four blocks by st.async.
// LibTorch's cuDNN path instead writes every step's gates to device memory and reads them back
// (3.9e6 predictions/s at most from Python at the seed's shape on an H100 or H200, against 1.01e7
// for this kernel at 65,536 windows on an H200; docs/PERFORMANCE.md).
//
// Plain CUDA and host C++ (no LibTorch): bench/ml/cluster_lstm_check.cu checks it alone.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "cluster_lstm.hpp"

namespace gt::ml::cuda {

enum class HalfFormat { kFp16, kBf16 };

// Whether the kernel serves the shape: hidden 128, 1 or 2 layers, at most 16 features.
bool batched_lstm_serves(const ClusterLstmShape& shape);

// The recurrent weights as the tensor cores read them (16-bit values in the kernel's order; upload
// as they are) and the summed biases (4H per layer, fp32).
struct BatchedLstmWeights {
  std::vector<std::uint16_t> weights;
  std::vector<float> biases;
};
BatchedLstmWeights batched_lstm_pack(const ClusterLstmShape& shape, const std::vector<LstmLayerWeights>& layers,
                                     HalfFormat format);

// cudaSuccess when a cluster of the kernel fits on the current GPU.
cudaError_t batched_lstm_fits(const ClusterLstmShape& shape, HalfFormat format);

// Device pointers: `weights`/`biases` as packed above, `head` H weights then the bias (fp32).
// Window w's step t, feature f is windows[w * window_stride + t * features + f] (fp32): contiguous
// windows have a stride of steps x features, the overlapping windows of a bar series one of
// `features`. `out`: batch raw outputs. Enqueued on `stream` (capturable).
cudaError_t batched_lstm_forward(const ClusterLstmShape& shape, HalfFormat format, const void* weights,
                                 const float* biases, const float* head, const float* windows, long long window_stride,
                                 int batch, float* out, cudaStream_t stream);

}  // namespace gt::ml::cuda
