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

Metrics finalize_metrics(const MetricSums& s, double periods_per_year) {
  Metrics m;
  const double n = static_cast<double>(s.bars);
  const double growth = s.final_equity / s.initial_equity;
  m.final_equity = s.final_equity;
  m.total_return = growth - 1.0;
  m.cagr = (s.bars == 0) ? 0.0 : (growth > 0 ? std::pow(growth, periods_per_year / n) - 1.0 : -1.0);
  const double root_a = std::sqrt(periods_per_year);
  if (s.bars > 1) {
    const double mean = s.sum_r / n;
    const double variance = (s.sum_r2 - s.sum_r * mean) / (n - 1.0);
    m.sharpe = variance > 0 ? mean / std::sqrt(variance) * root_a : 0.0;
    const double downside = std::sqrt(s.sum_down2 / n);
    m.sortino = downside > 0 ? mean / downside * root_a : 0.0;
  }
  m.max_drawdown = s.max_drawdown;
  m.calmar = s.max_drawdown > 0 ? m.cagr / s.max_drawdown : 0.0;
  m.trades = s.trades;
  if (s.trades > 0) {
    m.win_rate = static_cast<double>(s.wins) / static_cast<double>(s.trades);
    m.avg_trade_return = s.sum_trade_return / static_cast<double>(s.trades);
    m.profit_factor = s.gross_loss > 0 ? s.gross_profit / s.gross_loss
                                       : (s.gross_profit > 0 ? std::numeric_limits<double>::infinity() : 0.0);
  }
  m.exposure = s.bars ? static_cast<double>(s.held_bars) / n : 0.0;
  return m;
}

const std::vector<std::string>& metric_names() {
  static const std::vector<std::string> names = {
      "total_return", "cagr",          "sharpe",   "sortino",          "max_drawdown", "calmar",
      "trades",       "win_rate",      "profit_factor", "exposure",   "avg_trade_return", "final_equity"};
  return names;
}

namespace {

// The metrics in metric_names() order: the one place that maps a position to a field. A constant
// table, so that the cache's encoding of every metric of every combination costs a load each.
constexpr std::size_t kTradesIndex = 6;  // an integer field: no double member to point at
constexpr double Metrics::*kMetricFields[kMetricCount] = {
    &Metrics::total_return, &Metrics::cagr,          &Metrics::sharpe,   &Metrics::sortino,
    &Metrics::max_drawdown, &Metrics::calmar,        nullptr,            &Metrics::win_rate,
    &Metrics::profit_factor, &Metrics::exposure,     &Metrics::avg_trade_return, &Metrics::final_equity};

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
  if (index == kTradesIndex) m.trades = static_cast<std::int64_t>(value);
  else m.*kMetricFields[index] = value;
}

void metric_values(const Metrics& m, std::span<double, kMetricCount> out) {
  for (std::size_t i = 0; i < kMetricCount; ++i) out[i] = metric_value(m, i);  // inlined: one translation unit
}

Metrics metrics_from_values(std::span<const double, kMetricCount> values) {
  Metrics m;
  for (std::size_t i = 0; i < kMetricCount; ++i) set_metric_value(m, i, values[i]);
  return m;
}

double metric_value(const Metrics& m, std::string_view name) { return metric_value(m, metric_index(name)); }

bool metric_higher_is_better(std::string_view name) { return name != "max_drawdown"; }

}  // namespace gt
