// JSON forms of metrics and optimization summaries, shared by backtest, optimize and bench.
#pragma once

#include <nlohmann/json.hpp>

#include "gt/optimize.hpp"

namespace gtrader {

nlohmann::json metrics_json(const gt::Metrics& m);
nlohmann::json params_json(const gt::Strategy& strategy, const gt::ParamValues& values);
// {"combinations","valid","invalid","computed","from_cache","seconds","combos_per_sec",
//  "bar_combos_per_sec","best":{...}} (best: an array, one per symbol, when there are several).
nlohmann::json optimize_summary_json(const gt::Grid& grid, const std::vector<gt::Bars>& symbols,
                                     const gt::OptimizeResult& result);

}  // namespace gtrader
