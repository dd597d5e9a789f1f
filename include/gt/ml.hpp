// Neural signal models (LSTM, GRU) that turn OHLCV history into trading signals.
//
// Data preparation is plain C++ and always built. Training and prediction run on LibTorch, in a
// module built with -DGT_TORCH=ON and loaded on first use (so that programs that never touch a
// model never load LibTorch); without it they throw an Error that says how to get it.
//
// Time discipline (no look-ahead): the feature row of bar t uses bars <= t only; a sample's
// window is the rows of bars t-L+1 .. t and its label comes from bar t+1; samples are split in
// time order into train, validation and test; the scaler is fitted on the rows of bars up to the
// last training window's end, so no statistic sees a validation or test bar.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gt/data.hpp"
#include "gt/strategy.hpp"

namespace gt::ml {

// ---------------------------------------------------------------------------------------------
// Features and datasets (no LibTorch)

// Every feature name `compute_features` knows, with a one-line description each.
struct FeatureInfo {
  std::string name, description;
};
const std::vector<FeatureInfo>& feature_catalog();
// return, range, gap, volume_z, rsi: five features, as in the seed's examples.
const std::vector<std::string>& default_features();

// Per-bar feature values, row-major (bars x features). Rows before `first_defined` hold NaN
// (indicator warm-up); every row from it on is finite.
struct FeatureTable {
  std::size_t bars = 0, features = 0, first_defined = 0;
  std::vector<double> values;
  double at(std::size_t bar, std::size_t feature) const { return values[bar * features + feature]; }
};
// Throws ParamError naming an unknown feature and listing the known ones.
FeatureTable compute_features(const Bars& bars, std::span<const std::string> features);
// The first bar on which every one of `features` has a value (their widest lookback).
std::size_t features_lookback(std::span<const std::string> features);

enum class Label {
  kDirection,  // 1 when close[t+1] > close[t], else 0; the model outputs P(up)
  kReturn,     // close[t+1] / close[t] - 1; the model outputs the expected return
};
Label parse_label(std::string_view name);  // "direction" | "return"
std::string_view label_name(Label label);

// Standardization fitted on training rows only: (x - mean) / scale per feature; for return labels
// also the label's mean and scale.
struct Scaler {
  std::vector<double> mean, scale;
  double label_mean = 0.0, label_scale = 1.0;
};

struct DatasetOptions {
  std::size_t sequence_length = 60;
  std::vector<std::string> features = default_features();
  Label label = Label::kDirection;
  double validation_fraction = 0.15, test_fraction = 0.15;  // the rest trains; in time order
};

struct SampleRange {
  std::size_t begin = 0, end = 0;
  std::size_t size() const { return end - begin; }
};

// Samples as consecutive windows over scaled feature rows: sample i is rows i .. i+L-1, which are
// the bars first_bar+i .. first_bar+i+L-1; its label comes from the bar after its window.
struct Dataset {
  std::size_t sequence_length = 0, features = 0;
  std::size_t first_bar = 0;  // the bar of rows' first row
  std::vector<float> rows;    // (samples + L - 1) x features, scaled
  std::vector<float> labels;  // one per sample (return labels scaled by the scaler)
  SampleRange train, validation, test;
  Scaler scaler;
  DatasetOptions options;

  std::size_t samples() const { return labels.size(); }
  std::size_t end_bar(std::size_t sample) const { return first_bar + sample + sequence_length - 1; }
  // The windows of `range`, materialized (range.size() x L x features), for callers that want
  // samples as independent arrays (the Python package's (X, y)).
  std::vector<float> windows(SampleRange range) const;
};

// Throws ParamError when the options are out of range or `bars` is too short for one window in
// each of train, validation and test (the message says how many bars the options need).
Dataset prepare_dataset(const Bars& bars, const DatasetOptions& options);
// Scaled rows of every bar from the first full window on, with a scaler fitted earlier (what a
// trained model sees when it predicts); `first_bar` is set, `labels` left empty.
Dataset prediction_rows(const Bars& bars, const DatasetOptions& options, const Scaler& scaler);

// ---------------------------------------------------------------------------------------------
// Models (LibTorch)

enum class Precision { kFp32, kFp16, kBf16 };
Precision parse_precision(std::string_view name);  // "fp32" | "fp16" | "bf16"
std::string_view precision_name(Precision precision);

struct ModelConfig {
  std::string model_type = "lstm";  // "lstm" | "gru"
  int hidden_dim = 128;
  int num_layers = 2;
  double dropout = 0.0;   // between recurrent layers (needs num_layers > 1)
  void validate() const;  // throws ParamError naming the field and its allowed values
};

// Training in fp16 or bf16 needs CUDA; throws ParamError naming `device` otherwise.
void check_training_precision(Precision precision, std::string_view device);

struct TrainOptions {
  int epochs = 50;
  int batch_size = 256;
  double learning_rate = 1e-3, weight_decay = 1e-2;  // AdamW
  int patience = 10;                       // epochs without a better validation loss before stopping; 0: never
  double max_grad_norm = 1.0;              // gradient clipping by global norm; 0: off
  std::uint64_t seed = 42;                 // initial weights, shuffling and dropout
  Precision precision = Precision::kFp32;  // fp16 and bf16: autocast on CUDA (fp16 with loss scaling)
  bool cuda_graphs = true;                 // capture the training step once and replay it (CUDA only)
  // fp32 training on CUDA runs our kernels where they serve: the LSTM recurrence and AdamW. false
  // keeps LibTorch's (cuDNN's LSTM, its AdamW), for A/B measurements in one build.
  bool own_lstm_recurrence = true;
  bool own_adamw = true;
  void validate() const;
};

struct EpochReport {
  int epoch = 0;
  double train_loss = 0, validation_loss = 0, validation_accuracy = 0;  // accuracy: direction labels
  double seconds = 0, samples_per_second = 0;
  bool improved = false;
};

struct TrainReport {
  std::string device;
  std::vector<EpochReport> history;
  int best_epoch = 0;
  double best_validation_loss = 0;
  bool stopped_early = false;
  double test_loss = 0, test_accuracy = 0;  // of the best weights; NaN when there is no test part
  std::size_t train_samples = 0, validation_samples = 0, test_samples = 0;
};

// Samples handed to training: windows over rows (a Dataset), or independent windows.
struct Samples {
  std::span<const float> values;  // overlapping: (count + L - 1) x F rows; else count x L x F
  std::span<const float> labels;  // one per sample for training; empty for prediction
  std::size_t sequence_length = 0, features = 0;
  bool overlapping = true;
  // Whole windows in `values` (the model checks that nothing is left over).
  std::size_t count() const {
    const std::size_t rows = features > 0 ? values.size() / features : 0;
    if (overlapping) return rows >= sequence_length && sequence_length > 0 ? rows - sequence_length + 1 : 0;
    return sequence_length > 0 ? rows / sequence_length : 0;
  }
};

// What a model file holds besides its weights: enough to rebuild the network and to turn raw bars
// into the inputs it was trained on.
struct ModelSpec {
  ModelConfig config;
  DatasetOptions data;
  Scaler scaler;
  std::string trained_on;  // the data's symbol, for the record
};

class SignalModel {
 public:
  // A new network with weights drawn from `seed`, on `device`: auto (CUDA, then MPS, then the
  // CPU), cpu, cuda, cuda:N or mps.
  SignalModel(const ModelSpec& spec, std::uint64_t seed, std::string_view device = "auto");
  SignalModel(SignalModel&&) noexcept;
  SignalModel& operator=(SignalModel&&) noexcept;
  ~SignalModel();

  // Throws Error naming the file when it is not a model of this format or its weights do not fit
  // the shapes its spec describes.
  static SignalModel load(const std::filesystem::path& path, std::string_view device = "auto");
  void save(const std::filesystem::path& path) const;  // atomic: whole file or none

  const ModelSpec& spec() const;
  std::string device() const;  // "cpu", "cuda:0", "mps"

  // Trains in place (the weights at the end are the best by validation loss); `on_epoch` sees each
  // epoch's figures as they come.
  TrainReport train(const Samples& train, const Samples& validation, const Samples& test, const TrainOptions& options,
                    const std::function<void(const EpochReport&)>& on_epoch = {});
  TrainReport train(const Dataset& data, const TrainOptions& options,
                    const std::function<void(const EpochReport&)>& on_epoch = {});

  // Data-parallel training over `devices` (one replica and one thread each): identical initial
  // weights, every global batch of options.batch_size split evenly, gradients averaged by
  // all-reduce before clipping and the optimizer (NCCL through LibTorch's c10d ProcessGroupNCCL for
  // "cuda:N" devices; an in-process sum for "cpu" replicas, the same algorithm for tests), the
  // model left with rank 0's best weights. With one device it runs the same machinery (eager
  // steps, a world of one), the baseline that scaling is measured against.
  TrainReport train_parallel(const Dataset& data, const TrainOptions& options, const std::vector<std::string>& devices,
                             const std::function<void(const EpochReport&)>& on_epoch = {});

  // One output per sample: P(up) for direction models, the expected return for return models.
  std::vector<float> predict(const Samples& samples, Precision precision = Precision::kFp32,
                             std::size_t batch_size = 0) const;
  // One output per bar of `bars`, NaN where no full window ends.
  std::vector<double> predict_bars(const Bars& bars, Precision precision = Precision::kFp32) const;

  // Fixed-size prediction for latency: inputs are batch x L x F, outputs batch; on CUDA, for batches
  // up to 4,096, the forward pass is a graph captured on the first call of each size and replayed.
  void predict_into(std::span<const float> windows, std::span<float> out, Precision precision = Precision::kFp32);

  struct Impl;

 private:
  explicit SignalModel(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

bool torch_available();  // built with LibTorch, and its module loads
// "all" or "0,1" as CUDA devices ("cuda:0", ...); throws Error when one is absent.
std::vector<std::string> resolve_gpus(std::string_view spec);
// The device `requested` resolves to ("cpu", "cuda:0", "mps"); throws Error when it is absent.
std::string resolve_device(std::string_view requested);

// The `model` strategy over a trained model: long while the model's output is above its neutral
// point (0.5 for direction, 0 for return) by more than `threshold`, short (with allow_short)
// while it is below by more than `threshold`, flat otherwise.
Strategy model_strategy(std::shared_ptr<const SignalModel> model);

// find_strategy(name), except that `model` takes its model file from the `model=FILE` assignment
// (removed from `assignments`) and loads it; throws ParamError when it is missing.
Strategy resolve_strategy(std::string_view name, std::vector<std::pair<std::string, std::string>>& assignments);

}  // namespace gt::ml
