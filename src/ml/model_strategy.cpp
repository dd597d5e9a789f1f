// The `model` strategy: a trained model's outputs turned into the engine's signal events.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "gt/backtest.hpp"
#include "gt/error.hpp"
#include "gt/ml.hpp"

namespace gt::ml {

Strategy model_strategy(std::shared_ptr<const SignalModel> model) {
  Strategy s = find_strategy("model");
  s.signals = [model](const Bars& bars, const ParamValues& params, std::span<std::uint8_t> out, SeriesCache& cache) {
    // Outputs depend on the bars only, so every threshold of a grid shares one prediction pass.
    const auto scores = cache.get("model-outputs", [&] { return SeriesCache::Group{model->predict_bars(bars)}; });
    const double neutral = model->spec().data.label == Label::kDirection ? 0.5 : 0.0;
    const double threshold = params[0];
    const auto& score = scores->front();
    for (std::size_t t = 0; t < bars.size(); ++t) {
      if (std::isnan(score[t])) {
        out[t] = 0;
      } else if (score[t] > neutral + threshold) {
        out[t] = kLongEntry | kShortExit;
      } else if (score[t] < neutral - threshold) {
        out[t] = kShortEntry | kLongExit;
      } else {
        out[t] = kLongExit | kShortExit;
      }
    }
  };
  // The first bar that ends a whole window of features.
  const DatasetOptions& data = model->spec().data;
  s.first_signal_bar = [first = features_lookback(data.features) + data.sequence_length - 1](const ParamValues&) {
    return first;
  };
  return s;
}

Strategy resolve_strategy(std::string_view name, std::vector<std::pair<std::string, std::string>>& assignments) {
  const Strategy& registered = find_strategy(name);
  if (registered.model_parameter.empty()) return registered;
  const auto it = std::find_if(assignments.begin(), assignments.end(),
                               [&](const auto& a) { return a.first == registered.model_parameter; });
  if (it == assignments.end()) find_strategy(name).require_signals();
  const std::string path = it->second;
  assignments.erase(it);
  return model_strategy(std::make_shared<const SignalModel>(SignalModel::load(path)));
}

}  // namespace gt::ml
