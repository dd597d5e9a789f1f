#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>

#include "account.hpp"
#include "gt/backtest.hpp"
#include "gt/error.hpp"

namespace gt {

void ExecutionOptions::validate() const {
  if (!std::isfinite(commission) || commission < 0 || commission >= 1)
    throw ParamError({"commission"},
                     fmt::format("commission = {} is out of range (allowed: 0 <= commission < 1)", commission));
  if (!std::isfinite(slippage_bps) || slippage_bps < 0 || slippage_bps >= 10000)
    throw ParamError({"slippage_bps"},
                     fmt::format("slippage_bps = {} is out of range (allowed: 0 <= bps < 10000)", slippage_bps));
  if (!std::isfinite(size) || size <= 0 || size > 1)
    throw ParamError({"size"}, fmt::format("size = {} is out of range (allowed: 0 < size <= 1)", size));
  // Bounds the arithmetic holds: equity is cash times price ratios (prices lie in [1e-12, 1e12],
  // data.hpp), so cash up to 1e15 keeps every equity, sum and square far from overflow.
  if (!std::isfinite(cash) || cash <= 0 || cash > kMaxCash)
    throw ParamError({"cash"}, fmt::format("cash = {} is out of range (allowed: 0 < cash <= {:g})", cash, kMaxCash));
  if (periods_per_year && (!std::isfinite(*periods_per_year) || *periods_per_year <= 0 || *periods_per_year > 1e8))
    throw ParamError(
        {"periods_per_year"},
        fmt::format("periods_per_year = {} is out of range (allowed: 0 < periods <= 1e8)", *periods_per_year));
  exits.validate();
}

const std::array<ExitParamInfo, kExitParamCount>& exit_param_table() {
  static constexpr std::array<ExitParamInfo, kExitParamCount> table = {{
      {"stop_loss", &Exits::stop_loss, false, 1, true,
       "Stop-loss: out when the price moves this fraction against the entry fill (0 = off)"},
      {"take_profit", &Exits::take_profit, false, 1e6, false,
       "Take-profit: out when the price moves this fraction in favour of the entry fill (0 = off)"},
      {"trailing_stop", &Exits::trailing_stop, false, 1, true,
       "Trailing stop: out when the price falls this fraction from the best price since entry (0 = off)"},
      {"max_bars", &Exits::max_bars, true, 1e9, false,
       "Time exit: out at the close of the max_bars-th bar held, the entry bar being bar 1 (0 = off)"},
      {"risk", &Exits::risk, false, 1, false,
       "Risk sizing: units such that hitting stop_loss loses this fraction of equity, capped by size (0 = off; "
       "needs stop_loss)"},
  }};
  return table;
}

void check_exit_param(std::string_view name, double value) {
  for (const ExitParamInfo& p : exit_param_table()) {
    if (p.name != name) continue;
    const bool whole = !p.integer || value == std::floor(value);
    if (std::isfinite(value) && value >= 0 && (p.below_max ? value < p.max : value <= p.max) && whole) return;
    // No parameter list: these are strategy parameters (--param in the CLI), not options to rephrase.
    throw ParamError(fmt::format("{} = {} is out of range (allowed: {}0 <= {} {} {:g}{}; 0 is off)", name, value,
                                 p.integer ? "a whole number, " : "", name, p.below_max ? "<" : "<=", p.max,
                                 p.name == "max_bars" ? " bars" : ""));
  }
  throw ParamError(fmt::format("unknown exit parameter '{}'", name));
}

void Exits::validate() const {
  for (const ExitParamInfo& p : exit_param_table()) check_exit_param(p.name, this->*p.field);
  if (risk > 0 && stop_loss <= 0)
    throw ParamError(
        fmt::format("risk = {} needs a stop_loss: risk sizing buys the units whose stop would lose that "
                    "fraction of equity (give stop_loss > 0, or risk = 0)",
                    risk));
}

std::string_view exit_reason_name(ExitReason reason) {
  switch (reason) {
    case ExitReason::kRule:
      return "rule";
    case ExitReason::kStopLoss:
      return "stop_loss";
    case ExitReason::kTakeProfit:
      return "take_profit";
    case ExitReason::kTrailingStop:
      return "trailing_stop";
    case ExitReason::kMaxBars:
      return "max_bars";
    case ExitReason::kEnd:
      return "end";
    case ExitReason::kRuin:
      return "ruin";
    case ExitReason::kRebalance:
      return "rebalance";
  }
  return "?";
}

TradeColumns trade_columns(const std::vector<Trade>& trades) {
  TradeColumns c;
  const double none = std::nan("");
  for (const auto& t : trades) {
    c.entry_bar.push_back(static_cast<double>(t.entry_bar));
    c.exit_bar.push_back(t.open ? none : static_cast<double>(t.exit_bar));
    c.side.push_back(t.side);
    c.entry_price.push_back(t.entry_price);
    c.exit_price.push_back(t.open ? none : t.exit_price);
    c.units.push_back(t.units);
    c.pnl.push_back(t.open ? none : t.pnl);
    c.ret.push_back(t.open ? none : t.ret);
    c.bars_held.push_back(static_cast<double>(t.bars_held));
    c.open.push_back(t.open ? 1.0 : 0.0);
    c.exit_reason.push_back(exit_reason_name(t.exit_reason));
  }
  return c;
}

double resolve_periods_per_year(const Bars& bars, const ExecutionOptions& options) {
  return options.periods_per_year ? *options.periods_per_year : infer_periods_per_year(bars);
}

namespace {

// One pass over the bars: the fills of each (detail::Simulation) and on_bar(t, equity, units) at
// each close.
template <typename OnBar>
void simulate(const Bars& bars, std::span<const std::uint8_t> signals, const ExecutionOptions& options,
              std::vector<Trade>& trades, OnBar on_bar) {
  const std::size_t n = bars.size();
  if (signals.size() != n) throw Error(fmt::format("internal: {} signals for {} bars", signals.size(), n));
  detail::Simulation simulation(options, trades);
  for (std::size_t t = 0; t < n; ++t) {
    const auto close =
        simulation.step(t, bars.open[t], bars.high[t], bars.low[t], bars.close[t], signals[t], t + 1 == n);
    on_bar(t, close.equity, close.units);
  }
  simulation.end(n);
}

void add_closed_trades(MetricSums& sums, const std::vector<Trade>& trades) {
  for (const Trade& t : trades)
    if (!t.open) sums.add_trade(t.pnl, t.ret);
}

}  // namespace

BacktestResult run_backtest(const Bars& bars, std::span<const std::uint8_t> signals, const ExecutionOptions& options) {
  options.validate();
  BacktestResult result;
  result.equity.resize(bars.size());
  result.position.resize(bars.size());
  CurveAccumulator curve(options.cash);
  simulate(bars, signals, options, result.trades, [&](std::size_t t, double equity, double units) {
    if (equity <= 0 && !result.ruined_at) result.ruined_at = t;
    result.equity[t] = equity;
    result.position[t] = units;
    if (t >= options.first_bar) curve.add(equity, units != 0);
  });
  add_closed_trades(curve.sums(), result.trades);
  result.metrics = finalize_metrics(curve.sums(), resolve_periods_per_year(bars, options));
  return result;
}

std::size_t BlockReturns::block_of(std::size_t bar) const {
  return static_cast<std::size_t>(std::upper_bound(starts.begin() + 1, starts.end() - 1, bar) - starts.begin() - 1);
}

Metrics backtest_metrics(const Bars& bars, std::span<const std::uint8_t> signals, const ExecutionOptions& options,
                         double periods_per_year, const BlockReturns* blocks) {
  std::vector<Trade> trades;
  CurveAccumulator curve(options.cash);
  simulate(bars, signals, options, trades, [&](std::size_t t, double equity, double units) {
    if (t < options.first_bar) return;  // before the window
    const double r = curve.add(equity, units != 0);
    if (blocks) blocks->add(t, r);
  });
  add_closed_trades(curve.sums(), trades);
  return finalize_metrics(curve.sums(), periods_per_year);
}

}  // namespace gt
