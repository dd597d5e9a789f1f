// Training: AdamW (LibTorch's fused kernel), gradient clipping by global norm, early stopping on
// validation loss with the best weights kept, fixed seeds, and on CUDA autocast in fp16 (dynamic
// loss scaling, as PyTorch's GradScaler does it) or bf16. On CUDA the whole step (gather, forward,
// backward, clipping, optimizer, loss-scale update) is captured once as a graph and replayed, so a
// step costs its kernels and not one launch per operation.
#include <ATen/ATen.h>
#include <fmt/format.h>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <limits>
#include <optional>

#if defined(GT_TORCH_CUDA)
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include "gt/error.hpp"
#include "network.hpp"

namespace gt::ml {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr std::int64_t kEvalBatch = 8192;
constexpr int kGraphWarmupSteps = 3;

struct LossParts {
  double loss = kNaN, accuracy = kNaN;
};

// One optimizer and its state; every tensor lives on the model's device so that the step can be
// captured in a CUDA graph.
class Trainer {
 public:
  Trainer(SignalNet net, const ModelSpec& spec, const TrainOptions& options, torch::Device device)
      : net_(std::move(net)), spec_(spec), options_(options), device_(device) {
    const auto on_device = torch::TensorOptions().device(device).dtype(torch::kFloat);
    for (auto& p : net_->parameters()) {
      params_.push_back(p);
      exp_avg_.push_back(torch::zeros_like(p));
      exp_avg_sq_.push_back(torch::zeros_like(p));
      steps_.push_back(torch::zeros({}, on_device));
    }
    learning_rate_ = torch::full({}, options.learning_rate, on_device);
    loss_sum_ = torch::zeros({}, on_device);
    if (options.precision == Precision::kFp16) {
      scale_ = torch::full({}, 65536.0, on_device);
      growth_tracker_ = torch::zeros({}, on_device.dtype(torch::kInt));
      found_inf_ = torch::zeros({}, on_device);
    }
  }

  torch::Tensor loss_of(const torch::Tensor& raw, const torch::Tensor& labels) const {
    return spec_.data.label == Label::kDirection
               ? torch::binary_cross_entropy_with_logits(raw.to(torch::kFloat), labels)
               : torch::mse_loss(raw.to(torch::kFloat), labels);
  }

  // One optimization step on (x, y); the batch's loss is added to loss_sum_ on the device.
  void step(const torch::Tensor& x, const torch::Tensor& y, bool capturing) {
    net_->zero_grad(/*set_to_none=*/true);
    torch::Tensor loss;
    {
      AutocastGuard autocast(device_.type(), options_.precision, /*cache=*/!capturing);
      loss = loss_of(net_->forward(x), y);
    }
    loss_sum_.add_(loss.detach() * static_cast<double>(x.size(0)));
    (scale_.defined() ? loss * scale_ : loss).backward();
    std::vector<torch::Tensor> grads;
    for (auto& p : params_) grads.push_back(p.grad());
    if (scale_.defined()) {
      found_inf_.zero_();
      at::_amp_foreach_non_finite_check_and_unscale_(grads, found_inf_, scale_.reciprocal());
    }
    if (options_.max_grad_norm > 0) {
      // Global norm without a host round trip: an overflowing fp16 step gives an infinite norm, a
      // zero factor, and is skipped below anyway.
      const torch::Tensor total = torch::stack(at::_foreach_norm(grads)).norm();
      const torch::Tensor factor = (options_.max_grad_norm / (total + 1e-6)).clamp_max(1.0);
      at::_foreach_mul_(grads, factor);
    }
    at::_foreach_add_(steps_, 1.0);
    std::optional<at::Tensor> found_inf;
    if (scale_.defined()) found_inf = found_inf_;
    at::_fused_adamw_(params_, grads, exp_avg_, exp_avg_sq_, {}, steps_, learning_rate_, 0.9, 0.999,
                      options_.weight_decay, 1e-8, /*amsgrad=*/false, /*maximize=*/false, std::nullopt, found_inf);
    if (scale_.defined()) {
      // A skipped step does not count, as in PyTorch's fused AdamW with a GradScaler.
      at::_foreach_sub_(steps_, std::vector<torch::Tensor>(steps_.size(), found_inf_));
      at::_amp_update_scale_(scale_, growth_tracker_, found_inf_, 2.0, 0.5, 2000);
    }
  }

  // Mean loss (and accuracy for direction labels) over `windows`, in eval mode.
  LossParts evaluate(const torch::Tensor& windows, const torch::Tensor& labels) {
    if (windows.size(0) == 0) return {};
    torch::NoGradGuard no_grad;
    net_->eval();
    torch::Tensor loss_sum = torch::zeros({}, loss_sum_.options());
    torch::Tensor correct = torch::zeros({}, loss_sum_.options());
    for (std::int64_t start = 0; start < windows.size(0); start += kEvalBatch) {
      const std::int64_t end = std::min(windows.size(0), start + kEvalBatch);
      const torch::Tensor y = labels.slice(0, start, end);
      torch::Tensor raw;
      {
        AutocastGuard autocast(device_.type(), options_.precision);
        raw = net_->forward(windows.slice(0, start, end).contiguous());
      }
      loss_sum.add_(loss_of(raw, y) * static_cast<double>(end - start));
      if (spec_.data.label == Label::kDirection) correct.add_(((raw > 0).to(torch::kFloat) == y).sum());
    }
    net_->train();
    const double n = static_cast<double>(windows.size(0));
    LossParts parts;
    parts.loss = loss_sum.item<double>() / n;
    if (spec_.data.label == Label::kDirection) parts.accuracy = correct.item<double>() / n;
    return parts;
  }

  double take_loss_sum() {
    const double sum = loss_sum_.item<double>();
    loss_sum_.zero_();
    return sum;
  }

 private:
  SignalNet net_;
  const ModelSpec& spec_;
  TrainOptions options_;
  torch::Device device_;
  std::vector<torch::Tensor> params_, exp_avg_, exp_avg_sq_, steps_;
  torch::Tensor learning_rate_, loss_sum_, scale_, growth_tracker_, found_inf_;
};

torch::Tensor labels_tensor(const Samples& s, torch::Device device) {
  auto* data = const_cast<float*>(s.labels.data());
  return torch::from_blob(data, {static_cast<std::int64_t>(s.count())})
      .to(device, /*non_blocking=*/false, /*copy=*/true);
}

Samples slice_of(const Dataset& d, SampleRange r) {
  Samples s;
  s.sequence_length = d.sequence_length;
  s.features = d.features;
  s.overlapping = true;
  s.labels = std::span<const float>(d.labels).subspan(r.begin, r.size());
  if (r.size() > 0)
    s.values =
        std::span<const float>(d.rows).subspan(r.begin * d.features, (r.size() + d.sequence_length - 1) * d.features);
  return s;
}

#if defined(GT_TORCH_CUDA)
// Work queued on `consumer` after this call waits for work queued on `producer` before it.
void wait_for(const c10::cuda::CUDAStream& consumer, const c10::cuda::CUDAStream& producer) {
  at::cuda::CUDAEvent event;
  event.record(producer);
  event.block(consumer);
}
#endif

}  // namespace

TrainReport SignalModel::train(const Dataset& data, const TrainOptions& options,
                               const std::function<void(const EpochReport&)>& on_epoch) {
  return train(slice_of(data, data.train), slice_of(data, data.validation), slice_of(data, data.test), options,
               on_epoch);
}

TrainReport SignalModel::train(const Samples& train_set, const Samples& validation_set, const Samples& test_set,
                               const TrainOptions& options, const std::function<void(const EpochReport&)>& on_epoch) {
  options.validate();
  const torch::Device device = impl_->device;
  if (options.precision != Precision::kFp32 && !device.is_cuda())
    throw ParamError(fmt::format("precision {} needs a CUDA GPU (this run is on {}); use fp32",
                                 precision_name(options.precision), device.str()));
  if (train_set.count() == 0) throw ParamError("no training samples");
  impl_->weights_changed();

  TrainReport report;
  report.device = device.str();
  report.train_samples = train_set.count();
  report.validation_samples = validation_set.count();
  report.test_samples = test_set.count();

  const torch::Tensor x_train = impl_->windows_tensor(train_set), y_train = labels_tensor(train_set, device);
  const torch::Tensor x_val = impl_->windows_tensor(validation_set), y_val = labels_tensor(validation_set, device);
  SignalNet net = impl_->net;
  net->train();
  Trainer trainer(net, impl_->spec, options, device);

  const std::int64_t n = x_train.size(0);
  const std::int64_t batch = std::min<std::int64_t>(options.batch_size, n);
  const std::int64_t full_batches = n / batch;
  // Shuffling draws from its own generator seeded by the options, the same on every device.
  auto shuffle = at::make_generator<at::CPUGeneratorImpl>(options.seed);
  torch::manual_seed(options.seed);  // dropout

#if defined(GT_TORCH_CUDA)
  const bool graphs = options.cuda_graphs && device.is_cuda();
  std::optional<at::cuda::CUDAGraph> graph;
  torch::Tensor static_index, static_x, static_y;
  std::optional<c10::cuda::CUDAStream> side_stream;
  int eager_steps = 0;
  if (graphs) {
    static_index = torch::zeros({batch}, torch::TensorOptions().device(device).dtype(torch::kLong));
    side_stream = c10::cuda::getStreamFromPool(false, device.index());
  }
#endif

  std::vector<torch::Tensor> best_weights;
  double best = std::numeric_limits<double>::infinity();
  int since_best = 0;
  for (int epoch = 1; epoch <= options.epochs; ++epoch) {
    const auto start = std::chrono::steady_clock::now();
    const torch::Tensor order = torch::randperm(n, shuffle, torch::TensorOptions().dtype(torch::kLong)).to(device);
    for (std::int64_t b = 0; b * batch < n; ++b) {
      const torch::Tensor index = order.slice(0, b * batch, std::min(n, (b + 1) * batch));
#if defined(GT_TORCH_CUDA)
      if (graphs && b < full_batches) {
        static_index.copy_(index);
        if (graph) {
          graph->replay();
          continue;
        }
        // The first full batches run eagerly on a side stream (cuDNN settles its algorithms and
        // workspaces), then the step is captured; the captured step is not run by capturing.
        const c10::cuda::CUDAStream main_stream = c10::cuda::getCurrentCUDAStream(device.index());
        c10::cuda::CUDAStreamGuard guard(*side_stream);
        wait_for(*side_stream, main_stream);
        const bool capture = eager_steps == kGraphWarmupSteps;
        if (capture) {
          graph.emplace();
          graph->capture_begin();
        }
        static_x = x_train.index_select(0, static_index);
        static_y = y_train.index_select(0, static_index);
        trainer.step(static_x, static_y, capture);
        if (capture) {
          graph->capture_end();
          graph->replay();
        }
        ++eager_steps;
        wait_for(main_stream, *side_stream);
        continue;
      }
#endif
      trainer.step(x_train.index_select(0, index), y_train.index_select(0, index), false);
    }
    (void)full_batches;
    EpochReport epoch_report;
    epoch_report.epoch = epoch;
    epoch_report.train_loss = trainer.take_loss_sum() / static_cast<double>(n);  // waits for the epoch's steps
    epoch_report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    epoch_report.samples_per_second = static_cast<double>(n) / epoch_report.seconds;
    const LossParts val = trainer.evaluate(x_val, y_val);
    epoch_report.validation_loss = val.loss;
    epoch_report.validation_accuracy = val.accuracy;
    // Without a validation part the last weights are kept and nothing stops early.
    const double watched = std::isnan(val.loss) ? -static_cast<double>(epoch) : val.loss;
    if (watched < best) {
      best = watched;
      report.best_epoch = epoch;
      report.best_validation_loss = val.loss;
      epoch_report.improved = true;
      since_best = 0;
      torch::NoGradGuard no_grad;
      best_weights.clear();
      for (const auto& p : net->parameters()) best_weights.push_back(p.detach().clone());
    } else {
      ++since_best;
    }
    report.history.push_back(epoch_report);
    if (on_epoch) on_epoch(epoch_report);
    if (!std::isfinite(epoch_report.train_loss))
      throw Error(fmt::format("training diverged at epoch {} (loss {}); lower the learning rate", epoch,
                              epoch_report.train_loss));
    if (options.patience > 0 && since_best >= options.patience) {
      report.stopped_early = epoch < options.epochs;
      break;
    }
  }
  {
    torch::NoGradGuard no_grad;
    auto params = net->parameters();
    for (std::size_t i = 0; i < params.size(); ++i) params[i].copy_(best_weights[i]);
  }
  const torch::Tensor x_test = impl_->windows_tensor(test_set), y_test = labels_tensor(test_set, device);
  const LossParts test = trainer.evaluate(x_test, y_test);
  report.test_loss = test.loss;
  report.test_accuracy = test.accuracy;
  net->eval();
  return report;
}

}  // namespace gt::ml
