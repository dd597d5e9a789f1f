// The signal network (an LSTM or GRU stack and a linear head), autocast and weight copies.
#include <ATen/autocast_mode.h>
#include <fmt/format.h>
#include <torch/torch.h>

#if defined(GT_OWN_CUDA_KERNELS)
#include "cluster_recurrence.hpp"
#endif
#include "gt/error.hpp"
#include "network.hpp"

namespace gt::ml {

SignalNetImpl::SignalNetImpl(const ModelConfig& config, std::int64_t features) {
  const double dropout = config.num_layers > 1 ? config.dropout : 0.0;
  if (config.model_type == "lstm") {
    lstm_ = register_module("rnn", torch::nn::LSTM(torch::nn::LSTMOptions(features, config.hidden_dim)
                                                       .num_layers(config.num_layers)
                                                       .dropout(dropout)
                                                       .batch_first(true)));
  } else {
    gru_ = register_module("rnn", torch::nn::GRU(torch::nn::GRUOptions(features, config.hidden_dim)
                                                     .num_layers(config.num_layers)
                                                     .dropout(dropout)
                                                     .batch_first(true)));
  }
  head_ = register_module("head", torch::nn::Linear(config.hidden_dim, 1));
}

torch::Tensor SignalNetImpl::forward(const torch::Tensor& windows) {
#if defined(GT_OWN_CUDA_KERNELS)
  // fp32 training on CUDA: our recurrence kernels instead of cuDNN's chain of small ones.
  if (lstm_ && own_recurrence_ && own_lstm_training(lstm_, windows))
    return head(lstm_training_forward(lstm_, windows).select(1, -1));
#endif
  const torch::Tensor sequence = lstm_ ? std::get<0>(lstm_->forward(windows)) : std::get<0>(gru_->forward(windows));
  return head(sequence.select(1, -1));
}

torch::Tensor SignalNetImpl::head(const torch::Tensor& last_step) {
  return head_->forward(last_step).squeeze(-1);
}

c10::ScalarType scalar_type(Precision precision) {
  switch (precision) {
    case Precision::kFp16:
      return torch::kHalf;
    case Precision::kBf16:
      return torch::kBFloat16;
    case Precision::kFp32:
      break;
  }
  return torch::kFloat;
}

AutocastGuard::AutocastGuard(c10::DeviceType device, Precision precision, bool cache) : device_(device) {
  if (precision == Precision::kFp32) return;
  active_ = true;
  was_enabled_ = at::autocast::is_autocast_enabled(device);
  was_dtype_ = at::autocast::get_autocast_dtype(device);
  was_caching_ = at::autocast::is_autocast_cache_enabled();
  at::autocast::set_autocast_enabled(device, true);
  at::autocast::set_autocast_dtype(device, scalar_type(precision));
  at::autocast::set_autocast_cache_enabled(cache);
}

AutocastGuard::~AutocastGuard() {
  if (!active_) return;
  at::autocast::set_autocast_enabled(device_, was_enabled_);
  at::autocast::set_autocast_dtype(device_, was_dtype_);
  at::autocast::set_autocast_cache_enabled(was_caching_);
  at::autocast::clear_cache();
}

void copy_weights(const SignalNet& from, SignalNet& to) {
  torch::NoGradGuard no_grad;
  const auto source = from->named_parameters();
  for (auto& p : to->named_parameters()) p.value().copy_(source[p.key()]);
}

}  // namespace gt::ml
