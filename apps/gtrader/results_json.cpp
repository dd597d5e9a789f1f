#include "results_json.hpp"

#include <cmath>

namespace gtrader {

nlohmann::json metrics_json(const gt::Metrics& m) {
  nlohmann::json j;
  const auto& names = gt::metric_names();
  for (std::size_t i = 0; i < names.size(); ++i) {
    const std::string& name = names[i];
    const double v = gt::metric_value(m, i);
    if (name == "trades")
      j[name] = m.trades;
    else if (std::isinf(v))
      j[name] = v > 0 ? "inf" : "-inf";  // JSON has no infinity
    else
      j[name] = v;
  }
  return j;
}

nlohmann::json params_json(const gt::Strategy& strategy, const gt::ParamValues& values) {
  nlohmann::json p;
  for (std::size_t i = 0; i < strategy.params.size(); ++i) {
    const auto& spec = strategy.params[i];
    if (spec.type == gt::ParamType::kBool)
      p[spec.name] = values[i] != 0;
    else if (spec.type == gt::ParamType::kInt)
      p[spec.name] = static_cast<long long>(values[i]);
    else
      p[spec.name] = values[i];
  }
  return p;
}

nlohmann::json optimize_summary_json(const gt::Grid& grid, const std::vector<gt::Bars>& symbols,
                                     const gt::OptimizeResult& result) {
  nlohmann::json j;
  j["combinations"] = result.combinations;
  j["symbols"] = symbols.size();
  j["valid"] = result.valid;
  j["invalid"] = result.invalid;
  j["computed"] = result.computed;
  j["from_cache"] = result.from_cache;
  j["seconds"] = result.seconds;
  j["combos_per_sec"] = result.seconds > 0 ? static_cast<double>(result.computed) / result.seconds : 0.0;
  j["bar_combos_per_sec"] = result.seconds > 0 ? static_cast<double>(result.bar_combinations) / result.seconds : 0.0;
  j["engine"] = result.evaluator;
  nlohmann::json best = nlohmann::json::array();
  for (std::size_t s = 0; s < symbols.size(); ++s) {
    if (result.top[s].empty()) {
      best.push_back(nullptr);
      continue;
    }
    const auto& top = result.top[s].front();
    nlohmann::json b = metrics_json(top.metrics);
    b["symbol"] = symbols[s].symbol;
    b["parameters"] = params_json(grid.strategy(), top.params);
    best.push_back(b);
  }
  j["best"] = symbols.size() == 1 ? best[0] : best;
  return j;
}

}  // namespace gtrader
