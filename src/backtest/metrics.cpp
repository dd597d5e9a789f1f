#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "gt/backtest.hpp"
#include "gt/error.hpp"

namespace gt {

MetricSums sums_of_curve(std::span<const double> equity, double initial_equity, std::span<const double> position) {
  CurveAccumulator curve(initial_equity);
  for (std::size_t t = 0; t < equity.size(); ++t) curve.add(equity[t], position[t] != 0);
  return curve.sums();
}

const std::vector<std::string>& metric_names() {
  static const std::vector<std::string> names = {"total_return",  "cagr",     "sharpe",           "sortino",
                                                 "max_drawdown",  "calmar",   "trades",           "win_rate",
                                                 "profit_factor", "exposure", "avg_trade_return", "final_equity"};
  return names;
}

namespace {

// The metrics in metric_names() order: the one place that maps a position to a field.
constexpr std::size_t kTradesIndex = 6;  // an integer field: no double member to point at
constexpr double Metrics::*kMetricFields[kMetricCount] = {&Metrics::total_return,
                                                          &Metrics::cagr,
                                                          &Metrics::sharpe,
                                                          &Metrics::sortino,
                                                          &Metrics::max_drawdown,
                                                          &Metrics::calmar,
                                                          nullptr,
                                                          &Metrics::win_rate,
                                                          &Metrics::profit_factor,
                                                          &Metrics::exposure,
                                                          &Metrics::avg_trade_return,
                                                          &Metrics::final_equity};

}  // namespace

std::size_t metric_index(std::string_view name) {
  const auto& names = metric_names();
  for (std::size_t i = 0; i < names.size(); ++i)
    if (names[i] == name) return i;
  std::string allowed;
  for (const auto& n : names) allowed += (allowed.empty() ? "" : ", ") + n;
  throw ParamError(fmt::format("unknown metric '{}' (allowed: {})", name, allowed));
}

double metric_value(const Metrics& m, std::size_t index) {
  if (index == kTradesIndex) return static_cast<double>(m.trades);
  return m.*kMetricFields[index];
}

void set_metric_value(Metrics& m, std::size_t index, double value) {
  if (index == kTradesIndex)
    m.trades = static_cast<std::int64_t>(value);
  else
    m.*kMetricFields[index] = value;
}

double metric_value(const Metrics& m, std::string_view name) {
  return metric_value(m, metric_index(name));
}

bool metric_higher_is_better(std::string_view name) {
  return name != "max_drawdown";
}

int compare_for_ranking(double x, bool x_ruined, double y, bool y_ruined, bool higher_is_better) {
  if (x_ruined != y_ruined) return x_ruined ? 1 : -1;
  if (std::isnan(x) != std::isnan(y)) return std::isnan(x) ? 1 : -1;
  if (std::isnan(x) || x == y) return 0;
  return (higher_is_better ? x > y : x < y) ? -1 : 1;
}

}  // namespace gt
