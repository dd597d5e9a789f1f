// SignalModel on LibTorch: the network, devices, model files, prediction, and the module's entry point.
#include <ATen/autocast_mode.h>
#include <fmt/format.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#if defined(GT_TORCH_CUDA)
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>

#include "persistent_rnn.hpp"
#endif
#if defined(GT_OWN_CUDA_KERNELS)
#include "cluster_recurrence.hpp"
#endif

#include "gt/atomic_file.hpp"
#include "gt/error.hpp"
#include "gt/gpu.hpp"
#include "network.hpp"

namespace gt::ml {
namespace {

constexpr const char* kFormat = "gpt-trader-signal-model/1";

nlohmann::json spec_json(const ModelSpec& s) {
  return {{"model_type", s.config.model_type},
          {"hidden_dim", s.config.hidden_dim},
          {"num_layers", s.config.num_layers},
          {"dropout", s.config.dropout},
          {"sequence_length", s.data.sequence_length},
          {"features", s.data.features},
          {"label", label_name(s.data.label)},
          {"validation_fraction", s.data.validation_fraction},
          {"test_fraction", s.data.test_fraction},
          {"scaler_mean", s.scaler.mean},
          {"scaler_scale", s.scaler.scale},
          {"label_mean", s.scaler.label_mean},
          {"label_scale", s.scaler.label_scale},
          {"trained_on", s.trained_on}};
}

ModelSpec spec_from_json(const nlohmann::json& j) {
  ModelSpec s;
  s.config.model_type = j.at("model_type").get<std::string>();
  s.config.hidden_dim = j.at("hidden_dim").get<int>();
  s.config.num_layers = j.at("num_layers").get<int>();
  s.config.dropout = j.at("dropout").get<double>();
  s.data.sequence_length = j.at("sequence_length").get<std::size_t>();
  s.data.features = j.at("features").get<std::vector<std::string>>();
  s.data.label = parse_label(j.at("label").get<std::string>());
  s.data.validation_fraction = j.at("validation_fraction").get<double>();
  s.data.test_fraction = j.at("test_fraction").get<double>();
  s.scaler.mean = j.at("scaler_mean").get<std::vector<double>>();
  s.scaler.scale = j.at("scaler_scale").get<std::vector<double>>();
  s.scaler.label_mean = j.at("label_mean").get<double>();
  s.scaler.label_scale = j.at("label_scale").get<double>();
  s.trained_on = j.at("trained_on").get<std::string>();
  return s;
}

void check_spec(const ModelSpec& s) {
  s.config.validate();
  if (s.data.features.empty()) throw ParamError("a model needs at least one feature");
  if (s.data.sequence_length < 1) throw ParamError("sequence_length must be at least 1");
  if (s.scaler.mean.size() != s.data.features.size() || s.scaler.scale.size() != s.data.features.size())
    throw ParamError(
        fmt::format("the scaler has {} features, the model {}", s.scaler.mean.size(), s.data.features.size()));
}

std::string shape_text(c10::IntArrayRef sizes) {
  std::string out = "[";
  for (std::size_t i = 0; i < sizes.size(); ++i) out += fmt::format("{}{}", i ? ", " : "", sizes[i]);
  return out + "]";
}

// Turns the network's raw output into the model's output (P(up), or a return).
torch::Tensor to_output(const torch::Tensor& raw, const ModelSpec& spec) {
  if (spec.data.label == Label::kDirection) return torch::sigmoid(raw.to(torch::kFloat));
  return raw.to(torch::kFloat) * spec.scaler.label_scale + spec.scaler.label_mean;
}

}  // namespace

// ---------------------------------------------------------------------------------------------

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
  if (lstm_ && own_recurrence_ && own_lstm_training(lstm_, windows)) return head(lstm_training_forward(lstm_, windows).select(1, -1));
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

// ---------------------------------------------------------------------------------------------

std::string torch_device(std::string_view requested) {
  if (requested == "auto") {
    if (torch::cuda::is_available()) return "cuda:0";
    if (torch::mps::is_available()) return "mps";
    return "cpu";
  }
  if (requested == "cpu") return "cpu";
  if (requested == "mps") {
    if (!torch::mps::is_available()) throw Error("device 'mps' was asked for, but this machine has no MPS device");
    return "mps";
  }
  if (requested == "cuda" || requested.starts_with("cuda:")) {
    if (!torch::cuda::is_available())
      throw Error({"device"},
                  fmt::format("device '{}' was asked for, but LibTorch sees no CUDA GPU here; use device cpu or auto",
                              requested));
    int index = 0;
    if (requested.size() > 5) {
      const std::string digits(requested.substr(5));
      if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos)
        throw ParamError(fmt::format("device '{}': expected cuda:N with N a GPU index", requested));
      index = std::stoi(digits);
    }
    const auto count = static_cast<int>(torch::cuda::device_count());
    if (index >= count)
      throw Error(fmt::format("device '{}' was asked for, but this machine has {} CUDA GPU(s)", requested, count));
    return fmt::format("cuda:{}", index);
  }
  throw ParamError(fmt::format("unknown device '{}'; allowed: auto, cpu, cuda, cuda:N, mps", requested));
}

std::vector<std::string> torch_gpus(std::string_view spec) {
  const auto count = static_cast<int>(torch::cuda::is_available() ? torch::cuda::device_count() : 0);
  if (count == 0) throw Error({"gpus"}, fmt::format("gpus {} was asked for, but LibTorch sees no CUDA GPU here", spec));
  std::vector<std::string> devices;
  for (const int gpu : parse_gpu_list(std::string(spec), count)) {
    devices.push_back(fmt::format("cuda:{}", gpu));
    if (std::count(devices.begin(), devices.end(), devices.back()) > 1)
      throw ParamError({"gpus"}, fmt::format("gpus {}: GPU {} is named twice", spec, gpu));
  }
  return devices;
}

TorchModel::TorchModel(const ModelSpec& spec, torch::Device device)
    : spec_(spec), device_(device), net_(spec.config, static_cast<std::int64_t>(spec.data.features.size())) {}

void TorchModel::save(const std::filesystem::path& path) const {
  torch::serialize::OutputArchive archive;
  archive.write("gt_format", c10::IValue(std::string(kFormat)));
  archive.write("gt_spec", c10::IValue(spec_json(spec_).dump()));
  torch::serialize::OutputArchive weights;
  {
    // Written from the CPU so that a file loads on any device.
    torch::NoGradGuard no_grad;
    for (const auto& p : net_->named_parameters()) weights.write(p.key(), p.value().to(torch::kCPU));
  }
  archive.write("weights", weights);
  std::ostringstream bytes;
  archive.save_to(bytes);
  write_file_atomically(path, bytes.str());
}

SignalNet TorchModel::network_for(Precision precision) const {
  if (precision == Precision::kFp32) return net_;
  auto it = lowered_.find(precision);
  if (it == lowered_.end()) {
    SignalNet copy(spec_.config, static_cast<std::int64_t>(spec_.data.features.size()));
    copy_weights(net_, copy);
    copy->to(device_, scalar_type(precision));
    copy->eval();
    it = lowered_.emplace(precision, copy).first;
  }
  return it->second;
}

void copy_weights(const SignalNet& from, SignalNet& to) {
  torch::NoGradGuard no_grad;
  const auto source = from->named_parameters();
  for (auto& p : to->named_parameters()) p.value().copy_(source[p.key()]);
}

torch::Tensor windows_tensor(const Samples& samples, const ModelSpec& spec, torch::Device device) {
  const auto L = static_cast<std::int64_t>(samples.sequence_length);
  const auto F = static_cast<std::int64_t>(samples.features);
  const auto n = static_cast<std::int64_t>(samples.count());
  if (static_cast<std::size_t>(F) != spec.data.features.size() ||
      static_cast<std::size_t>(L) != spec.data.sequence_length)
    throw ParamError(fmt::format("samples of {} bars x {} features do not fit a model of {} bars x {} features", L, F,
                                 spec.data.sequence_length, spec.data.features.size()));
  const std::size_t expected =
      samples.overlapping ? static_cast<std::size_t>((n + L - 1) * F) : static_cast<std::size_t>(n * L * F);
  if (n > 0 && samples.values.size() != expected)
    throw ParamError(fmt::format("{} values are not whole windows of {} x {} ({} windows take {})",
                                 samples.values.size(), L, F, n, expected));
  if (n == 0) return torch::empty({0, L, F}, torch::TensorOptions().device(device));
  // from_blob does not own the caller's memory; clone() on the CPU or to() elsewhere copies once.
  auto* data = const_cast<float*>(samples.values.data());
  torch::Tensor host = samples.overlapping ? torch::from_blob(data, {n + L - 1, F}) : torch::from_blob(data, {n, L, F});
  torch::Tensor on_device = device.is_cpu() ? host.clone() : host.to(device);
  if (!samples.overlapping) return on_device;
  return on_device.unfold(0, L, 1).transpose(1, 2);  // n x L x F, strided over the rows
}

std::vector<float> TorchModel::predict(const Samples& samples, Precision precision, std::size_t batch_size) const {
  if (precision != Precision::kFp32 && device_.is_cpu())
    throw ParamError(fmt::format("precision {} needs a GPU; on the CPU use fp32", precision_name(precision)));
  torch::NoGradGuard no_grad;
  const torch::Tensor windows = windows_tensor(samples, spec_, device_);
  const std::int64_t n = windows.size(0);
#if defined(GT_OWN_CUDA_KERNELS)
  if (n > 0) {
    if (TensorCoreRecurrence* kernel = tensor_cores(precision)) {
      // One launch for all the windows: the kernel keeps nothing per window beyond its output.
      torch::Tensor raw = torch::empty({n}, torch::TensorOptions().dtype(torch::kFloat).device(device_));
      kernel->raw_output(windows, raw);
      const torch::Tensor y = to_output(raw, spec_).to(torch::kCPU).contiguous();
      return std::vector<float>(y.data_ptr<float>(), y.data_ptr<float>() + n);
    }
  }
#endif
  SignalNet net = network_for(precision);  // the fp16/bf16 copy is made only where LibTorch runs it
  net->eval();
  const std::int64_t batch = batch_size > 0 ? static_cast<std::int64_t>(batch_size) : (device_.is_cpu() ? 4096 : 16384);
  std::vector<float> out(static_cast<std::size_t>(n));
  for (std::int64_t start = 0; start < n; start += batch) {
    const std::int64_t end = std::min(n, start + batch);
    torch::Tensor x = windows.slice(0, start, end).contiguous().to(scalar_type(precision));
    torch::Tensor y = to_output(net->forward(x), spec_).to(torch::kCPU).contiguous();
    std::copy_n(y.data_ptr<float>(), end - start, out.begin() + start);
  }
  return out;
}

TensorCoreRecurrence* TorchModel::tensor_cores([[maybe_unused]] Precision precision) const {
#if defined(GT_OWN_CUDA_KERNELS)
  if (!device_.is_cuda() || !TensorCoreRecurrence::serves(spec_, precision)) return nullptr;
  auto found = tensor_cores_.find(precision);
  if (found == tensor_cores_.end()) {
    std::shared_ptr<TensorCoreRecurrence> kernel;
    try {
      kernel = std::make_shared<TensorCoreRecurrence>(net_, spec_, precision, device_);
    } catch (const Error&) {
      // This GPU cannot hold the kernel's cluster: LibTorch's path, without asking again.
    }
    found = tensor_cores_.emplace(precision, std::move(kernel)).first;
  }
  return found->second.get();
#else
  return nullptr;
#endif
}

std::vector<double> TorchModel::predict_bars(const Bars& bars, Precision precision) const {
  const Dataset rows = prediction_rows(bars, spec_.data, spec_.scaler);
  const Samples samples{rows.rows, {}, rows.sequence_length, rows.features, true};
  const std::vector<float> scores = predict(samples, precision, 0);
  std::vector<double> out(bars.size(), std::numeric_limits<double>::quiet_NaN());
  for (std::size_t i = 0; i < scores.size(); ++i) out[rows.first_bar + rows.sequence_length - 1 + i] = scores[i];
  return out;
}

// A forward pass captured once for fixed input and output buffers and replayed per call: one
// launch instead of one per layer and step, which is what small-batch latency is made of. Inputs
// and outputs go through pinned host buffers, copied by the graph itself.
struct TorchModel::GraphedForward {
  torch::Tensor host_input, staged, input, output, host_output;  // staged: the fp32 input on the device
#if defined(GT_TORCH_CUDA)
  at::cuda::CUDAGraph graph;
  std::unique_ptr<PersistentRecurrence> persistent;  // fp32 and fp16 at batch 1: cuDNN's persistent kernel
#endif
#if defined(GT_OWN_CUDA_KERNELS)
  std::unique_ptr<ClusterRecurrence> cluster;    // LSTMs up to batch 32: our own kernel, ahead of cuDNN's
  TensorCoreRecurrence* tensor_cores = nullptr;  // larger LSTM batches in fp16/bf16 (owned by the model)
  torch::Tensor raw;                             // its outputs
#endif
};

void TorchModel::predict_into(std::span<const float> windows, std::span<float> out, Precision precision) {
  const std::size_t L = spec_.data.sequence_length, F = spec_.data.features.size();
  const std::size_t batch = out.size();
  if (windows.size() != batch * L * F)
    throw ParamError(fmt::format("predict_into: {} outputs need {} input values ({} x {} x {}), got {}", batch,
                                 batch * L * F, batch, L, F, windows.size()));
  // Past a few thousand windows the kernels, not their launches, take the time: no graph needed.
  constexpr std::size_t kLargestGraphedBatch = 4096;
  if (!device_.is_cuda() || batch > kLargestGraphedBatch) {
    const auto scores = predict(Samples{windows, {}, L, F, false}, precision, 0);
    std::copy(scores.begin(), scores.end(), out.begin());
    return;
  }
#if defined(GT_TORCH_CUDA)
  torch::NoGradGuard no_grad;
  const auto key = std::make_pair(batch, precision);
  auto found = graphs_.find(key);
  if (found == graphs_.end()) {
    // Built aside and kept only once captured, so that a failure leaves no half-built graph behind.
    auto slot = std::make_shared<GraphedForward>();
    const auto b = static_cast<std::int64_t>(batch);
    const std::vector<std::int64_t> shape{b, static_cast<std::int64_t>(L), static_cast<std::int64_t>(F)};
    SignalNet net = network_for(precision);
    net->eval();
    const auto on_device = torch::TensorOptions().device(device_);
    const auto pinned = torch::TensorOptions().dtype(torch::kFloat).pinned_memory(true);
    slot->host_input = torch::zeros(shape, pinned);
    slot->host_output = torch::empty({b}, pinned);
    slot->staged = torch::zeros(shape, on_device.dtype(torch::kFloat));
    slot->input = precision == Precision::kFp32 ? slot->staged : slot->staged.to(scalar_type(precision));
#if defined(GT_OWN_CUDA_KERNELS)
    if (ClusterRecurrence::serves(spec_, b)) {
      try {
        slot->cluster = std::make_unique<ClusterRecurrence>(net, spec_, b, device_);
        slot->cluster->raw_output(slot->staged);
        torch::cuda::synchronize(device_.index());
      } catch (const std::exception&) {
        slot->cluster.reset();  // this GPU cannot hold the cluster: the paths below
      }
    }
    if (!slot->cluster) slot->tensor_cores = tensor_cores(precision);
    if (slot->tensor_cores) slot->raw = torch::empty({b}, on_device.dtype(torch::kFloat));
    const bool ours = slot->cluster || slot->tensor_cores;
#else
    const bool ours = false;
#endif
    if (!ours && PersistentRecurrence::serves(precision) && b <= PersistentRecurrence::kLargestBatch) {
      try {
        slot->persistent = std::make_unique<PersistentRecurrence>(net, spec_, b, device_, precision);
        slot->persistent->last_step(slot->input);
        torch::cuda::synchronize(device_.index());
      } catch (const std::exception&) {
        slot->persistent.reset();  // this GPU's cuDNN refuses it: LibTorch's path below
      }
    }
    const auto forward = [&] {
#if defined(GT_OWN_CUDA_KERNELS)
      // In fp32 on the staged input, whatever the precision: its weights are the precision's.
      if (slot->cluster) return to_output(slot->cluster->raw_output(slot->staged), spec_);
      if (slot->tensor_cores) {
        slot->tensor_cores->raw_output(slot->staged, slot->raw);
        return to_output(slot->raw, spec_);
      }
#endif
      if (precision != Precision::kFp32) slot->input.copy_(slot->staged);
      return to_output(
          slot->persistent ? net->head(slot->persistent->last_step(slot->input)) : net->forward(slot->input), spec_);
    };
    // Capture happens on a side stream after a warm-up there (cuDNN picks its algorithms then).
    c10::cuda::CUDAStream stream = c10::cuda::getStreamFromPool(false, device_.index());
    {
      c10::cuda::CUDAStreamGuard guard(stream);
      for (int i = 0; i < 3; ++i) slot->output = forward();
      stream.synchronize();
      slot->graph.capture_begin();
      // The copies are plain CUDA calls on pinned memory, so that they join the graph (LibTorch's
      // copy_ from pinned memory records events for its host allocator).
      C10_CUDA_CHECK(cudaMemcpyAsync(slot->staged.data_ptr(), slot->host_input.data_ptr(),
                                     static_cast<std::size_t>(slot->host_input.numel()) * sizeof(float),
                                     cudaMemcpyHostToDevice, stream.stream()));
      slot->output = forward();
      C10_CUDA_CHECK(cudaMemcpyAsync(slot->host_output.data_ptr(), slot->output.data_ptr(),
                                     static_cast<std::size_t>(b) * sizeof(float), cudaMemcpyDeviceToHost,
                                     stream.stream()));
      slot->graph.capture_end();
    }
    torch::cuda::synchronize(device_.index());
    found = graphs_.emplace(key, std::move(slot)).first;
  }
  GraphedForward& slot = *found->second;
  std::copy(windows.begin(), windows.end(), slot.host_input.data_ptr<float>());
  slot.graph.replay();
  c10::cuda::getCurrentCUDAStream(device_.index()).synchronize();
  std::copy_n(slot.host_output.data_ptr<float>(), batch, out.begin());
#endif
}

namespace {

std::unique_ptr<TorchModel> load_model(const std::filesystem::path& path, std::string_view device) {
  const std::string file = path.string();
  if (!std::filesystem::exists(path)) throw Error(fmt::format("{}: no such model file", file));
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(file, torch::Device(torch::kCPU));
  } catch (const c10::Error&) {
    throw Error(fmt::format("{}: not a model file (expected one written by `gtrader train`)", file));
  }
  c10::IValue format, spec_text;
  if (!archive.try_read("gt_format", format) || !format.isString() || format.toStringRef() != kFormat)
    throw Error(fmt::format("{}: not a GPT-Trader model file of format {}", file, kFormat));
  if (!archive.try_read("gt_spec", spec_text) || !spec_text.isString())
    throw Error(fmt::format("{}: the model file has no spec", file));
  ModelSpec spec;
  try {
    spec = spec_from_json(nlohmann::json::parse(spec_text.toStringRef()));
    check_spec(spec);
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("{}: the model's spec is damaged: {}", file, e.what()));
  } catch (const ParamError& e) {
    throw Error(fmt::format("{}: the model's spec is invalid: {}", file, e.what()));
  }
  // Built on the CPU without reseeding the global generator: its initial weights are overwritten
  // below, then it moves to its device.
  auto model = std::make_unique<TorchModel>(spec, torch::Device(torch::kCPU));
  torch::serialize::InputArchive weights;
  if (!archive.try_read("weights", weights)) throw Error(fmt::format("{}: the model file holds no weights", file));
  {
    torch::NoGradGuard no_grad;
    for (auto& p : model->net()->named_parameters()) {
      torch::Tensor stored;
      if (!weights.try_read(p.key(), stored))
        throw Error(fmt::format("{}: weight '{}' is missing for a {} of hidden_dim {} and {} layers", file, p.key(),
                                spec.config.model_type, spec.config.hidden_dim, spec.config.num_layers));
      if (stored.sizes() != p.value().sizes())
        throw Error(
            fmt::format("{}: weight '{}' has shape {}, but a {} of hidden_dim {}, {} layers and {} features "
                        "needs {}: the file does not match its own spec",
                        file, p.key(), shape_text(stored.sizes()), spec.config.model_type, spec.config.hidden_dim,
                        spec.config.num_layers, spec.data.features.size(), shape_text(p.value().sizes())));
      p.value().copy_(stored);
    }
  }
  model->place_on(torch::Device(torch_device(device)));
  return model;
}

class Module final : public TorchModule {
 public:
  std::unique_ptr<SignalModel::Impl> create(const ModelSpec& spec, std::uint64_t seed,
                                            std::string_view device) const override {
    check_spec(spec);
    const torch::Device place(torch_device(device));
    // Weights are drawn on the CPU, so a seed gives the same network on every device.
    torch::manual_seed(seed);
    auto model = std::make_unique<TorchModel>(spec, torch::Device(torch::kCPU));
    model->place_on(place);
    return model;
  }
  std::unique_ptr<SignalModel::Impl> load(const std::filesystem::path& path, std::string_view device) const override {
    return load_model(path, device);
  }
  std::string resolve_device(std::string_view requested) const override { return torch_device(requested); }
  std::vector<std::string> resolve_gpus(std::string_view spec) const override { return torch_gpus(spec); }
};

}  // namespace
}  // namespace gt::ml

extern "C" __attribute__((visibility("default"))) const gt::ml::TorchModule* gt_torch_module(int version) {
  static const gt::ml::Module module;
  return version == gt::ml::kTorchModuleVersion ? &module : nullptr;
}
