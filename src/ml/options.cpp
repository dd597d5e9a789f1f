// Option parsing and checks of the signal models, shared by builds with and without LibTorch so
// that a bad option fails before any work, whatever the build.
#include <fmt/format.h>

#include "gt/error.hpp"
#include "gt/ml.hpp"

namespace gt::ml {

Precision parse_precision(std::string_view name) {
  if (name == "fp32") return Precision::kFp32;
  if (name == "fp16") return Precision::kFp16;
  if (name == "bf16") return Precision::kBf16;
  throw ParamError(fmt::format("unknown precision '{}'; allowed: fp32, fp16, bf16", name));
}

std::string_view precision_name(Precision precision) {
  switch (precision) {
    case Precision::kFp16:
      return "fp16";
    case Precision::kBf16:
      return "bf16";
    case Precision::kFp32:
      break;
  }
  return "fp32";
}

void check_training_precision(Precision precision, std::string_view device) {
  if (precision != Precision::kFp32 && !device.starts_with("cuda"))
    throw ParamError(
        fmt::format("precision {} needs a CUDA GPU (this run is on {}); use fp32", precision_name(precision), device));
}

void ModelConfig::validate() const {
  if (model_type != "lstm" && model_type != "gru")
    throw ParamError(fmt::format("model_type '{}' is unknown; allowed: lstm, gru", model_type));
  if (hidden_dim < 1 || hidden_dim > 65536)
    throw ParamError(fmt::format("hidden_dim must be in [1, 65536], got {}", hidden_dim));
  if (num_layers < 1 || num_layers > 64)
    throw ParamError(fmt::format("num_layers must be in [1, 64], got {}", num_layers));
  if (!(dropout >= 0.0 && dropout < 1.0)) throw ParamError(fmt::format("dropout must be in [0, 1), got {}", dropout));
}

void TrainOptions::validate() const {
  if (epochs < 1) throw ParamError(fmt::format("epochs must be at least 1, got {}", epochs));
  if (batch_size < 1) throw ParamError(fmt::format("batch_size must be at least 1, got {}", batch_size));
  if (!(learning_rate > 0.0)) throw ParamError(fmt::format("learning_rate must be > 0, got {}", learning_rate));
  if (!(weight_decay >= 0.0)) throw ParamError(fmt::format("weight_decay must be >= 0, got {}", weight_decay));
  if (patience < 0) throw ParamError(fmt::format("patience must be >= 0, got {}", patience));
  if (!(max_grad_norm >= 0.0)) throw ParamError(fmt::format("max_grad_norm must be >= 0, got {}", max_grad_norm));
}

}  // namespace gt::ml
