// The execution model and metrics of docs/SEMANTICS.md "Fills and costs" and "Metrics": the reference engine that every
// fast path (the grid optimizer, the GPU kernels, distributed runs) is tested against.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "gt/data.hpp"
#include "gt/host_device.hpp"

namespace gt {

enum class Fill { kNextOpen, kClose };

inline constexpr double kMaxCash = 1e15;  // starting equity's upper bound (ExecutionOptions::validate)

// Exits by price and time, and risk sizing (docs/SEMANTICS.md "Exits by price and time"): levels
// as fractions of the entry fill price, 0 = off. They are parameters every strategy has (grid axes,
// one value per combination), carried to the engines inside the execution options.
struct Exits {
  double stop_loss = 0;      // long: out when Low <= E(1 - s); short: High >= E(1 + s)
  double take_profit = 0;    // long: out when High >= E(1 + p); short: Low <= E(1 - p)
  double trailing_stop = 0;  // long: out when Low <= H(1 - q), H the highest of E and the Highs before
  double max_bars = 0;       // out at the close of the m-th bar held (a whole number)
  double risk = 0;           // units such that the stop loses this fraction of equity (needs stop_loss)

  // Any exit by price or time: what the plain latch of entries and exits no longer describes.
  bool by_price_or_time() const { return stop_loss > 0 || take_profit > 0 || trailing_stop > 0 || max_bars > 0; }
  // Throws ParamError naming the parameter and its allowed values.
  void validate() const;
  bool operator==(const Exits&) const = default;
};

// The exit parameters declared once: names, members, allowed values and documentation, in the
// order every strategy's schema ends with them.
using ExitField = double Exits::*;
struct ExitParamInfo {
  std::string_view name;
  ExitField field;
  bool integer;
  double max;  // inclusive, unless `below_max`
  bool below_max;
  std::string_view help;
};
inline constexpr std::size_t kExitParamCount = 5;
const std::array<ExitParamInfo, kExitParamCount>& exit_param_table();
// Throws ParamError when `value` is not allowed for exit parameter `name` (by itself).
void check_exit_param(std::string_view name, double value);

// Why a trade closed.
// Why a trade ended; kRebalance: units a portfolio's rebalance took off (docs/SEMANTICS.md "Portfolios").
enum class ExitReason : std::uint8_t {
  kRule,
  kStopLoss,
  kTakeProfit,
  kTrailingStop,
  kMaxBars,
  kEnd,
  kRuin,
  kRebalance
};
std::string_view exit_reason_name(ExitReason reason);

struct ExecutionOptions {
  Fill fill = Fill::kNextOpen;
  bool allow_short = false;
  double commission = 0.0;                 // fraction of traded notional, per side
  double slippage_bps = 0.0;               // basis points against the trader, per side
  double size = 1.0;                       // fraction of equity an entry commits, commission included
  double cash = 100000.0;                  // starting equity
  std::optional<double> periods_per_year;  // inferred from the bar spacing when absent
  Exits exits;                             // per combination: set from its exit parameters
  // A window of the bars (docs/SEMANTICS.md "Walk-forward"): the rules act from this bar's close on
  // and the metrics count from it; the bars before it only warm the indicators up.
  std::size_t first_bar = 0;
  bool close_at_end = false;  // a position still open is closed at the last close (a closed trade)

  // Throws ParamError naming the option and its valid range.
  void validate() const;
  bool operator==(const ExecutionOptions&) const = default;
};

// The execution options declared once: the CLI's flags, the Python keyword arguments, their checks
// and their documentation are all made from this list (as LightGBM makes its parameter parser from
// one list). Names are the library's and Python's; the CLI spells them as --flags.
enum class OptionKind { kChoice, kNumber, kOptionalNumber, kFlag };
struct OptionSpec {
  std::string_view name;
  OptionKind kind;
  std::string_view default_text;  // as a user writes it ("" for an optional number: inferred)
  std::string_view choices;       // kChoice: the allowed values, comma-separated
  std::string_view help;
};
inline constexpr std::size_t kExecutionOptionCount = 7;
const std::array<OptionSpec, kExecutionOptionCount>& execution_option_specs();
// Sets one option from its text as a user wrote it; throws ParamError naming the option (an
// unknown name lists the allowed ones). Ranges are checked by ExecutionOptions::validate.
void set_execution_option(ExecutionOptions& options, std::string_view name, std::string_view text);
// The option's value as text that set_execution_option reads back to the same value.
std::string execution_option_text(const ExecutionOptions& options, std::string_view name);

// Per-bar strategy events, computed from data up to and including that bar's close. The engine
// acts on them according to the position it holds (docs/SEMANTICS.md "Fills and costs", "ma_cross").
enum SignalBits : std::uint8_t {
  kLongEntry = 1,
  kLongExit = 2,
  kShortEntry = 4,  // only acted on with allow_short
  kShortExit = 8,
};

// The events of one bar from the four rules of docs/SEMANTICS.md "Rules" (true where a rule holds):
// with short rules, an entry where short_entry also holds is no entry (and the reverse); without
// them, the strategy is stop-and-reverse (an exit also opens a short, an entry also closes it).
inline std::uint8_t rule_events(bool entry, bool exit, bool has_short_rules, bool short_entry, bool short_exit) {
  if (!has_short_rules)
    return static_cast<std::uint8_t>((entry ? kLongEntry | kShortExit : 0) | (exit ? kLongExit | kShortEntry : 0));
  return static_cast<std::uint8_t>((entry && !short_entry ? kLongEntry : 0) |
                                   (short_entry && !entry ? kShortEntry : 0) | (exit ? kLongExit : 0) |
                                   (short_exit ? kShortExit : 0));
}

struct Trade {
  std::size_t entry_bar = 0, exit_bar = 0;  // bars of the fills
  int side = 1;                             // +1 long, -1 short
  double entry_price = 0, exit_price = 0;   // fill prices, slippage included
  double units = 0;                         // absolute number of units
  double pnl = 0;                           // commissions of both sides included
  double ret = 0;                           // pnl over the capital the entry committed
  bool open = false;                        // still held at the last bar (exit fields unset)
  std::size_t bars_held = 0;
  ExitReason exit_reason = ExitReason::kEnd;  // kEnd while open
};

struct Metrics {
  double total_return = 0, cagr = 0, sharpe = 0, sortino = 0, max_drawdown = 0, calmar = 0;
  std::int64_t trades = 0;
  double win_rate = 0, profit_factor = 0, exposure = 0, avg_trade_return = 0;
  double final_equity = 0;
};

// The metric table: every metric once, in output order (CSV columns, JSON keys, Python dicts),
// with what ranking and the writers need to know of it. Everything else reads from here.
using RealMetricField = double Metrics::*;
using IntegerMetricField = std::int64_t Metrics::*;
struct MetricInfo {
  std::string_view name;
  RealMetricField real;        // the field, for real-valued metrics
  IntegerMetricField integer;  // the field, for counts (written as whole numbers)
  bool higher_is_better;       // the ranking's direction (docs/SEMANTICS.md "Ranking")
  std::string_view description;
};
inline constexpr std::size_t kMetricCount = 12;
const std::array<MetricInfo, kMetricCount>& metric_table();

// Metric names in table order, and the value by name.
const std::vector<std::string>& metric_names();
double metric_value(const Metrics& m, std::string_view name);  // throws ParamError when unknown
// By position in the table: for loops over every metric and for hot paths, which resolve the
// name once with metric_index.
std::size_t metric_index(std::string_view name);  // throws ParamError naming `metric` and the allowed names
double metric_value(const Metrics& m, std::size_t index);
void set_metric_value(Metrics& m, std::size_t index, double value);
bool metric_higher_is_better(std::string_view name);

// Ruined (SEMANTICS.md "Ruin"): the equity reached 0 and stayed there. A solvent account's equity
// is always above 0 (prices are), so the final equity tells.
inline bool is_ruined(const Metrics& m) {
  return m.final_equity <= 0;
}
// docs/SEMANTICS.md "Ranking" order by one metric, the one rule every ranking uses: ruined ones
// after all others, then the better value (higher, or lower where !higher_is_better), NaN last.
// A metric value's place in it as a key: the smaller key ranks first.
struct MetricRank {
  std::uint8_t last;  // bits: ruined (2), metric undefined (1); a caller may add higher ones
  double value;       // the metric, negated where higher is better (0 when undefined)
  bool operator<(const MetricRank& o) const { return last != o.last ? last < o.last : value < o.value; }
};
MetricRank metric_rank(double x, bool ruined, bool higher_is_better);
// Two values in that order: -1: x first, 1: y first, 0: neither (the caller breaks the tie by grid
// order).
int compare_for_ranking(double x, bool x_ruined, double y, bool y_ruined, bool higher_is_better);

struct BacktestResult {
  Metrics metrics;
  std::vector<Trade> trades;
  std::vector<double> equity;            // at each bar's close
  std::vector<double> position;          // signed units held at each bar's close
  std::optional<std::size_t> ruined_at;  // the bar whose close found the equity at or below 0
};

// A trade list as columns, the one form every writer reads (the CLI's trades CSV, Python's
// DataFrame, the report's fills): bar numbers and values, NaN where an open trade has no exit yet.
struct TradeColumns {
  std::vector<double> entry_bar, exit_bar, side, entry_price, exit_price, units, pnl, ret, bars_held, open;
  std::vector<std::string_view> exit_reason;  // exit_reason_name of each
  std::size_t size() const { return entry_bar.size(); }
};
TradeColumns trade_columns(const std::vector<Trade>& trades);

BacktestResult run_backtest(const Bars& bars, std::span<const std::uint8_t> signals, const ExecutionOptions& options);

// The same simulation without the per-bar record: what the optimizer's general path runs.
// `options` must already be validated; `periods_per_year` resolved by the caller.
struct BlockReturns;  // below
// With `blocks`, each bar's return is also added to its block.
Metrics backtest_metrics(const Bars& bars, std::span<const std::uint8_t> signals, const ExecutionOptions& options,
                         double periods_per_year, const BlockReturns* blocks = nullptr);

// What docs/SEMANTICS.md "Metrics" metrics are computed from. Every engine (reference, grid, GPU) fills these
// sums its own way and calls finalize_metrics, the one implementation of the formulas.
struct MetricSums {
  std::size_t bars = 0;  // N: returns r_1..r_N, the first against the starting equity
  double initial_equity = 0, final_equity = 0;
  double sum_r = 0, sum_r2 = 0;  // sum of r_t and of r_t^2
  double sum_down2 = 0;          // sum of min(r_t, 0)^2
  double max_drawdown = 0;
  std::size_t held_bars = 0;  // bars with a position at the close
  std::int64_t trades = 0, wins = 0;
  double gross_profit = 0, gross_loss = 0, sum_trade_return = 0;

  // Branch-free: wins and losses alternate unpredictably, and the grid engine calls this per trade.
  GT_HOST_DEVICE void add_trade(double pnl, double ret) {
    ++trades;
    wins += pnl > 0;
    gross_profit += pnl > 0 ? pnl : 0.0;
    gross_loss += pnl < 0 ? -pnl : 0.0;
    sum_trade_return += ret;
  }
  GT_HOST_DEVICE void add_return(double r) {
    sum_r += r;
    const double r2 = r * r;
    sum_r2 += r2;
    sum_down2 += r < 0 ? r2 : 0.0;
  }
};

// mean / std (ddof = 1) of n returns from their sum and sum of squares; 0 when the std is 0: the
// per-bar Sharpe ratio that finalize_metrics annualizes and robustness compares.
GT_HOST_DEVICE inline double per_bar_sharpe(double n, double sum, double sum2) {
  const double mean = sum / n;
  const double variance = (sum2 - sum * mean) / (n - 1.0);
  return variance > 0 ? mean / std::sqrt(variance) : 0.0;
}

// docs/SEMANTICS.md "Metrics" formulas, the one implementation; inline so that the CUDA engine runs it on the device.
// `annual_growth` is (E_N/E_0)^(A/N), read only when N > 0 and E_N/E_0 > 0: the grid engine's
// lanes compute it eight at a time; the overload below with std::pow.
GT_HOST_DEVICE inline Metrics finalize_metrics(const MetricSums& s, double periods_per_year, double annual_growth) {
  Metrics m;
  const double n = static_cast<double>(s.bars);
  const double growth = s.final_equity / s.initial_equity;
  m.final_equity = s.final_equity;
  m.total_return = growth - 1.0;
  m.cagr = (s.bars == 0) ? 0.0 : (growth > 0 ? annual_growth - 1.0 : -1.0);
  const double root_a = std::sqrt(periods_per_year);
  if (s.bars > 1) {
    const double mean = s.sum_r / n;
    m.sharpe = per_bar_sharpe(n, s.sum_r, s.sum_r2) * root_a;
    const double downside = std::sqrt(s.sum_down2 / n);
    m.sortino = downside > 0 ? mean / downside * root_a : 0.0;
  }
  m.max_drawdown = s.max_drawdown;
  m.calmar = s.max_drawdown > 0 ? m.cagr / s.max_drawdown : 0.0;
  m.trades = s.trades;
  if (s.trades > 0) {
    m.win_rate = static_cast<double>(s.wins) / static_cast<double>(s.trades);
    m.avg_trade_return = s.sum_trade_return / static_cast<double>(s.trades);
    m.profit_factor = s.gross_loss > 0 ? s.gross_profit / s.gross_loss : (s.gross_profit > 0 ? HUGE_VAL : 0.0);
  }
  m.exposure = s.bars ? static_cast<double>(s.held_bars) / n : 0.0;
  return m;
}

GT_HOST_DEVICE inline Metrics finalize_metrics(const MetricSums& s, double periods_per_year) {
  const double growth = s.final_equity / s.initial_equity;
  const bool compounds = s.bars > 0 && growth > 0;
  return finalize_metrics(s, periods_per_year,
                          compounds ? std::pow(growth, periods_per_year / static_cast<double>(s.bars)) : 0.0);
}

// A little above peak * (1 - drawdown): an equity at or over it cannot deepen the drawdown (its
// 1 - equity / peak rounds to at most `drawdown`; the margin covers every rounding in between), so
// that most bars skip the division and the drawdown is the one every bar's division gives. T: a
// double, or a vector of them (the portfolio's lanes); always inlined, as those are compiled per
// instruction set (src/backtest/portfolio_lanes.hpp).
template <class T>
[[gnu::always_inline]] inline T drawdown_floor(T peak, T drawdown) {
  return peak * (1.0 - drawdown) * (1.0 + 0x1p-48);
}

// Feeds MetricSums one bar at a time: the per-bar half of docs/SEMANTICS.md "Metrics" (returns, drawdown, exposure).
class CurveAccumulator {
 public:
  explicit CurveAccumulator(double initial_equity)
      : prev_(initial_equity), peak_(initial_equity), floor_(drawdown_floor(initial_equity, 0.0)) {
    sums_.initial_equity = initial_equity;
    sums_.final_equity = initial_equity;
  }
  // Returns the bar's return.
  double add(double equity, bool held) {
    // After ruin the equity stays at 0 and its returns are 0, not 0/0.
    const double r = prev_ > 0 ? equity / prev_ - 1.0 : 0.0;
    sums_.add_return(r);
    if (equity > peak_) {
      peak_ = equity;
      floor_ = drawdown_floor(peak_, sums_.max_drawdown);
    } else if (equity < floor_) {  // 1 - equity / peak may exceed the deepest drawdown so far
      const double dd = 1.0 - equity / peak_;
      if (dd > sums_.max_drawdown) {
        sums_.max_drawdown = dd;
        floor_ = drawdown_floor(peak_, dd);
      }
    }
    sums_.held_bars += held;
    ++sums_.bars;
    sums_.final_equity = equity;
    prev_ = equity;
    return r;
  }
  MetricSums& sums() { return sums_; }

 private:
  MetricSums sums_;
  double prev_, peak_, floor_;
};

// The returns of one stretch of bars, as far as a Sharpe ratio needs them: their count, sum and sum
// of squares. Stretches join by adding (the Sharpe of a union of blocks follows from the sums).
struct ReturnSums {
  double count = 0, sum = 0, sum2 = 0;
  void add(double r) {
    count += 1;
    sum += r;
    sum2 += r * r;
  }
  ReturnSums& operator+=(const ReturnSums& o) {
    count += o.count;
    sum += o.sum;
    sum2 += o.sum2;
    return *this;
  }
  // mean / std (ddof = 1) per bar; 0 when the std is 0 or there are fewer than two returns.
  double sharpe() const;
};

// Per-bar returns summed per block (docs/SEMANTICS.md "Out-of-sample evidence"): what an engine
// fills for one combination when a study asks for its robustness.
struct BlockReturns {
  std::span<const std::size_t> starts;  // block_starts (gt/robustness.hpp): blocks + 1 values
  std::span<ReturnSums> sums;           // one per block; counts are set by the caller
  std::size_t block_of(std::size_t bar) const;
  void add(std::size_t bar, double r) const {
    ReturnSums& s = sums[block_of(bar)];
    s.sum += r;
    s.sum2 += r * r;
  }
};

// Sums of an equity curve sampled at each bar's close (trades are added by the caller).
MetricSums sums_of_curve(std::span<const double> equity, double initial_equity, std::span<const double> position);
// The curve's per-bar returns, as CurveAccumulator reads them.
std::vector<double> curve_returns(std::span<const double> equity, double initial_equity);

double resolve_periods_per_year(const Bars& bars, const ExecutionOptions& options);

}  // namespace gt
