// SignalModel on LibTorch: prediction through its back-ends (our kernels, cuDNN's persistent kernel,
// LibTorch's path; graph-captured for small batches), and the module's entry point. The network is
// network.cpp's, devices devices.cpp's, the model file's format model_file.cpp's.
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

// Turns the network's raw output into the model's output (P(up), or a return).
torch::Tensor to_output(const torch::Tensor& raw, const ModelSpec& spec) {
  if (spec.data.label == Label::kDirection) return torch::sigmoid(raw.to(torch::kFloat));
  return raw.to(torch::kFloat) * spec.scaler.label_scale + spec.scaler.label_mean;
}

}  // namespace

TorchModel::TorchModel(const ModelSpec& spec, torch::Device device)
    : spec_(spec), device_(device), net_(spec.config, static_cast<std::int64_t>(spec.data.features.size())) {}

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

// ---------------------------------------------------------------------------------------------
// Prediction paths: the ways a batch of windows is predicted on this model's device, each behind
// one interface, tried in an order of preference (kBatchOrder, kGraphedOrder): the first that
// serves the model, batch and precision, and that this GPU can set up, is taken.

class PredictionPath {
 public:
  virtual ~PredictionPath() = default;
  // The network's raw outputs (batch) for `windows` (batch x L x F, fp32, on the model's device).
  virtual torch::Tensor raw_output(const torch::Tensor& windows) = 0;
};

enum class PredictionPathKind {
  kClusterKernel,     // ours: LSTMs, small batches, the whole window in one launch (fp32)
  kTensorCoreKernel,  // ours: LSTMs in fp16/bf16 on tensor cores, any batch
  kPersistentCudnn,   // cuDNN's persistent kernel: small batches in fp32 and fp16
  kLibTorch,          // LibTorch's modules: every network, batch and precision
};

namespace {

using PathKind = PredictionPathKind;
// predict(): whole batches at once. predict_into(): small batches replayed from a CUDA graph.
constexpr PathKind kBatchOrder[] = {PathKind::kTensorCoreKernel, PathKind::kLibTorch};
constexpr PathKind kGraphedOrder[] = {PathKind::kClusterKernel, PathKind::kTensorCoreKernel, PathKind::kPersistentCudnn,
                                      PathKind::kLibTorch};

class LibTorchPath final : public PredictionPath {
 public:
  LibTorchPath(SignalNet net, Precision precision, std::int64_t slice)
      : net_(std::move(net)), precision_(precision), slice_(slice) {}
  torch::Tensor raw_output(const torch::Tensor& windows) override {
    std::vector<torch::Tensor> parts;
    for (std::int64_t start = 0; start < windows.size(0); start += slice_) {
      const torch::Tensor x = windows.slice(0, start, std::min(windows.size(0), start + slice_)).contiguous();
      parts.push_back(net_->forward(precision_ == Precision::kFp32 ? x : x.to(scalar_type(precision_))));
    }
    return parts.size() == 1 ? parts.front() : torch::cat(parts);
  }

 private:
  SignalNet net_;
  Precision precision_;
  std::int64_t slice_;
};

#if defined(GT_TORCH_CUDA)
class PersistentCudnnPath final : public PredictionPath {
 public:
  PersistentCudnnPath(SignalNet net, std::unique_ptr<PersistentRecurrence> kernel, Precision precision)
      : net_(std::move(net)), kernel_(std::move(kernel)), precision_(precision) {}
  torch::Tensor raw_output(const torch::Tensor& windows) override {
    return net_->head(
        kernel_->last_step(precision_ == Precision::kFp32 ? windows : windows.to(scalar_type(precision_))));
  }

 private:
  SignalNet net_;
  std::unique_ptr<PersistentRecurrence> kernel_;
  Precision precision_;
};
#endif

#if defined(GT_OWN_CUDA_KERNELS)
class ClusterKernelPath final : public PredictionPath {
 public:
  explicit ClusterKernelPath(std::unique_ptr<ClusterRecurrence> kernel) : kernel_(std::move(kernel)) {}
  // In fp32 whatever the precision: its weights are the precision's.
  torch::Tensor raw_output(const torch::Tensor& windows) override { return kernel_->raw_output(windows); }

 private:
  std::unique_ptr<ClusterRecurrence> kernel_;
};

class TensorCorePath final : public PredictionPath {
 public:
  explicit TensorCorePath(TensorCoreRecurrence* kernel) : kernel_(kernel) {}
  // One launch for all the windows: the kernel keeps nothing per window beyond its output.
  torch::Tensor raw_output(const torch::Tensor& windows) override {
    torch::Tensor raw = torch::empty({windows.size(0)}, windows.options().dtype(torch::kFloat));
    kernel_->raw_output(windows, raw);
    return raw;
  }

 private:
  TensorCoreRecurrence* kernel_;  // owned by the model
};
#endif

}  // namespace

std::unique_ptr<PredictionPath> TorchModel::make_path(PathKind kind, std::int64_t batch, Precision precision,
                                                      bool trial, std::size_t slice) const {
  // The network in `precision`: the fp16/bf16 copy is made only for the paths that read it.
  const auto net = [&] {
    SignalNet n = network_for(precision);
    n->eval();
    return n;
  };
  // A path this GPU cannot set up (too little room for a cluster, a cuDNN that refuses a
  // configuration) is passed over for the next: its construction fails, or with `trial` a run on
  // zeros does.
  [[maybe_unused]] const auto set_up = [&](const auto& make) -> std::unique_ptr<PredictionPath> {
    try {
      std::unique_ptr<PredictionPath> path = make();
      if (trial) {
        const auto L = static_cast<std::int64_t>(spec_.data.sequence_length);
        const auto F = static_cast<std::int64_t>(spec_.data.features.size());
        path->raw_output(torch::zeros({batch, L, F}, torch::TensorOptions().device(device_).dtype(torch::kFloat)));
#if defined(GT_TORCH_CUDA)
        if (device_.is_cuda()) torch::cuda::synchronize(device_.index());
#endif
      }
      return path;
    } catch (const std::exception&) {
      return nullptr;
    }
  };
  switch (kind) {
    case PathKind::kLibTorch:
      return std::make_unique<LibTorchPath>(
          net(), precision, slice > 0 ? static_cast<std::int64_t>(slice) : (device_.is_cpu() ? 4096 : 16384));
    case PathKind::kPersistentCudnn:
#if defined(GT_TORCH_CUDA)
      if (!device_.is_cuda() || !PersistentRecurrence::serves(precision) || batch > PersistentRecurrence::kLargestBatch)
        return nullptr;
      return set_up([&] {
        const SignalNet n = net();
        return std::make_unique<PersistentCudnnPath>(
            n, std::make_unique<PersistentRecurrence>(n, spec_, batch, device_, precision), precision);
      });
#else
      return nullptr;
#endif
    case PathKind::kClusterKernel:
#if defined(GT_OWN_CUDA_KERNELS)
      if (!device_.is_cuda() || !ClusterRecurrence::serves(spec_, batch)) return nullptr;
      return set_up([&] {
        return std::make_unique<ClusterKernelPath>(std::make_unique<ClusterRecurrence>(net(), spec_, batch, device_));
      });
#else
      return nullptr;
#endif
    case PathKind::kTensorCoreKernel:
#if defined(GT_OWN_CUDA_KERNELS)
      if (TensorCoreRecurrence* kernel = tensor_cores(precision)) return std::make_unique<TensorCorePath>(kernel);
#endif
      return nullptr;
  }
  return nullptr;
}

std::unique_ptr<PredictionPath> TorchModel::first_path(std::span<const PathKind> order, std::int64_t batch,
                                                       Precision precision, bool trial, std::size_t slice) const {
  for (const PathKind kind : order)
    if (auto path = make_path(kind, batch, precision, trial, slice)) return path;
  throw Error("no prediction path serves this model");  // unreachable: LibTorch's serves every one
}

std::vector<float> TorchModel::predict(const Samples& samples, Precision precision, std::size_t batch_size) const {
  if (precision != Precision::kFp32 && device_.is_cpu())
    throw ParamError(fmt::format("precision {} needs a GPU; on the CPU use fp32", precision_name(precision)));
  torch::NoGradGuard no_grad;
  const torch::Tensor windows = windows_tensor(samples, spec_, device_);
  const std::int64_t n = windows.size(0);
  if (n == 0) return {};
  // batch_size: LibTorch's slices (0: its default for the device).
  const std::unique_ptr<PredictionPath> path = first_path(kBatchOrder, n, precision, false, batch_size);
  const torch::Tensor y = to_output(path->raw_output(windows), spec_).to(torch::kCPU).contiguous();
  return std::vector<float>(y.data_ptr<float>(), y.data_ptr<float>() + n);
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
      // This GPU cannot hold the kernel's cluster: the next path, without asking again.
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
  torch::Tensor host_input, staged, output, host_output;  // staged: the fp32 input on the device
  std::unique_ptr<PredictionPath> path;
#if defined(GT_TORCH_CUDA)
  at::cuda::CUDAGraph graph;
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
    const auto pinned = torch::TensorOptions().dtype(torch::kFloat).pinned_memory(true);
    slot->host_input = torch::zeros(shape, pinned);
    slot->host_output = torch::empty({b}, pinned);
    slot->staged = torch::zeros(shape, torch::TensorOptions().device(device_).dtype(torch::kFloat));
    slot->path = first_path(kGraphedOrder, b, precision, true, 0);
    const auto forward = [&] { return to_output(slot->path->raw_output(slot->staged), spec_); };
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
