// The seam between the engine and the LibTorch half of the signal models.
//
// LibTorch lives in a module of its own (libgt_torch.so, built with GT_TORCH) that signal_model.cpp
// loads with dlopen on the first call that needs it: linking it into every program made each
// `gtrader` command, model or not, spend ~0.5 s loading LibTorch and registering its operators.
// The module hands out one TorchModule; SignalModel forwards each call to its Impl.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "gt/ml.hpp"

namespace gt::ml {

using EpochCallback = std::function<void(const EpochReport&)>;

// One model's network and state, on one device: SignalModel's methods, one for one.
struct SignalModel::Impl {
  virtual ~Impl() = default;
  virtual const ModelSpec& spec() const = 0;
  virtual std::string device() const = 0;
  virtual void save(const std::filesystem::path& path) const = 0;
  virtual TrainReport train(const Samples& train, const Samples& validation, const Samples& test,
                            const TrainOptions& options, const EpochCallback& on_epoch) = 0;
  virtual TrainReport train(const Dataset& data, const TrainOptions& options, const EpochCallback& on_epoch) = 0;
  virtual TrainReport train_parallel(const Dataset& data, const TrainOptions& options,
                                     const std::vector<std::string>& devices, const EpochCallback& on_epoch) = 0;
  virtual std::vector<float> predict(const Samples& samples, Precision precision, std::size_t batch_size) const = 0;
  virtual std::vector<double> predict_bars(const Bars& bars, Precision precision) const = 0;
  virtual void predict_into(std::span<const float> windows, std::span<float> out, Precision precision) = 0;
};

// What the module exports: models, and the device queries that need LibTorch.
class TorchModule {
 public:
  virtual std::unique_ptr<SignalModel::Impl> create(const ModelSpec& spec, std::uint64_t seed,
                                                    std::string_view device) const = 0;
  virtual std::unique_ptr<SignalModel::Impl> load(const std::filesystem::path& path, std::string_view device) const = 0;
  virtual std::string resolve_device(std::string_view requested) const = 0;
  virtual std::vector<std::string> resolve_gpus(std::string_view spec) const = 0;

 protected:
  ~TorchModule() = default;
};

// Bumped whenever the classes above change, so that a stale module is refused instead of called.
inline constexpr int kTorchModuleVersion = 1;

}  // namespace gt::ml

// The module's one exported symbol: nullptr when `version` is not the one it was built with.
extern "C" const gt::ml::TorchModule* gt_torch_module(int version);
