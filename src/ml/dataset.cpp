// Features, windows, labels, chronological splits and scaling for the signal models. Everything
// here looks only backwards in time; see the discipline stated in gt/ml.hpp.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "gt/error.hpp"
#include "gt/indicators.hpp"
#include "gt/ml.hpp"

namespace gt::ml {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr int kVolumeWindow = 20;
constexpr int kRsiPeriod = 14;
constexpr int kAtrPeriod = 14;
constexpr int kSmaPeriod = 20;
constexpr int kRocPeriod = 10;

using FeatureFn = std::vector<double> (*)(const Bars&);

std::vector<double> nan_series(const Bars& b) {
  return std::vector<double>(b.size(), kNaN);
}

std::vector<double> close_return(const Bars& b) {
  auto out = nan_series(b);
  for (std::size_t t = 1; t < b.size(); ++t) out[t] = b.close[t] / b.close[t - 1] - 1.0;
  return out;
}

std::vector<double> log_return(const Bars& b) {
  auto out = nan_series(b);
  for (std::size_t t = 1; t < b.size(); ++t) out[t] = std::log(b.close[t] / b.close[t - 1]);
  return out;
}

std::vector<double> bar_range(const Bars& b) {
  std::vector<double> out(b.size());
  for (std::size_t t = 0; t < b.size(); ++t) out[t] = (b.high[t] - b.low[t]) / b.close[t];
  return out;
}

std::vector<double> opening_gap(const Bars& b) {
  auto out = nan_series(b);
  for (std::size_t t = 1; t < b.size(); ++t) out[t] = b.open[t] / b.close[t - 1] - 1.0;
  return out;
}

std::vector<double> candle_body(const Bars& b) {
  std::vector<double> out(b.size());
  for (std::size_t t = 0; t < b.size(); ++t) out[t] = b.close[t] / b.open[t] - 1.0;
  return out;
}

// (volume - mean) / std over the trailing 20 bars (population std); 0 when volume is constant.
std::vector<double> volume_z(const Bars& b) {
  auto out = nan_series(b);
  for (std::size_t t = kVolumeWindow - 1; t < b.size(); ++t) {
    double sum = 0, sum_sq = 0;
    for (std::size_t s = t + 1 - kVolumeWindow; s <= t; ++s) sum += b.volume[s];
    const double mean = sum / kVolumeWindow;
    for (std::size_t s = t + 1 - kVolumeWindow; s <= t; ++s) sum_sq += (b.volume[s] - mean) * (b.volume[s] - mean);
    const double sd = std::sqrt(sum_sq / kVolumeWindow);
    out[t] = sd > 0 ? (b.volume[t] - mean) / sd : 0.0;
  }
  return out;
}

std::vector<double> rsi_feature(const Bars& b) {
  auto out = ind::rsi(b.close, kRsiPeriod);
  for (double& v : out) v = v / 100.0 - 0.5;
  return out;
}

std::vector<double> macd_feature(const Bars& b) {
  auto out = ind::macd(b.close, 12, 26, 9).hist;
  for (std::size_t t = 0; t < out.size(); ++t) out[t] /= b.close[t];
  return out;
}

std::vector<double> atr_feature(const Bars& b) {
  auto out = ind::atr(b.high, b.low, b.close, kAtrPeriod);
  for (std::size_t t = 0; t < out.size(); ++t) out[t] /= b.close[t];
  return out;
}

std::vector<double> sma_ratio(const Bars& b) {
  auto out = ind::sma(b.close, kSmaPeriod);
  for (std::size_t t = 0; t < out.size(); ++t) out[t] = b.close[t] / out[t] - 1.0;
  return out;
}

std::vector<double> roc_feature(const Bars& b) {
  auto out = ind::roc(b.close, kRocPeriod);
  for (double& v : out) v /= 100.0;
  return out;
}

struct FeatureDef {
  FeatureInfo info;
  FeatureFn compute;
  std::size_t lookback;  // the first bar with a value (prices are positive: every later bar has one)
};

const std::vector<FeatureDef>& feature_defs() {
  static const std::vector<FeatureDef> defs = {
      {{"return", "close-to-close return, close[t] / close[t-1] - 1"}, close_return, 1},
      {{"log_return", "log(close[t] / close[t-1])"}, log_return, 1},
      {{"range", "(high - low) / close"}, bar_range, 0},
      {{"gap", "open[t] / close[t-1] - 1"}, opening_gap, 1},
      {{"body", "close / open - 1"}, candle_body, 0},
      {{"volume_z", "volume z-score over the trailing 20 bars"}, volume_z, kVolumeWindow - 1},
      {{"rsi", "RSI(14) / 100 - 0.5"}, rsi_feature, kRsiPeriod},
      {{"macd_hist", "MACD(12,26,9) histogram / close"}, macd_feature, 33},
      {{"atr", "ATR(14) / close"}, atr_feature, kAtrPeriod},
      {{"sma_ratio", "close / SMA(20) - 1"}, sma_ratio, kSmaPeriod - 1},
      {{"roc", "ROC(10) / 100"}, roc_feature, kRocPeriod},
  };
  return defs;
}

const FeatureDef& find_feature(std::string_view name) {
  for (const auto& d : feature_defs())
    if (d.info.name == name) return d;
  std::vector<std::string> names;
  for (const auto& d : feature_defs()) names.push_back(d.info.name);
  throw ParamError(fmt::format("unknown feature '{}'; known features: {}", name, fmt::join(names, ", ")));
}

void check_fraction(std::string_view name, double value) {
  if (!(value >= 0.0 && value < 1.0)) throw ParamError(fmt::format("{} must be in [0, 1), got {}", name, value));
}

void check_options(const DatasetOptions& o) {
  if (o.sequence_length < 1 || o.sequence_length > 100000)
    throw ParamError(fmt::format("sequence_length must be in [1, 100000], got {}", o.sequence_length));
  if (o.features.empty()) throw ParamError("at least one feature is needed");
  check_fraction("validation_fraction", o.validation_fraction);
  check_fraction("test_fraction", o.test_fraction);
  if (o.validation_fraction + o.test_fraction >= 0.9)
    throw ParamError(fmt::format("validation_fraction + test_fraction must leave at least 10% to train, got {} + {}",
                                 o.validation_fraction, o.test_fraction));
}

// Scaled float rows of bars [first, end) of `table`.
std::vector<float> scaled_rows(const FeatureTable& table, std::size_t first, std::size_t end, const Scaler& scaler) {
  std::vector<float> rows((end - first) * table.features);
  for (std::size_t t = first; t < end; ++t)
    for (std::size_t f = 0; f < table.features; ++f)
      rows[(t - first) * table.features + f] = static_cast<float>((table.at(t, f) - scaler.mean[f]) / scaler.scale[f]);
  return rows;
}

}  // namespace

const std::vector<FeatureInfo>& feature_catalog() {
  static const std::vector<FeatureInfo> catalog = [] {
    std::vector<FeatureInfo> out;
    for (const auto& d : feature_defs()) out.push_back(d.info);
    return out;
  }();
  return catalog;
}

std::size_t features_lookback(std::span<const std::string> features) {
  std::size_t widest = 0;
  for (const auto& f : features) widest = std::max(widest, find_feature(f).lookback);
  return widest;
}

const std::vector<std::string>& default_features() {
  static const std::vector<std::string> names = {"return", "range", "gap", "volume_z", "rsi"};
  return names;
}

FeatureTable compute_features(const Bars& bars, std::span<const std::string> features) {
  FeatureTable table;
  table.bars = bars.size();
  table.features = features.size();
  table.values.assign(table.bars * table.features, kNaN);
  for (std::size_t f = 0; f < features.size(); ++f) {
    const std::vector<double> column = find_feature(features[f]).compute(bars);
    for (std::size_t t = 0; t < bars.size(); ++t) table.values[t * table.features + f] = column[t];
  }
  // Indicators are defined from their lookback on; the table starts where every feature is.
  table.first_defined = table.bars;
  for (std::size_t t = 0; t < table.bars; ++t) {
    bool all = true;
    for (std::size_t f = 0; f < table.features && all; ++f) all = std::isfinite(table.at(t, f));
    if (all) {
      table.first_defined = t;
      break;
    }
  }
  for (std::size_t t = table.first_defined; t < table.bars; ++t)
    for (std::size_t f = 0; f < table.features; ++f)
      if (!std::isfinite(table.at(t, f)))
        throw DataError(fmt::format("{}: feature '{}' is not finite at bar {} ({}): check the data", bars.source,
                                    features[f], t, format_time(bars.time[t], bars.intraday)));
  return table;
}

Label parse_label(std::string_view name) {
  if (name == "direction") return Label::kDirection;
  if (name == "return") return Label::kReturn;
  throw ParamError(fmt::format("unknown label '{}'; allowed: direction, return", name));
}

std::string_view label_name(Label label) {
  return label == Label::kDirection ? "direction" : "return";
}

std::vector<float> Dataset::windows(SampleRange range) const {
  const std::size_t window = sequence_length * features;
  std::vector<float> out(range.size() * window);
  for (std::size_t i = range.begin; i < range.end; ++i)
    std::copy_n(rows.begin() + static_cast<std::ptrdiff_t>(i * features), window,
                out.begin() + static_cast<std::ptrdiff_t>((i - range.begin) * window));
  return out;
}

Dataset prepare_dataset(const Bars& bars, const DatasetOptions& options) {
  check_options(options);
  const FeatureTable table = compute_features(bars, options.features);
  const std::size_t L = options.sequence_length;
  // Sample i ends at bar first + i + L - 1 and needs bar end + 1 for its label.
  const std::size_t first = table.first_defined;
  const std::size_t usable = bars.size() > first ? bars.size() - first : 0;
  const std::size_t samples = usable > L ? usable - L : 0;
  const auto part = [&](double fraction, std::size_t of) {
    return static_cast<std::size_t>(std::floor(fraction * static_cast<double>(of)));
  };
  const bool need_val = options.validation_fraction > 0, need_test = options.test_fraction > 0;
  // Whether `n` samples give every part of the split at least one.
  const auto enough = [&](std::size_t n) {
    const std::size_t test = part(options.test_fraction, n), val = part(options.validation_fraction, n);
    return n > test + val && (!need_val || val >= 1) && (!need_test || test >= 1);
  };
  const std::size_t n_test = part(options.test_fraction, samples), n_val = part(options.validation_fraction, samples);
  const std::size_t n_train = samples - std::min(samples, n_test + n_val);
  if (!enough(samples)) {
    std::size_t fewest = std::max<std::size_t>(samples, 1);
    while (!enough(fewest)) ++fewest;  // at most 1 / (the smallest share) steps: the options bound it at 10
    const std::size_t needed = fewest + first + L;
    throw ParamError(fmt::format(
        "{}: {} bars are too few for sequence_length {} with these features and splits: the features start at bar "
        "{}, and at least {} bars are needed",
        bars.source.empty() ? bars.symbol : bars.source, bars.size(), L, first, needed));
  }

  Dataset d;
  d.options = options;
  d.sequence_length = L;
  d.features = table.features;
  d.first_bar = first;
  d.train = {0, n_train};
  d.validation = {n_train, n_train + n_val};
  d.test = {n_train + n_val, samples};

  // The scaler sees rows of bars up to the last training window's end, nothing later.
  const std::size_t fit_end = d.end_bar(n_train - 1) + 1;
  d.scaler.mean.assign(table.features, 0.0);
  d.scaler.scale.assign(table.features, 1.0);
  const auto fit_rows = static_cast<double>(fit_end - first);
  for (std::size_t f = 0; f < table.features; ++f) {
    double sum = 0;
    for (std::size_t t = first; t < fit_end; ++t) sum += table.at(t, f);
    const double mean = sum / fit_rows;
    double sum_sq = 0;
    for (std::size_t t = first; t < fit_end; ++t) sum_sq += (table.at(t, f) - mean) * (table.at(t, f) - mean);
    const double sd = std::sqrt(sum_sq / fit_rows);
    d.scaler.mean[f] = mean;
    d.scaler.scale[f] = sd > 0 ? sd : 1.0;  // a constant feature stays 0 rather than dividing by 0
  }

  std::vector<double> raw(samples);
  for (std::size_t i = 0; i < samples; ++i) {
    const std::size_t t = d.end_bar(i);
    raw[i] = options.label == Label::kDirection ? (bars.close[t + 1] > bars.close[t] ? 1.0 : 0.0)
                                                : bars.close[t + 1] / bars.close[t] - 1.0;
  }
  if (options.label == Label::kReturn) {
    double sum = 0, sum_sq = 0;
    for (std::size_t i = 0; i < n_train; ++i) sum += raw[i];
    d.scaler.label_mean = sum / static_cast<double>(n_train);
    for (std::size_t i = 0; i < n_train; ++i) sum_sq += (raw[i] - d.scaler.label_mean) * (raw[i] - d.scaler.label_mean);
    const double sd = std::sqrt(sum_sq / static_cast<double>(n_train));
    d.scaler.label_scale = sd > 0 ? sd : 1.0;
  }
  d.labels.resize(samples);
  for (std::size_t i = 0; i < samples; ++i)
    d.labels[i] = static_cast<float>((raw[i] - d.scaler.label_mean) / d.scaler.label_scale);
  d.rows = scaled_rows(table, first, first + samples + L - 1, d.scaler);
  return d;
}

Dataset prediction_rows(const Bars& bars, const DatasetOptions& options, const Scaler& scaler) {
  check_options(options);
  const FeatureTable table = compute_features(bars, options.features);
  if (scaler.mean.size() != table.features || scaler.scale.size() != table.features)
    throw ParamError(fmt::format("the scaler has {} features but the model's data options name {}", scaler.mean.size(),
                                 table.features));
  const std::size_t L = options.sequence_length;
  if (table.first_defined + L > bars.size())
    throw ParamError(fmt::format("{}: {} bars are too few for one window of {} bars (the features start at bar {})",
                                 bars.source.empty() ? bars.symbol : bars.source, bars.size(), L, table.first_defined));
  Dataset d;
  d.options = options;
  d.sequence_length = L;
  d.features = table.features;
  d.first_bar = table.first_defined;
  d.scaler = scaler;
  d.rows = scaled_rows(table, d.first_bar, bars.size(), scaler);
  return d;
}

}  // namespace gt::ml
