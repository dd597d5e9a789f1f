// The LibTorch side of SignalModel, shared by model.cpp (build, save, load, predict) and
// train.cpp (the training loop). Only files built with GT_TORCH include it.
#pragma once

#include <torch/torch.h>

#include <map>
#include <memory>
#include <optional>
#include <string>

#include "gt/ml.hpp"

namespace gt::ml {

// A recurrent stack (LSTM or GRU) read at its last step, then one linear output: a logit for
// direction labels, a scaled return for return labels.
class SignalNetImpl : public torch::nn::Module {
 public:
  SignalNetImpl(const ModelConfig& config, std::int64_t features);
  torch::Tensor forward(const torch::Tensor& windows);  // batch x L x F -> batch

 private:
  torch::nn::LSTM lstm_{nullptr};
  torch::nn::GRU gru_{nullptr};
  torch::nn::Linear head_{nullptr};
};
TORCH_MODULE(SignalNet);

// Switches autocast on for one device type and dtype for the guard's lifetime (no-op for fp32).
class AutocastGuard {
 public:
  AutocastGuard(c10::DeviceType device, Precision precision, bool cache = true);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  c10::DeviceType device_;
  bool active_ = false, was_enabled_ = false, was_caching_ = true;
  c10::ScalarType was_dtype_ = c10::kFloat;
};

c10::ScalarType scalar_type(Precision precision);

struct SignalModel::Impl {
  ModelSpec spec;
  torch::Device device{torch::kCPU};
  SignalNet net{nullptr};
  // Copies of the network in fp16/bf16 for prediction, made on first use and dropped when the
  // weights change.
  mutable std::map<Precision, SignalNet> lowered;
  // predict_into's captured forward passes, one per (batch size, precision).
  struct GraphedForward;
  std::map<std::pair<std::size_t, Precision>, std::shared_ptr<GraphedForward>> graphs;

  SignalNet network_for(Precision precision) const;  // a handle: copies share the module
  void weights_changed() {
    lowered.clear();
    graphs.clear();
  }
};

// `to` takes `from`'s weights (the same network shape), wherever each lives.
void copy_weights(const SignalNet& from, SignalNet& to);
// Samples as a tensor of windows on `device` (batch x L x F; a strided view for overlapping
// windows, so nothing is copied per window); throws ParamError when they do not fit `spec`.
torch::Tensor windows_tensor(const Samples& samples, const ModelSpec& spec, torch::Device device);

}  // namespace gt::ml
