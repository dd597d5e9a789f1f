// Small-batch LSTM prediction in one kernel launch: a cluster of thread blocks holds the whole
// network's weights in registers, each block the gate rows of its share of the hidden units, and
// the blocks trade each step's new hidden states through distributed shared memory, all layers
// advancing together (layer l on step t - l), so that a window of T steps through L layers takes
// T + L - 1 exchanges, where cuDNN's persistent kernel runs the layers one after the other
// (docs/PERFORMANCE.md "Signal models"). fp32 arithmetic throughout.
//
// Plain CUDA and host C++ (no LibTorch), so that bench/ml/cluster_lstm_check.cu can check it
// against a reference on its own. Built only with the CUDA toolkit (GT_TORCH_CUDA builds).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <vector>

namespace gt::ml::cuda {

struct ClusterLstmShape {
  int features = 0, hidden = 0, layers = 0, steps = 0;
};

// One layer's weights in PyTorch's layout (rows: gates i, f, g, o, each `hidden` rows).
struct LstmLayerWeights {
  const float* input = nullptr;      // 4H x (features for layer 0, else H)
  const float* recurrent = nullptr;  // 4H x H
  const float* input_bias = nullptr;
  const float* recurrent_bias = nullptr;  // 4H each
};

// The windows one cluster serves for a batch of `batch` windows (1 or 4; larger batches take
// several clusters side by side), or 0 when this kernel does not serve the shape at all: hidden 64
// or 128, 1 to 3 layers, at most 16 features (then the caller keeps its other path).
int cluster_lstm_windows_per_cluster(const ClusterLstmShape& shape, int batch);
// cudaSuccess when a cluster of this kernel fits on the current GPU (16 blocks, beyond the
// portable cluster size of 8: an H100 takes it, a smaller or partitioned GPU may not).
cudaError_t cluster_lstm_fits(const ClusterLstmShape& shape, int batch);

// The network's recurrent weights in the kernel's layout (host memory; upload as they are), and
// the summed biases (4H per layer).
struct ClusterLstmWeights {
  std::vector<float> weights, biases;
};
ClusterLstmWeights cluster_lstm_pack(const ClusterLstmShape& shape, const std::vector<LstmLayerWeights>& layers);

// Device pointers; `weights`/`biases` as packed above, `head` H weights then 1 bias of the linear
// output on the last layer's last step. `windows` batch x steps x features (fp32, contiguous),
// `out` batch raw outputs. Enqueued on `stream` (capturable in a CUDA graph). Returns the launch's
// status: cudaErrorNotSupported when the shape or batch is not served.
cudaError_t cluster_lstm_forward(const ClusterLstmShape& shape, const float* weights, const float* biases,
                                 const float* head, const float* windows, int batch, float* out, cudaStream_t stream);

}  // namespace gt::ml::cuda
