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

std::vector<double> curve_returns(std::span<const double> equity, double initial_equity) {
  CurveAccumulator curve(initial_equity);
  std::vector<double> out;
  out.reserve(equity.size());
  for (const double e : equity) out.push_back(curve.add(e, false));
  return out;
}

const std::array<MetricInfo, kMetricCount>& metric_table() {
  static constexpr std::array<MetricInfo, kMetricCount> table = {{
      {"total_return", &Metrics::total_return, nullptr, true, "final equity over starting cash, minus 1"},
      {"cagr", &Metrics::cagr, nullptr, true, "compound annual growth rate"},
      {"sharpe", &Metrics::sharpe, nullptr, true, "annualized mean over standard deviation of bar returns"},
      {"sortino", &Metrics::sortino, nullptr, true, "annualized mean over downside deviation of bar returns"},
      {"max_drawdown", &Metrics::max_drawdown, nullptr, false, "largest fall from a peak of equity, a fraction"},
      {"calmar", &Metrics::calmar, nullptr, true, "cagr over max_drawdown"},
      {"trades", nullptr, &Metrics::trades, true, "closed trades"},
      {"win_rate", &Metrics::win_rate, nullptr, true, "fraction of closed trades with pnl > 0"},
      {"profit_factor", &Metrics::profit_factor, nullptr, true, "gross profit over gross loss (inf: no loss)"},
      {"exposure", &Metrics::exposure, nullptr, true, "fraction of bars holding a position"},
      {"avg_trade_return", &Metrics::avg_trade_return, nullptr, true, "mean return of closed trades"},
      {"final_equity", &Metrics::final_equity, nullptr, true, "equity at the last bar's close"},
  }};
  return table;
}

const std::vector<std::string>& metric_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const auto& m : metric_table()) out.emplace_back(m.name);
    return out;
  }();
  return names;
}

std::size_t metric_index(std::string_view name) {
  const auto& table = metric_table();
  for (std::size_t i = 0; i < table.size(); ++i)
    if (table[i].name == name) return i;
  std::string allowed;
  for (const auto& m : table) allowed += fmt::format("{}{}", allowed.empty() ? "" : ", ", m.name);
  throw ParamError(fmt::format("metric: unknown metric '{}' (allowed: {})", name, allowed));
}

double metric_value(const Metrics& m, std::size_t index) {
  const MetricInfo& info = metric_table()[index];
  return info.integer ? static_cast<double>(m.*info.integer) : m.*info.real;
}

void set_metric_value(Metrics& m, std::size_t index, double value) {
  const MetricInfo& info = metric_table()[index];
  if (info.integer)
    m.*info.integer = static_cast<std::int64_t>(value);
  else
    m.*info.real = value;
}

double metric_value(const Metrics& m, std::string_view name) {
  return metric_value(m, metric_index(name));
}

bool metric_higher_is_better(std::string_view name) {
  return metric_table()[metric_index(name)].higher_is_better;
}

MetricRank metric_rank(double x, bool ruined, bool higher_is_better) {
  const bool undefined = std::isnan(x);
  return {static_cast<std::uint8_t>((ruined ? 2 : 0) | (undefined ? 1 : 0)),
          undefined ? 0.0 : (higher_is_better ? -x : x)};
}

int compare_for_ranking(double x, bool x_ruined, double y, bool y_ruined, bool higher_is_better) {
  const MetricRank a = metric_rank(x, x_ruined, higher_is_better), b = metric_rank(y, y_ruined, higher_is_better);
  return a < b ? -1 : (b < a ? 1 : 0);
}

}  // namespace gt
