// The signal models' data discipline (no look-ahead anywhere) and, where LibTorch is built in,
// training, model files and their failures.
#include "gt/ml.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "gt/backtest.hpp"
#include "gt/error.hpp"
#include "require.hpp"

namespace {

namespace ml = gt::ml;

const gt::Bars& orcl() {
  static const gt::Bars bars = gt::load_csv(GT_DATA_DIR "/orcl-1995-2014.csv");
  return bars;
}

std::vector<std::string> all_features() {
  std::vector<std::string> names;
  for (const auto& f : ml::feature_catalog()) names.push_back(f.name);
  return names;
}

bool same_bits(double a, double b) {
  return std::memcmp(&a, &b, sizeof a) == 0;
}

gt::Bars prefix(const gt::Bars& b, std::size_t n) {
  gt::Bars out = b;
  for (auto* column : {&out.open, &out.high, &out.low, &out.close, &out.volume}) column->resize(n);
  out.time.resize(n);
  return out;
}

// Every price and volume after bar `last` replaced by something wildly different.
gt::Bars scrambled_after(const gt::Bars& b, std::size_t last) {
  gt::Bars out = b;
  for (std::size_t t = last + 1; t < out.size(); ++t) {
    const double k = (t % 2) ? 3.0 : 0.25;
    out.open[t] *= k;
    out.high[t] *= k;
    out.low[t] *= k;
    out.close[t] *= k;
    out.volume[t] = out.volume[t] * 7 + 1e6;
  }
  return out;
}

TEST(MlFeatures, NoFeatureOfABarReadsALaterBar) {
  const auto names = all_features();
  const ml::FeatureTable full = ml::compute_features(orcl(), names);
  for (const std::size_t n : {40u, 101u, 777u, 2500u}) {
    const ml::FeatureTable part = ml::compute_features(prefix(orcl(), n), names);
    EXPECT_EQ(part.first_defined, full.first_defined);
    for (std::size_t t = 0; t < n; ++t)
      for (std::size_t f = 0; f < names.size(); ++f)
        ASSERT_TRUE(same_bits(part.at(t, f), full.at(t, f))) << names[f] << " at bar " << t << " of " << n;
  }
}

TEST(MlFeatures, RowsFromTheFirstDefinedBarOnAreFinite) {
  const ml::FeatureTable table = ml::compute_features(orcl(), all_features());
  EXPECT_EQ(table.first_defined, 33u);  // MACD(12,26,9)'s lookback, the longest
  for (std::size_t t = table.first_defined; t < table.bars; ++t)
    for (std::size_t f = 0; f < table.features; ++f) ASSERT_TRUE(std::isfinite(table.at(t, f)));
}

TEST(MlDataset, AWindowIsTheScaledRowsUpToItsEndBarAndItsLabelIsTheNextBar) {
  ml::DatasetOptions options;
  options.sequence_length = 20;
  const ml::Dataset d = ml::prepare_dataset(orcl(), options);
  const ml::FeatureTable table = ml::compute_features(orcl(), options.features);
  ASSERT_EQ(d.first_bar, table.first_defined);
  EXPECT_EQ(d.samples(), orcl().size() - d.first_bar - options.sequence_length);
  const auto windows = d.windows({0, d.samples()});
  for (const std::size_t i : {std::size_t{0}, d.samples() / 2, d.samples() - 1}) {
    const std::size_t end = d.end_bar(i);
    for (std::size_t k = 0; k < options.sequence_length; ++k) {
      const std::size_t bar = end + 1 - options.sequence_length + k;
      for (std::size_t f = 0; f < d.features; ++f) {
        const auto expected = static_cast<float>((table.at(bar, f) - d.scaler.mean[f]) / d.scaler.scale[f]);
        ASSERT_EQ(windows[(i * options.sequence_length + k) * d.features + f], expected);
      }
    }
    EXPECT_EQ(d.labels[i], orcl().close[end + 1] > orcl().close[end] ? 1.0f : 0.0f);
  }
  // The last sample's label is the last bar: nothing beyond the data is invented.
  EXPECT_EQ(d.end_bar(d.samples() - 1) + 1, orcl().size() - 1);
}

TEST(MlDataset, SplitsFollowTimeAndTheScalerSeesOnlyTrainingBars) {
  const ml::DatasetOptions options;
  const ml::Dataset d = ml::prepare_dataset(orcl(), options);
  EXPECT_EQ(d.train.begin, 0u);
  EXPECT_EQ(d.train.end, d.validation.begin);
  EXPECT_EQ(d.validation.end, d.test.begin);
  EXPECT_EQ(d.test.end, d.samples());
  EXPECT_NEAR(static_cast<double>(d.validation.size()) / static_cast<double>(d.samples()), 0.15, 0.01);
  EXPECT_NEAR(static_cast<double>(d.test.size()) / static_cast<double>(d.samples()), 0.15, 0.01);

  // Rewriting every bar after the last training window changes neither the scaler nor any
  // training window; its last label reads the first bar after it, and so may change.
  const std::size_t last_train_bar = d.end_bar(d.train.end - 1);
  const ml::Dataset other = ml::prepare_dataset(scrambled_after(orcl(), last_train_bar), options);
  EXPECT_EQ(other.scaler.mean, d.scaler.mean);
  EXPECT_EQ(other.scaler.scale, d.scaler.scale);
  EXPECT_EQ(other.windows(other.train), d.windows(d.train));
  for (std::size_t i = 0; i + 1 < d.train.end; ++i) ASSERT_EQ(other.labels[i], d.labels[i]);

  // The same rewrite one training bar earlier does reach the scaler: the check above can fail.
  const ml::Dataset leaked = ml::prepare_dataset(scrambled_after(orcl(), last_train_bar - 1), options);
  EXPECT_NE(leaked.scaler.mean, d.scaler.mean);
}

TEST(MlDataset, ReturnLabelsAreScaledByTrainingLabelsOnly) {
  ml::DatasetOptions options;
  options.label = ml::Label::kReturn;
  const ml::Dataset d = ml::prepare_dataset(orcl(), options);
  const std::size_t end = d.end_bar(10);
  const double raw = orcl().close[end + 1] / orcl().close[end] - 1.0;
  EXPECT_FLOAT_EQ(d.labels[10], static_cast<float>((raw - d.scaler.label_mean) / d.scaler.label_scale));
  double sum = 0;
  for (std::size_t i = d.train.begin; i < d.train.end; ++i) sum += d.labels[i];
  EXPECT_NEAR(sum / static_cast<double>(d.train.size()), 0.0, 1e-6);
}

TEST(MlDataset, TooFewBarsFailSayingHowManyAreNeeded) {
  ml::DatasetOptions options;
  options.sequence_length = 60;
  try {
    (void)ml::prepare_dataset(gt::last_bars(orcl(), 80), options);
    FAIL() << "expected ParamError";
  } catch (const gt::ParamError& e) {
    EXPECT_NE(std::string(e.what()).find("80 bars are too few for sequence_length 60"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("bars are needed"), std::string::npos) << e.what();
  }
}

TEST(MlDataset, ANonFiniteValueFailsNamingItsBar) {
  gt::Bars bars = gt::last_bars(orcl(), 500);
  bars.close[300] = std::nan("");
  try {
    (void)ml::prepare_dataset(bars, {});
    FAIL() << "expected DataError";
  } catch (const gt::DataError& e) {
    EXPECT_NE(std::string(e.what()).find("not finite at bar 300"), std::string::npos) << e.what();
  }
}

TEST(MlDataset, BadOptionsFailBeforeAnyWork) {
  ml::DatasetOptions options;
  options.features = {"return", "moon_phase"};
  EXPECT_THROW((void)ml::prepare_dataset(orcl(), options), gt::ParamError);
  options = {};
  options.validation_fraction = 0.5;
  options.test_fraction = 0.45;
  EXPECT_THROW((void)ml::prepare_dataset(orcl(), options), gt::ParamError);
  options = {};
  options.sequence_length = 0;
  EXPECT_THROW((void)ml::prepare_dataset(orcl(), options), gt::ParamError);
  EXPECT_THROW(ml::parse_label("up"), gt::ParamError);
  EXPECT_THROW(ml::parse_precision("fp8"), gt::ParamError);
  ml::ModelConfig config;
  config.model_type = "transformer";
  EXPECT_THROW(config.validate(), gt::ParamError);
}

// ---------------------------------------------------------------------------------------------
// With LibTorch

#define REQUIRE_TORCH() \
  if (!ml::torch_available()) GT_SKIP_OR_FAIL("built without LibTorch (GT_TORCH=OFF)")

struct Small {
  ml::Dataset data;
  ml::ModelSpec spec;
};

// A short stretch of ORCL and a small network: seconds of CPU time.
Small small_problem(int hidden = 32) {
  ml::DatasetOptions options;
  options.sequence_length = 20;
  Small s{ml::prepare_dataset(gt::last_bars(orcl(), 900), options), {}};
  s.spec.config.hidden_dim = hidden;
  s.spec.config.num_layers = 2;
  s.spec.data = options;
  s.spec.scaler = s.data.scaler;
  s.spec.trained_on = "orcl";
  return s;
}

ml::Samples samples_of(const ml::Dataset& d, ml::SampleRange r) {
  ml::Samples s;
  s.sequence_length = d.sequence_length;
  s.features = d.features;
  s.labels = std::span<const float>(d.labels).subspan(r.begin, r.size());
  s.values =
      std::span<const float>(d.rows).subspan(r.begin * d.features, (r.size() + d.sequence_length - 1) * d.features);
  return s;
}

double bce(const std::vector<float>& p, std::span<const float> y) {
  double sum = 0;
  for (std::size_t i = 0; i < p.size(); ++i) {
    const double q = std::clamp(static_cast<double>(p[i]), 1e-7, 1 - 1e-7);
    sum -= y[i] * std::log(q) + (1 - y[i]) * std::log(1 - q);
  }
  return sum / static_cast<double>(p.size());
}

TEST(MlModel, TrainingReducesTheLossOnRealData) {
  REQUIRE_TORCH();
  Small s = small_problem(64);
  ml::SignalModel model(s.spec, 7, "cpu");
  const ml::Samples train = samples_of(s.data, s.data.train);
  const double before = bce(model.predict(train), train.labels);
  ml::TrainOptions options;
  options.epochs = 40;
  options.learning_rate = 1e-2;
  options.patience = 0;  // keep training: this is about fitting, not generalizing
  options.weight_decay = 0;
  s.data.validation = {s.data.train.begin, s.data.train.end};  // best weights by training loss
  const auto report = model.train(s.data, options);
  const double after = bce(model.predict(train), train.labels);
  EXPECT_LT(after, before - 0.02) << "before " << before << ", after " << after;
  EXPECT_EQ(report.device, "cpu");
  EXPECT_EQ(report.history.size(), 40u);
  EXPECT_LT(report.history.back().train_loss, report.history.front().train_loss);
}

TEST(MlModel, EarlyStoppingKeepsTheBestValidationWeights) {
  REQUIRE_TORCH();
  Small s = small_problem();
  ml::SignalModel model(s.spec, 7, "cpu");
  ml::TrainOptions options;
  options.epochs = 30;
  options.patience = 3;
  options.learning_rate = 1e-2;
  const auto report = model.train(s.data, options);
  ASSERT_TRUE(report.stopped_early);
  EXPECT_EQ(static_cast<int>(report.history.size()), report.best_epoch + options.patience);
  // The weights left in the model are the best epoch's: its validation loss, recomputed.
  const ml::Samples val = samples_of(s.data, s.data.validation);
  EXPECT_NEAR(bce(model.predict(val), val.labels), report.best_validation_loss, 1e-5);
}

TEST(MlModel, TheSameSeedTrainsTheSameModel) {
  REQUIRE_TORCH();
  const Small s = small_problem();
  ml::TrainOptions options;
  options.epochs = 3;
  ml::SignalModel a(s.spec, 11, "cpu"), b(s.spec, 11, "cpu");
  (void)a.train(s.data, options);
  (void)b.train(s.data, options);
  const ml::Samples test = samples_of(s.data, s.data.test);
  EXPECT_EQ(a.predict(test), b.predict(test));
}

TEST(MlModel, DataParallelReplicasTrainTheSameModelAsOneDevice) {
  REQUIRE_TORCH();
  Small s = small_problem();
  ml::TrainOptions options;
  options.epochs = 3;
  options.learning_rate = 1e-2;
  // Batches of 200 over 3 replicas split 67/67/66, and the last, short batch of the epoch leaves a
  // replica with nothing when it holds fewer samples than there are replicas.
  options.batch_size = static_cast<int>(s.data.train.size()) - 2;
  ml::SignalModel one(s.spec, 9, "cpu"), three(s.spec, 9, "cpu"), other_seed(s.spec, 10, "cpu");
  const auto single = one.train(s.data, options);
  const auto parallel = three.train_parallel(s.data, options, {"cpu", "cpu", "cpu"});
  (void)other_seed.train(s.data, options);
  EXPECT_EQ(parallel.device, "3 x cpu");
  ASSERT_EQ(parallel.history.size(), single.history.size());
  for (std::size_t e = 0; e < single.history.size(); ++e)
    EXPECT_NEAR(parallel.history[e].train_loss, single.history[e].train_loss, 1e-5) << "epoch " << e + 1;
  const ml::Samples test = samples_of(s.data, s.data.test);
  const auto a = one.predict(test), b = three.predict(test), c = other_seed.predict(test);
  double parallel_gap = 0, seed_gap = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    parallel_gap = std::max(parallel_gap, static_cast<double>(std::abs(a[i] - b[i])));
    seed_gap = std::max(seed_gap, static_cast<double>(std::abs(a[i] - c[i])));
  }
  EXPECT_LT(parallel_gap, 1e-4);
  EXPECT_GT(seed_gap, 1e-3);  // what a wrong gradient or a different start looks like
}

TEST(MlModel, SaveAndLoadGiveTheSamePredictionsBitForBit) {
  REQUIRE_TORCH();
  const Small s = small_problem();
  ml::SignalModel model(s.spec, 3, "cpu");
  ml::TrainOptions options;
  options.epochs = 2;
  (void)model.train(s.data, options);
  const auto path = std::filesystem::temp_directory_path() / "gt-ml-test-roundtrip.pt";
  model.save(path);
  const ml::SignalModel loaded = ml::SignalModel::load(path, "cpu");
  EXPECT_EQ(loaded.spec().config.hidden_dim, 32);
  EXPECT_EQ(loaded.spec().data.features, s.spec.data.features);
  EXPECT_EQ(loaded.spec().scaler.mean, s.spec.scaler.mean);
  const auto bars = gt::last_bars(orcl(), 900);
  const auto a = model.predict_bars(bars), b = loaded.predict_bars(bars);
  ASSERT_EQ(a.size(), b.size());
  std::size_t defined = 0;
  for (std::size_t t = 0; t < a.size(); ++t) {
    ASSERT_TRUE(same_bits(a[t], b[t])) << "bar " << t;
    defined += std::isfinite(a[t]);
  }
  EXPECT_EQ(defined, bars.size() - s.data.first_bar - s.data.sequence_length + 1);
  std::filesystem::remove(path);
}

TEST(MlModel, FilesAndInputsOfAnotherShapeFailClearly) {
  REQUIRE_TORCH();
  const auto dir = std::filesystem::temp_directory_path();
  // Not a model at all.
  const auto text = dir / "gt-ml-test-not-a-model.pt";
  std::ofstream(text) << "Date,Open\n";
  try {
    (void)ml::SignalModel::load(text);
    FAIL() << "expected Error";
  } catch (const gt::Error& e) {
    EXPECT_NE(std::string(e.what()).find("not a model file"), std::string::npos) << e.what();
  }
  EXPECT_THROW((void)ml::SignalModel::load(dir / "gt-ml-test-missing.pt"), gt::Error);
  std::filesystem::remove(text);

  // A model of 5 features and 20 bars handed windows of 4 features.
  const Small s = small_problem();
  ml::SignalModel model(s.spec, 3, "cpu");
  std::vector<float> windows(2 * 20 * 4), labels(2);
  const ml::Samples wrong{windows, labels, 20, 4, false};
  try {
    (void)model.predict(wrong);
    FAIL() << "expected ParamError";
  } catch (const gt::ParamError& e) {
    EXPECT_NE(std::string(e.what()).find("do not fit a model of 20 bars x 5 features"), std::string::npos) << e.what();
  }
  // fp16 on the CPU is refused rather than silently run in fp32.
  EXPECT_THROW((void)model.predict(samples_of(s.data, s.data.test), ml::Precision::kFp16), gt::ParamError);
}

TEST(MlModel, TheModelStrategyTradesOnTheModelsOutputs) {
  REQUIRE_TORCH();
  const Small s = small_problem();
  auto model = std::make_shared<ml::SignalModel>(s.spec, 5, "cpu");
  const gt::Strategy strategy = ml::model_strategy(model);
  const auto bars = gt::last_bars(orcl(), 900);
  const auto outputs = model->predict_bars(bars);
  std::vector<std::uint8_t> signals(bars.size());
  gt::SeriesCache cache;
  strategy.signals(bars, {0.0}, signals, cache);
  for (std::size_t t = 0; t < bars.size(); ++t) {
    if (std::isnan(outputs[t])) {
      ASSERT_EQ(signals[t], 0) << t;
    } else if (outputs[t] > 0.5) {
      ASSERT_EQ(signals[t], gt::kLongEntry | gt::kShortExit) << t;
    } else if (outputs[t] < 0.5) {
      ASSERT_EQ(signals[t], gt::kShortEntry | gt::kLongExit) << t;
    }
  }
  // A margin wider than any output keeps it flat.
  strategy.signals(bars, {0.5}, signals, cache);
  for (std::size_t t = 0; t < bars.size(); ++t) {
    if (std::isnan(outputs[t])) continue;
    ASSERT_EQ(signals[t], gt::kLongExit | gt::kShortExit) << t;
  }
}

}  // namespace
