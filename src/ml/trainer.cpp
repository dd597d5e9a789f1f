#include "trainer.hpp"

#include <fmt/format.h>

#include <cmath>
#include <cstdlib>
#include <string_view>

#include "gt/error.hpp"

#if defined(GT_OWN_CUDA_KERNELS)
#include "cuda/adamw.hpp"
#include "own_kernels.hpp"
#endif

namespace gt::ml {
namespace {

constexpr std::int64_t kEvalBatch = 8192;
constexpr double kBeta1 = 0.9, kBeta2 = 0.999, kEps = 1e-8;

#if defined(GT_OWN_CUDA_KERNELS)
// Whether the step takes our two-launch AdamW (cuda/adamw.hpp): asked for (TrainOptions::own_adamw),
// fp32 parameters on a CUDA device, few enough of them for one launch.
bool own_optimizer(const std::vector<torch::Tensor>& params, torch::Device device, bool wanted) {
  if (!wanted || !device.is_cuda() || params.empty() || params.size() > cuda::AdamwTensors::kMaxTensors) return false;
  for (const auto& p : params)
    if (p.scalar_type() != torch::kFloat || !p.is_contiguous()) return false;
  return true;
}
#endif

}  // namespace

Trainer::Trainer(SignalNet net, const ModelSpec& spec, const TrainOptions& options, torch::Device device)
    : net_(std::move(net)), spec_(spec), options_(options), device_(device) {
  const auto on_device = torch::TensorOptions().device(device).dtype(torch::kFloat);
  for (auto& p : net_->parameters()) {
    params_.push_back(p);
    exp_avg_.push_back(torch::zeros_like(p));
    exp_avg_sq_.push_back(torch::zeros_like(p));
  }
#if defined(GT_OWN_CUDA_KERNELS)
  if (own_optimizer(params_, device, options.own_adamw)) {
    steps_.push_back(torch::zeros({}, on_device));  // one count for all
    cuda::AdamwTensors sizes;
    sizes.count = static_cast<int>(params_.size());
    for (std::size_t k = 0; k < params_.size(); ++k) sizes.size[k] = params_[k].numel();
    optimizer_workspace_ = torch::empty({cuda::adamw_workspace(sizes)}, on_device);
  }
#endif
  if (!optimizer_workspace_.defined())
    for (std::size_t k = 0; k < params_.size(); ++k) steps_.push_back(torch::zeros({}, on_device));
  learning_rate_ = torch::full({}, options.learning_rate, on_device);
  loss_sum_ = torch::zeros({}, on_device);
  if (options.precision == Precision::kFp16) {
    scale_ = torch::full({}, 65536.0, on_device);
    growth_tracker_ = torch::zeros({}, on_device.dtype(torch::kInt));
    found_inf_ = torch::zeros({}, on_device);
  }
}

torch::Tensor Trainer::loss_of(const torch::Tensor& raw, const torch::Tensor& labels) const {
  return spec_.data.label == Label::kDirection ? torch::binary_cross_entropy_with_logits(raw.to(torch::kFloat), labels)
                                               : torch::mse_loss(raw.to(torch::kFloat), labels);
}

void Trainer::step(const torch::Tensor& x, const torch::Tensor& y, bool capturing, double weight,
                   const GradientReduce& reduce) {
  net_->zero_grad(/*set_to_none=*/true);
  if (x.size(0) > 0) {
    torch::Tensor loss;
    {
      AutocastGuard autocast(device_.type(), options_.precision, /*cache=*/!capturing);
      loss = loss_of(net_->forward(x), y);
    }
    loss_sum_.add_(loss.detach() * static_cast<double>(x.size(0)));
    const torch::Tensor weighted = weight == 1.0 ? loss : loss * weight;
    (scale_.defined() ? weighted * scale_ : weighted).backward();
  } else {
    for (auto& p : params_) p.mutable_grad() = torch::zeros_like(p);
  }
  std::vector<torch::Tensor> grads;
  for (auto& p : params_) grads.push_back(p.grad());
  if (reduce) reduce(grads);
  if (scale_.defined()) {
    found_inf_.zero_();
    at::_amp_foreach_non_finite_check_and_unscale_(grads, found_inf_, scale_.reciprocal());
  }
  bool stepped = false;
#if defined(GT_OWN_CUDA_KERNELS)
  if (optimizer_workspace_.defined()) {
    cuda::AdamwTensors t;
    t.count = static_cast<int>(params_.size());
    for (std::size_t k = 0; k < params_.size(); ++k) {
      if (!grads[k].is_contiguous()) grads[k] = grads[k].contiguous();
      t.param[k] = params_[k].data_ptr<float>();
      t.grad[k] = grads[k].data_ptr<float>();
      t.exp_avg[k] = exp_avg_[k].data_ptr<float>();
      t.exp_avg_sq[k] = exp_avg_sq_[k].data_ptr<float>();
      t.size[k] = params_[k].numel();
    }
    const cuda::AdamwSettings settings{kBeta1, kBeta2, options_.weight_decay, kEps, options_.max_grad_norm};
    const int index = device_.index() < 0 ? 0 : device_.index();
    use_cuda_device(index);
    check_cuda(cuda::adamw_step(t, settings, learning_rate_.data_ptr<float>(), steps_[0].data_ptr<float>(),
                                scale_.defined() ? found_inf_.data_ptr<float>() : nullptr,
                                optimizer_workspace_.data_ptr<float>(), current_cuda_stream(index)),
               "launching the AdamW kernels");
    stepped = true;
  }
#endif
  if (!stepped) {
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
    at::_fused_adamw_(params_, grads, exp_avg_, exp_avg_sq_, {}, steps_, learning_rate_, kBeta1, kBeta2,
                      options_.weight_decay, kEps, /*amsgrad=*/false, /*maximize=*/false, std::nullopt, found_inf);
    // A skipped step does not count, as in PyTorch's fused AdamW with a GradScaler.
    if (scale_.defined()) at::_foreach_sub_(steps_, std::vector<torch::Tensor>(steps_.size(), found_inf_));
  }
  if (scale_.defined()) at::_amp_update_scale_(scale_, growth_tracker_, found_inf_, 2.0, 0.5, 2000);
}

LossParts Trainer::evaluate(const torch::Tensor& windows, const torch::Tensor& labels) {
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

double Trainer::take_loss_sum() {
  const double sum = loss_sum_.item<double>();
  loss_sum_.zero_();
  return sum;
}

Progress::Progress(TrainReport& report, const TrainOptions& options, std::size_t train_samples,
                   const std::function<void(const EpochReport&)>& on_epoch)
    : report_(report), options_(options), train_samples_(train_samples), on_epoch_(on_epoch) {}

bool Progress::finish_epoch(int epoch, double train_loss, double seconds, const LossParts& validation, SignalNet& net) {
  EpochReport e;
  e.epoch = epoch;
  e.train_loss = train_loss;
  e.seconds = seconds;
  e.samples_per_second = static_cast<double>(train_samples_) / seconds;
  e.validation_loss = validation.loss;
  e.validation_accuracy = validation.accuracy;
  const double watched = std::isnan(validation.loss) ? -static_cast<double>(epoch) : validation.loss;
  if (watched < best_) {
    best_ = watched;
    report_.best_epoch = epoch;
    report_.best_validation_loss = validation.loss;
    e.improved = true;
    since_best_ = 0;
    torch::NoGradGuard no_grad;
    best_weights_.clear();
    for (const auto& p : net->parameters()) best_weights_.push_back(p.detach().clone());
  } else {
    ++since_best_;
  }
  report_.history.push_back(e);
  if (on_epoch_) on_epoch_(e);
  if (!std::isfinite(train_loss))
    throw Error(fmt::format("training diverged at epoch {} (loss {}); lower the learning rate", epoch, train_loss));
  if (options_.patience > 0 && since_best_ >= options_.patience) {
    report_.stopped_early = epoch < options_.epochs;
    return true;
  }
  return false;
}

void Progress::restore_best(SignalNet& net) const {
  torch::NoGradGuard no_grad;
  auto params = net->parameters();
  for (std::size_t i = 0; i < params.size(); ++i) params[i].copy_(best_weights_[i]);
}

torch::Tensor labels_tensor(const Samples& s, torch::Device device) {
  if (s.labels.size() != s.count())
    throw ParamError(fmt::format("{} training windows but {} labels", s.count(), s.labels.size()));
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

}  // namespace gt::ml
