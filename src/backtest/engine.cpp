#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

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
  }
  return c;
}

double resolve_periods_per_year(const Bars& bars, const ExecutionOptions& options) {
  return options.periods_per_year ? *options.periods_per_year : infer_periods_per_year(bars);
}

namespace {

// Cash and position of one backtest; trades are recorded as they close.
class Account {
 public:
  Account(const ExecutionOptions& o, std::vector<Trade>& trades)
      : options_(o), slip_(o.slippage_bps / 10000.0), cash_(o.cash), trades_(trades) {}

  int direction() const { return units_ > 0 ? 1 : (units_ < 0 ? -1 : 0); }
  double equity(double price) const { return cash_ + units_ * price; }
  double units() const { return units_; }

  void close_position(double price, std::size_t bar) {
    if (units_ == 0) return;
    Trade& t = trades_.back();
    // pnl from the prices, not from the cash before and after: a trade out at its entry price
    // with no costs is exactly 0, neither a win nor a loss, instead of a rounding residue.
    if (units_ > 0) {
      const double fill = price * (1.0 - slip_);
      const double proceeds = units_ * fill;
      const double fee = proceeds * options_.commission;
      cash_ += proceeds - fee;
      t.exit_price = fill;
      t.pnl = units_ * (fill - t.entry_price) - entry_fee_ - fee;
    } else {
      const double fill = price * (1.0 + slip_);
      const double cost = -units_ * fill;
      const double fee = cost * options_.commission;
      cash_ -= cost + fee;
      t.exit_price = fill;
      t.pnl = -units_ * (t.entry_price - fill) - entry_fee_ - fee;
    }
    t.exit_bar = bar;
    t.open = false;
    t.bars_held = bar - t.entry_bar;
    t.ret = t.pnl / committed_;
    units_ = 0;
  }

  void open_position(int side, double price, std::size_t bar) {
    const double equity_now = cash_;  // flat: equity is the cash
    committed_ = options_.size * equity_now;
    Trade t;
    t.entry_bar = bar;
    t.side = side;
    t.open = true;
    if (side > 0) {
      const double fill = price * (1.0 + slip_);
      units_ = committed_ / (fill * (1.0 + options_.commission));
      cash_ = equity_now - committed_;                   // the entry spends exactly the committed capital
      entry_fee_ = units_ * fill * options_.commission;  // exactly 0 without commission
      t.entry_price = fill;
      t.units = units_;
    } else {
      const double fill = price * (1.0 - slip_);
      const double sold = committed_ / (fill * (1.0 + options_.commission));
      const double proceeds = sold * fill;
      entry_fee_ = proceeds * options_.commission;
      cash_ = equity_now + proceeds - entry_fee_;
      units_ = -sold;
      t.entry_price = fill;
      t.units = sold;
    }
    trades_.push_back(t);
  }

 private:
  const ExecutionOptions& options_;
  double slip_;
  double cash_;
  double units_ = 0;
  double committed_ = 0;
  double entry_fee_ = 0;  // commission paid by the open position's entry
  std::vector<Trade>& trades_;
};

// The position the events at one bar ask for, given the current one (docs/SEMANTICS.md "ma_cross"). Exits come first;
// a position being closed may be reversed by an entry of the other side in the same fill.
int target_after(int current, std::uint8_t events, bool allow_short) {
  if (current > 0 && !(events & kLongExit)) return 1;
  if (current < 0 && !(events & kShortExit)) return -1;
  if (current <= 0 && (events & kLongEntry)) return 1;
  if (current >= 0 && allow_short && (events & kShortEntry)) return -1;
  return 0;
}

// One pass over the bars: fills, marking to market, and on_bar(t, equity, units) at each close.
template <typename OnBar>
void simulate(const Bars& bars, std::span<const std::uint8_t> signals, const ExecutionOptions& options,
              std::vector<Trade>& trades, OnBar on_bar) {
  const std::size_t n = bars.size();
  if (signals.size() != n) throw Error(fmt::format("internal: {} signals for {} bars", signals.size(), n));
  Account account(options, trades);
  int pending = 0;  // target decided at the previous close, filled at this open
  bool has_pending = false;
  bool ruined = false;
  for (std::size_t t = 0; t < n; ++t) {
    if (ruined) {  // nothing more is traded; the equity stays at 0
      on_bar(t, 0.0, 0.0);
      continue;
    }
    if (has_pending) {
      if (pending != account.direction()) {
        account.close_position(bars.open[t], t);
        // A short closed above its proceeds leaves no cash to commit: the close below ruins it.
        if (pending != 0 && account.equity(bars.open[t]) > 0) account.open_position(pending, bars.open[t], t);
      }
      has_pending = false;
    }
    double equity = account.equity(bars.close[t]);
    if (equity <= 0) {  // ruin (SEMANTICS.md "Ruin"): out at this close, for good
      account.close_position(bars.close[t], t);
      ruined = true;
      on_bar(t, 0.0, 0.0);
      continue;
    }
    const int target = target_after(account.direction(), signals[t], options.allow_short);
    if (target != account.direction()) {
      if (options.fill == Fill::kClose) {
        account.close_position(bars.close[t], t);
        if (target != 0) account.open_position(target, bars.close[t], t);
        equity = account.equity(bars.close[t]);  // the fills' costs
      } else {
        pending = target;
        has_pending = true;
      }
    }
    on_bar(t, equity, account.units());
  }
  if (!trades.empty() && trades.back().open) trades.back().bars_held = n - trades.back().entry_bar;
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
    curve.add(equity, units != 0);
  });
  add_closed_trades(curve.sums(), result.trades);
  result.metrics = finalize_metrics(curve.sums(), resolve_periods_per_year(bars, options));
  return result;
}

Metrics backtest_metrics(const Bars& bars, std::span<const std::uint8_t> signals, const ExecutionOptions& options,
                         double periods_per_year) {
  std::vector<Trade> trades;
  CurveAccumulator curve(options.cash);
  simulate(bars, signals, options, trades,
           [&](std::size_t, double equity, double units) { curve.add(equity, units != 0); });
  add_closed_trades(curve.sums(), trades);
  return finalize_metrics(curve.sums(), periods_per_year);
}

}  // namespace gt
