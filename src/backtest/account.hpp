// The reference engine's pieces (docs/SEMANTICS.md "Fills and costs", "Exits by price and time"),
// shared by the one-symbol backtest (engine.cpp), the portfolio (portfolio.cpp) and the live engine
// (src/live/live.cpp), which steps the same Simulation one bar as each arrives.
#pragma once

#include <algorithm>
#include <cmath>
#include <optional>
#include <vector>

#include "gt/backtest.hpp"
#include "gt/strategy.hpp"

namespace gt::detail {

// The fills' arithmetic (docs/SEMANTICS.md "Fills and costs"), written once for the accounts
// below and for the portfolio's fast path (portfolio_lanes_kernel.inc), so that both round alike.
// Always inlined: the fast path's kernel is compiled once per instruction set, and no copy of these
// compiled for one may serve the callers of another.
struct ExitFill {
  double fill, cash, pnl;  // the fill price, the cash after the exit, the trade's profit
};
// The fill price of an exit of a `side` position (+1 long, -1 short) at `price`, slippage included.
[[gnu::always_inline]] inline double exit_fill(int side, double price, double slip) {
  return side > 0 ? price * (1.0 - slip) : price * (1.0 + slip);
}
// A long position of `units` sold at `price`.
[[gnu::always_inline]] inline ExitFill long_exit(double cash, double units, double price, double slip,
                                                 double commission, double entry_price, double entry_fee) {
  const double fill = exit_fill(1, price, slip);
  const double proceeds = units * fill;
  const double fee = proceeds * commission;
  return {fill, cash + (proceeds - fee), units * (fill - entry_price) - entry_fee - fee};
}
// A short position of `units` (< 0) bought back at `price`.
[[gnu::always_inline]] inline ExitFill short_exit(double cash, double units, double price, double slip,
                                                  double commission, double entry_price, double entry_fee) {
  const double fill = exit_fill(-1, price, slip);
  const double cost = -units * fill;
  const double fee = cost * commission;
  return {fill, cash - (cost + fee), -units * (entry_price - fill) - entry_fee - fee};
}
// The fill price of an entry of `side` (+1 long, -1 short) at `price`, slippage included.
[[gnu::always_inline]] inline double entry_fill(int side, double price, double slip) {
  return side > 0 ? price * (1.0 + slip) : price * (1.0 - slip);
}
// An entry of `count` units at `fill`: the capital it commits and its commission.
[[gnu::always_inline]] inline double entry_committed(double count, double fill, double commission) {
  return count * fill * (1.0 + commission);
}
[[gnu::always_inline]] inline double entry_fee(double count, double fill, double commission) {
  return count * fill * commission;
}
// The cash after an entry: a long pays the committed capital, a short receives the sale less its
// commission.
[[gnu::always_inline]] inline double cash_after_long_entry(double cash, double committed) {
  return cash - committed;
}
[[gnu::always_inline]] inline double cash_after_short_entry(double cash, double count, double fill, double fee) {
  return cash + (count * fill - fee);
}

// A portfolio's entry (docs/SEMANTICS.md "Portfolios"): its symbol's `weight` of `equity` in units
// at `fill`, and the most units `cash` pays for with the commission (the entry takes the fewer).
[[gnu::always_inline]] inline double weighted_units(double weight, double equity, double fill) {
  return weight * equity / fill;
}
[[gnu::always_inline]] inline double affordable_units(double cash, double fill, double commission) {
  return cash / (fill * (1.0 + commission));
}
// Cash below this share of the equity is none: an entry reduced to the cash left takes it all, up
// to rounding, and the next entry must not buy a dust of units with the residue.
inline constexpr double kNoCash = 1e-9;

// One position and the cash it is paid from and into (its own in a backtest, the account's in a
// portfolio); trades are recorded as they close.
class Account {
 public:
  Account(const ExecutionOptions& o, std::vector<Trade>& trades, double& cash)
      : options_(o), slip_(o.slippage_bps / 10000.0), cash_(cash), trades_(trades) {}

  int direction() const { return units_ > 0 ? 1 : (units_ < 0 ? -1 : 0); }
  double equity(double price) const { return cash_ + units_ * price; }
  double units() const { return units_; }
  // The open trade (direction() != 0).
  const Trade& trade() const { return trades_.back(); }

  void close_position(double price, std::size_t bar, ExitReason reason) {
    if (units_ == 0) return;
    Trade& t = trades_.back();
    // pnl from the prices, not from the cash before and after: a trade out at its entry price
    // with no costs is exactly 0, neither a win nor a loss, instead of a rounding residue.
    const ExitFill out = units_ > 0
                             ? long_exit(cash_, units_, price, slip_, options_.commission, t.entry_price, entry_fee_)
                             : short_exit(cash_, units_, price, slip_, options_.commission, t.entry_price, entry_fee_);
    cash_ = out.cash;
    t.exit_price = out.fill;
    t.pnl = out.pnl;
    t.exit_bar = bar;
    t.open = false;
    t.bars_held = bar - t.entry_bar;
    t.ret = t.pnl / committed_;
    t.exit_reason = reason;
    units_ = 0;
  }

  // After the last of `bars` bars: the trade still open has been held through them.
  void end(std::size_t bars) {
    if (!trades_.empty() && trades_.back().open) trades_.back().bars_held = bars - trades_.back().entry_bar;
  }

  // The open trade's profit if it were valued at `price` (its entry commission paid, no exit costs).
  double open_pnl(double price) const {
    return units_ == 0 ? 0.0 : units_ * (price - trades_.back().entry_price) - entry_fee_;
  }

  // The fill price of an entry of `side` at `price`, slippage included.
  double entry_fill(int side, double price) const { return detail::entry_fill(side, price, slip_); }

  // A portfolio's entry: `count` units of `side` at `price` (committing count x fill, commission
  // included).
  void open_units(int side, double price, std::size_t bar, double count) {
    const double fill = entry_fill(side, price);
    committed_ = entry_committed(count, fill, options_.commission);
    start_trade(side, fill, bar, count);
  }

  // A rebalance (docs/SEMANTICS.md "Portfolios"): `delta` more units (< 0: fewer) of the open
  // position at `price`. Added units join the trade at the average entry price; units taken off
  // are a closed trade of their own (reason rebalance) at the same entry price.
  void adjust(double delta, double price, std::size_t bar) {
    if (units_ == 0 || delta == 0) return;
    Trade& t = trades_.back();
    const int side = direction();
    if (side * delta > 0) {  // more of the same side
      const double fill = entry_fill(side, price), count = std::fabs(delta);
      const double fee = count * fill * options_.commission;
      t.entry_price = (t.entry_price * t.units + fill * count) / (t.units + count);
      t.units += count;
      entry_fee_ += fee;
      committed_ += count * fill + fee;
      if (side > 0)
        cash_ -= count * fill + fee;
      else
        cash_ += count * fill - fee;
      units_ += delta;
      return;
    }
    if (std::fabs(delta) >= t.units) {  // all of it: the trade closes
      close_position(price, bar, ExitReason::kRebalance);
      return;
    }
    const double count = std::fabs(delta);
    const double share = count / t.units;
    Trade part = t;
    part.units = count;
    const double part_fee = entry_fee_ * share, part_committed = committed_ * share;
    entry_fee_ -= part_fee;
    committed_ -= part_committed;
    t.units -= count;
    units_ = side * t.units;
    const double fill = exit_fill(side, price, slip_);
    const double fee = count * fill * options_.commission;
    cash_ += side > 0 ? count * fill - fee : -(count * fill + fee);
    part.exit_price = fill;
    part.exit_bar = bar;
    part.open = false;
    part.bars_held = bar - part.entry_bar;
    part.pnl = side * count * (fill - part.entry_price) - part_fee - fee;
    part.ret = part.pnl / part_committed;
    part.exit_reason = ExitReason::kRebalance;
    trades_.insert(trades_.end() - 1, part);  // the open trade stays last
  }

  void open_position(int side, double price, std::size_t bar) {
    const double equity_now = cash_;  // flat: equity is the cash
    const double fill = entry_fill(side, price);
    // `size` of the equity, commission included; with `risk`, no more than the units whose stop
    // would lose that fraction of the equity.
    double count = options_.size * equity_now / (fill * (1.0 + options_.commission));
    const Exits& x = options_.exits;
    if (x.risk > 0) count = std::min(count, x.risk * equity_now / (fill * x.stop_loss));
    committed_ = x.risk > 0 ? count * fill * (1.0 + options_.commission) : options_.size * equity_now;
    start_trade(side, fill, bar, count);
  }

 private:
  // The trade opened with committed_ set: cash and units moved, the trade recorded.
  void start_trade(int side, double fill, std::size_t bar, double count) {
    Trade t;
    t.entry_bar = bar;
    t.side = side;
    t.open = true;
    t.entry_price = fill;
    t.units = count;
    entry_fee_ = entry_fee(count, fill, options_.commission);  // exactly 0 without commission
    if (side > 0) {
      units_ = count;
      cash_ = cash_after_long_entry(cash_, committed_);  // the entry spends exactly the committed capital
    } else {
      cash_ = cash_after_short_entry(cash_, count, fill, entry_fee_);
      units_ = -count;
    }
    trades_.push_back(t);
  }

  const ExecutionOptions& options_;
  double slip_;
  double& cash_;
  double units_ = 0;
  double committed_ = 0;
  double entry_fee_ = 0;  // commission paid by the open position's entry
  std::vector<Trade>& trades_;
};

// The position the events at one bar ask for, given the current one (docs/SEMANTICS.md "ma_cross"). Exits come first;
// a position being closed may be reversed by an entry of the other side in the same fill.
inline int target_after(int current, std::uint8_t events, bool allow_short) {
  if (current > 0 && !(events & kLongExit)) return 1;
  if (current < 0 && !(events & kShortExit)) return -1;
  if (current <= 0 && (events & kLongEntry)) return 1;
  if (current >= 0 && allow_short && (events & kShortEntry)) return -1;
  return 0;
}

// The price exits of the open position (docs/SEMANTICS.md "Exits by price and time"), watched bar
// by bar from the first bar whose range it is exposed to.
class PriceExits {
 public:
  explicit PriceExits(const Exits& exits) : exits_(exits) {}

  // A position entered at price `entry`, exposed to the ranges from bar `first` on.
  void start(double entry, std::size_t first) {
    entry_ = entry;
    extreme_ = entry;
    first_ = first;
  }

  // Whether bar t's range takes the position of `side` out, and at what price and why.
  struct Hit {
    double price;
    ExitReason reason;
  };
  std::optional<Hit> check(const Bars& bars, std::size_t t, int side) {
    return check(t, bars.open[t], bars.high[t], bars.low[t], side);
  }
  std::optional<Hit> check(std::size_t t, double open, double high, double low, int side) {
    if (t < first_ || side == 0 || !(exits_.stop_loss > 0 || exits_.take_profit > 0 || exits_.trailing_stop > 0))
      return std::nullopt;
    // Prices moving against the position count as "down": a short's levels are mirrored.
    const double s = side;
    const double stop = exits_.stop_loss > 0 ? entry_ * (1.0 - s * exits_.stop_loss) : std::nan("");
    const double trail = exits_.trailing_stop > 0 ? extreme_ * (1.0 - s * exits_.trailing_stop) : std::nan("");
    const double target = exits_.take_profit > 0 ? entry_ * (1.0 + s * exits_.take_profit) : std::nan("");
    // Of two stops, the one met first from the open: the nearer (for a long, the higher).
    std::optional<Hit> guard;
    if (!std::isnan(stop)) guard = Hit{stop, ExitReason::kStopLoss};
    if (!std::isnan(trail) && (!guard || s * trail > s * guard->price)) guard = Hit{trail, ExitReason::kTrailingStop};
    const double adverse = side > 0 ? low : high, favourable = side > 0 ? high : low;
    // A stop the bar reaches comes before a target it reaches, whatever the open; each fills at its
    // level, or at the open when the open is already beyond it (a gap).
    std::optional<Hit> hit;
    if (guard && s * adverse <= s * guard->price)
      hit = Hit{s * open <= s * guard->price ? open : guard->price, guard->reason};
    else if (!std::isnan(target) && s * favourable >= s * target)
      hit = Hit{s * open >= s * target ? open : target, ExitReason::kTakeProfit};
    if (!hit) extreme_ = side > 0 ? std::max(extreme_, high) : std::min(extreme_, low);
    return hit;
  }

 private:
  const Exits& exits_;
  double entry_ = 0, extreme_ = 0;
  std::size_t first_ = 0;
};

// One bar of the reference engine's fills (docs/SEMANTICS.md "Fills and costs", "Exits by price
// and time"): fills at the open (the order the rules placed at the previous close), then the price
// exits over the bar's range, then max_bars at the close, then the rules at the close. A backtest
// steps it over a file's bars; the live engine one bar as each arrives.
class Simulation {
 public:
  Simulation(const ExecutionOptions& options, std::vector<Trade>& trades)
      : options_(options),
        cash_(options.cash),
        account_(options, trades, cash_),
        price_exits_(options.exits),
        max_bars_(static_cast<std::size_t>(options.exits.max_bars)),
        held_from_(options.fill == Fill::kClose ? 1 : 0) {}
  Simulation(const Simulation&) = delete;
  Simulation& operator=(const Simulation&) = delete;

  struct Close {
    double equity, units;  // at the bar's close, after its fills
  };
  // Bar t with its prices and the rules' events at its close; `window_end`: the window's last bar
  // (with options.close_at_end the position is closed at its close).
  Close step(std::size_t t, double open, double high, double low, double close, std::uint8_t events, bool window_end) {
    if (t < options_.first_bar) return {options_.cash, 0.0};  // before the window: flat, no rules
    if (ruined_) return {0.0, 0.0};                           // nothing more is traded
    if (has_pending_) {
      if (pending_ != account_.direction()) {
        account_.close_position(open, t, ExitReason::kRule);
        // A short closed above its proceeds leaves no cash to commit: the close below ruins it.
        if (pending_ != 0 && account_.equity(open) > 0) enter(pending_, open, t, t);
      }
      has_pending_ = false;
    }
    if (const auto hit = price_exits_.check(t, open, high, low, account_.direction()))
      account_.close_position(hit->price, t, hit->reason);
    double equity = account_.equity(close);
    if (equity <= 0) {  // ruin (SEMANTICS.md "Ruin"): out at this close, for good
      account_.close_position(close, t, ExitReason::kRuin);
      ruined_ = true;
      return {0.0, 0.0};
    }
    if (max_bars_ > 0 && account_.direction() != 0 && t + 1 - account_.trade().entry_bar == max_bars_ + held_from_) {
      account_.close_position(close, t, ExitReason::kMaxBars);
      equity = account_.equity(close);
    }
    window_end = window_end && options_.close_at_end;
    const int target = target_after(account_.direction(), events, options_.allow_short);
    if (target != account_.direction()) {
      if (options_.fill == Fill::kClose) {
        account_.close_position(close, t, ExitReason::kRule);
        if (target != 0 && !window_end) enter(target, close, t, t + 1);
        equity = account_.equity(close);  // the fills' costs
      } else {
        pending_ = target;
        has_pending_ = true;
      }
    }
    if (window_end && account_.direction() != 0) {  // the window ends: out at its last close
      account_.close_position(close, t, ExitReason::kEnd);
      equity = account_.equity(close);
    }
    return {equity, account_.units()};
  }

  // After the last of `bars` bars.
  void end(std::size_t bars) { account_.end(bars); }
  int direction() const { return account_.direction(); }
  // With next-open fills: the position the order placed at the last close asks for, if one was.
  std::optional<int> order() const { return has_pending_ ? std::optional<int>(pending_) : std::nullopt; }

 private:
  void enter(int side, double price, std::size_t t, std::size_t first_exposed) {
    account_.open_position(side, price, t);
    price_exits_.start(account_.trade().entry_price, first_exposed);
  }

  const ExecutionOptions& options_;
  double cash_;
  Account account_;
  PriceExits price_exits_;
  // The bars a position entered at bar e holds before max_bars takes it out at a close: from the
  // entry bar on with next-open fills, from the bar after it with close fills.
  std::size_t max_bars_, held_from_;
  int pending_ = 0;  // target decided at the previous close, filled at this open
  bool has_pending_ = false, ruined_ = false;
};

}  // namespace gt::detail
