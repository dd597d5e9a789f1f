// The LibTorch side of SignalModel, shared by model.cpp (build, save, load, predict), train.cpp
// and data_parallel.cpp (training). Only the files of libgt_torch.so include it.
#pragma once

#include <torch/torch.h>

#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "gt/ml.hpp"
#include "torch_module.hpp"

namespace gt::ml {

// A recurrent stack (LSTM or GRU) read at its last step, then one linear output: a logit for
// direction labels, a scaled return for return labels.
class SignalNetImpl : public torch::nn::Module {
 public:
  SignalNetImpl(const ModelConfig& config, std::int64_t features);
  torch::Tensor forward(const torch::Tensor& windows);  // batch x L x F -> batch
  // The output layer alone, on the recurrent stack's last step (batch x hidden -> batch).
  torch::Tensor head(const torch::Tensor& last_step);
  // Whether fp32 CUDA training may take our recurrence kernels (TrainOptions::own_lstm_recurrence).
  void use_own_recurrence(bool own) { own_recurrence_ = own; }

 private:
  torch::nn::LSTM lstm_{nullptr};
  torch::nn::GRU gru_{nullptr};
  torch::nn::Linear head_{nullptr};
  bool own_recurrence_ = true;
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

class TensorCoreRecurrence;  // cluster_recurrence.hpp: builds with nvcc and a CUDA LibTorch only

// One model on LibTorch: what SignalModel forwards to (torch_module.hpp).
class PredictionPath;           // model.cpp
enum class PredictionPathKind;  // model.cpp

class TorchModel final : public SignalModel::Impl {
 public:
  // A network of `spec`'s shape on `device`; its initial weights are the caller's business.
  TorchModel(const ModelSpec& spec, torch::Device device);

  const ModelSpec& spec() const override { return spec_; }
  std::string device() const override { return device_.str(); }
  void save(const std::filesystem::path& path) const override;
  TrainReport train(const Samples& train, const Samples& validation, const Samples& test, const TrainOptions& options,
                    const EpochCallback& on_epoch) override;
  TrainReport train(const Dataset& data, const TrainOptions& options, const EpochCallback& on_epoch) override;
  TrainReport train_parallel(const Dataset& data, const TrainOptions& options, const std::vector<std::string>& devices,
                             const EpochCallback& on_epoch) override;
  std::vector<float> predict(const Samples& samples, Precision precision, std::size_t batch_size) const override;
  std::vector<double> predict_bars(const Bars& bars, Precision precision) const override;
  void predict_into(std::span<const float> windows, std::span<float> out, Precision precision) override;

  SignalNet& net() { return net_; }
  void place_on(torch::Device device) {
    device_ = device;
    net_->to(device);
  }

 private:
  SignalNet network_for(Precision precision) const;  // a handle: copies share the module
  // The large-batch kernel for fp16/bf16 prediction, or nullptr where it does not serve.
  TensorCoreRecurrence* tensor_cores(Precision precision) const;
  // Prediction paths (model.cpp): the first of `order` that serves `batch` windows in `precision`
  // and can be set up here (`trial`: run once on zeros to find out). `slice`: LibTorch's batches
  // (0: its default for the device).
  std::unique_ptr<PredictionPath> first_path(std::span<const PredictionPathKind> order, std::int64_t batch,
                                             Precision precision, bool trial, std::size_t slice) const;
  // The path of one kind, or nullptr where it does not serve or cannot be set up.
  std::unique_ptr<PredictionPath> make_path(PredictionPathKind kind, std::int64_t batch, Precision precision,
                                            bool trial, std::size_t slice) const;
  void weights_changed() {
    lowered_.clear();
    graphs_.clear();
    tensor_cores_.clear();
  }

  ModelSpec spec_;
  torch::Device device_;
  SignalNet net_;
  // Copies of the network in fp16/bf16 for prediction, made on first use and dropped when the
  // weights change.
  mutable std::map<Precision, SignalNet> lowered_;
  // predict_into's captured forward passes, one per (batch size, precision).
  struct GraphedForward;
  std::map<std::pair<std::size_t, Precision>, std::shared_ptr<GraphedForward>> graphs_;
  // Made on first use per precision (nullptr kept where the GPU cannot run it).
  mutable std::map<Precision, std::shared_ptr<TensorCoreRecurrence>> tensor_cores_;
};

// The device `requested` resolves to, and --gpus as CUDA devices (SignalModel's resolve_device
// and resolve_gpus, which reach these through the module).
std::string torch_device(std::string_view requested);
std::vector<std::string> torch_gpus(std::string_view spec);

// Throws ParamError when a spec cannot describe a model (model_file.cpp).
void check_spec(const ModelSpec& spec);
// A model file written by TorchModel::save, on `device`; throws Error naming the file.
std::unique_ptr<TorchModel> load_model(const std::filesystem::path& path, std::string_view device);

// `to` takes `from`'s weights (the same network shape), wherever each lives.
void copy_weights(const SignalNet& from, SignalNet& to);
// Samples as a tensor of windows on `device` (batch x L x F; a strided view for overlapping
// windows, so nothing is copied per window); throws ParamError when they do not fit `spec`.
torch::Tensor windows_tensor(const Samples& samples, const ModelSpec& spec, torch::Device device);

}  // namespace gt::ml
