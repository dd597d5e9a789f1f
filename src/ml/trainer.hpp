// One replica's optimizer step and evaluation, shared by single-device training (train.cpp) and
// data-parallel training (data_parallel.cpp). Only files built with GT_TORCH include it.
#pragma once

#include <ATen/ATen.h>
#include <torch/torch.h>

#include <functional>
#include <limits>
#include <optional>
#include <vector>

#include "network.hpp"

namespace gt::ml {

struct LossParts {
  double loss = std::numeric_limits<double>::quiet_NaN(), accuracy = std::numeric_limits<double>::quiet_NaN();
};

// Called with a replica's gradients right after its backward pass; data-parallel training sums
// them over replicas there.
using GradientReduce = std::function<void(std::vector<torch::Tensor>& grads)>;

// AdamW (LibTorch's fused kernel, or on CUDA our own: cuda/adamw.hpp) and its state, clipping by
// global norm, and for fp16 the loss scale; every tensor lives on the replica's device so that a
// step can be captured in a CUDA graph.
class Trainer {
 public:
  Trainer(SignalNet net, const ModelSpec& spec, const TrainOptions& options, torch::Device device);

  torch::Tensor loss_of(const torch::Tensor& raw, const torch::Tensor& labels) const;

  // One optimization step on (x, y); the batch's summed loss is added to loss_sum on the device.
  // `weight` scales this replica's gradient (its share of the global batch); an empty x
  // contributes zero gradients, so that every replica takes part in every reduction.
  void step(const torch::Tensor& x, const torch::Tensor& y, bool capturing, double weight = 1.0,
            const GradientReduce& reduce = {});

  // Mean loss (and accuracy for direction labels) over `windows`, in eval mode.
  LossParts evaluate(const torch::Tensor& windows, const torch::Tensor& labels);

  double take_loss_sum();  // waits for the queued steps

 private:
  SignalNet net_;
  const ModelSpec& spec_;
  TrainOptions options_;
  torch::Device device_;
  std::vector<torch::Tensor> params_, exp_avg_, exp_avg_sq_, steps_;
  torch::Tensor learning_rate_, loss_sum_, scale_, growth_tracker_, found_inf_;
  torch::Tensor optimizer_workspace_;  // defined when our AdamW kernels take the step
};

// The epochs' bookkeeping: reports, the best weights by validation loss, early stopping.
class Progress {
 public:
  Progress(TrainReport& report, const TrainOptions& options, std::size_t train_samples,
           const std::function<void(const EpochReport&)>& on_epoch);
  // Records an epoch (and copies the weights when validation improved); true when training stops.
  // Without a validation part the last weights are kept and nothing stops early.
  bool finish_epoch(int epoch, double train_loss, double seconds, const LossParts& validation, SignalNet& net);
  void restore_best(SignalNet& net) const;

 private:
  TrainReport& report_;
  const TrainOptions& options_;
  std::size_t train_samples_;
  const std::function<void(const EpochReport&)>& on_epoch_;
  std::vector<torch::Tensor> best_weights_;
  double best_ = std::numeric_limits<double>::infinity();
  int since_best_ = 0;
};

torch::Tensor labels_tensor(const Samples& s, torch::Device device);
Samples slice_of(const Dataset& d, SampleRange r);

}  // namespace gt::ml
