// LSTMs through our own kernels. Prediction: small batches (cuda/cluster_lstm.hpp): one cluster of
// thread blocks holding the network's weights in registers runs the whole window, all layers
// together, in fp32, faster than cuDNN's persistent kernel and LibTorch's standard path there
// (docs/PERFORMANCE.md "Signal models"); large batches in fp16/bf16 on tensor cores
// (cuda/batched_lstm.hpp).
// Training in fp32: each layer's recurrence (cuda/lstm_training.hpp) as an autograd function.
// Only in builds with nvcc and a CUDA LibTorch (GT_OWN_CUDA_KERNELS).
#pragma once

#include <torch/torch.h>

#include <cstdint>

#include "cuda/batched_lstm.hpp"
#include "cuda/cluster_lstm.hpp"
#include "cuda/lstm_training.hpp"
#include "network.hpp"

namespace gt::ml {

class ClusterRecurrence {
 public:
  // Whether the kernel serves `spec`'s network at this batch (LSTM of hidden 64 or 128, 1 to 3
  // layers, at most 16 features, batch up to kLargestBatch).
  static bool serves(const ModelSpec& spec, std::int64_t batch);
  // `net`'s weights (any precision; the kernel computes in fp32 on them as they are) on `device`.
  // Throws Error when the GPU cannot hold a cluster of the kernel; callers then keep another path.
  ClusterRecurrence(const SignalNet& net, const ModelSpec& spec, std::int64_t batch, torch::Device device);

  // The network's raw output (batch) for `windows` (batch x L x F, fp32, contiguous, on the
  // device), enqueued on the current CUDA stream: capturable in a graph.
  torch::Tensor raw_output(const torch::Tensor& windows);

  // Up to 32 windows, eight clusters of four side by side take about as long as one window (113 us
  // a call at batch 16 against LibTorch's 347 us in fp32 and 229 us in fp16); past that they queue.
  static constexpr std::int64_t kLargestBatch = 32;

 private:
  cuda::ClusterLstmShape shape_;
  std::int64_t batch_;
  int device_index_;
  torch::Tensor weights_, biases_, head_, output_;
};

// Large-batch LSTM prediction in fp16 or bf16 on tensor cores (cuda/batched_lstm.hpp): a cluster
// of four blocks runs 64 windows through all steps and layers with the hidden states kept on chip.
class TensorCoreRecurrence {
 public:
  // Whether the kernel serves `spec`'s network in `precision` (an LSTM of hidden 128, 1 or 2
  // layers, at most 16 features; fp16 or bf16).
  static bool serves(const ModelSpec& spec, Precision precision);
  // `net`'s weights rounded to `precision` on `device`. Throws Error when the GPU cannot hold a
  // cluster of the kernel; callers then keep LibTorch's path.
  TensorCoreRecurrence(const SignalNet& net, const ModelSpec& spec, Precision precision, torch::Device device);

  // The raw outputs of windows (count x L x F, fp32 on the device; strides (window_stride, F, 1),
  // the overlapping windows of a series included), enqueued on the current CUDA stream:
  // capturable. `out` (count fp32 values on the device) is written.
  void raw_output(const torch::Tensor& windows, torch::Tensor& out);

 private:
  cuda::ClusterLstmShape shape_;
  cuda::HalfFormat format_;
  int device_index_;
  torch::Tensor weights_, biases_, head_;
};

// Whether `lstm`'s forward pass on `windows` in training takes our fp32 recurrence kernels: fp32 on
// CUDA outside autocast with gradients on, hidden 64 or 128, one direction, batch first, and a
// cluster of the kernels fits on the GPU (the network asks only when TrainOptions::own_lstm_recurrence).
bool own_lstm_training(const torch::nn::LSTM& lstm, const torch::Tensor& windows);
// The stack's output sequence (batch x L x H), as lstm->forward(windows) in training mode gives it
// (dropout between layers included), differentiable: the input projections, weight gradients and
// dropout are LibTorch's, each layer's recurrence forward and backward through time our kernels'.
torch::Tensor lstm_training_forward(const torch::nn::LSTM& lstm, const torch::Tensor& windows);

}  // namespace gt::ml
