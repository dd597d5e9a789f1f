// Portfolios (docs/SEMANTICS.md "Portfolios"): one strategy over several symbols with one cash
// account, the bars aligned on the union of their timestamps.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "gt/backtest.hpp"
#include "gt/data.hpp"
#include "gt/strategy.hpp"

namespace gt {

struct PortfolioOptions {
  std::vector<double> weights;  // one per symbol, summing to at most 1; empty: 1/k each
  std::size_t rebalance = 0;    // every n-th timestamp's close; 0: never
};

struct PortfolioResult {
  Metrics metrics;                         // of the portfolio's equity (docs/SEMANTICS.md "Metrics")
  std::vector<std::int64_t> time;          // the union of the symbols' timestamps
  std::vector<double> equity;              // at each timestamp's close
  std::vector<std::vector<double>> value;  // [symbol][timestamp]: units x its last close
  std::vector<std::vector<Trade>> trades;  // per symbol, bars being the symbol's own
  std::vector<double> contribution;        // per symbol: closed trades' pnl plus the open one's mark
  std::uint64_t skipped_entries = 0;       // entries that found no cash at their fill
  std::optional<std::size_t> ruined_at;    // the timestamp whose close found the equity at or below 0
  double periods_per_year = 0;             // A of the metrics, from the union's timestamps or the options
};

// Throws ParamError for fewer than two symbols, weights that do not match the symbols (their
// count, a negative one, a sum above 1), symbols that share no time span, or daily and intraday
// files mixed, naming the symbols.
void check_portfolio(const std::vector<Bars>& symbols, const PortfolioOptions& portfolio);

// The union of the symbols' timestamps, in order: a portfolio's time, one return of its equity each.
std::vector<std::int64_t> portfolio_timeline(const std::vector<Bars>& symbols);

// Each symbol's share of the equity an entry takes: the entry size times its weight (1/k without
// weights).
std::vector<double> entry_shares(const ExecutionOptions& options, const PortfolioOptions& portfolio,
                                 std::size_t symbols);

// What the runs of a portfolio's combinations share: the union timeline, each symbol's bar at each
// of its timestamps (-1: none), and the periods per year of its metrics.
struct PortfolioLayout {
  std::vector<std::int64_t> time;
  std::vector<std::vector<std::int64_t>> bar_at;       // [symbol][timestamp]
  std::vector<std::vector<std::size_t>> timestamp_of;  // [symbol][bar]: its timestamp
  // [symbol][timestamp]: its last close and bar at or before the timestamp (0 before its first)
  std::vector<std::vector<double>> close_at;
  std::vector<std::vector<double>> open_at;  // [symbol][timestamp]: its bar's open there (0 without one)
  std::vector<std::vector<std::size_t>> last_bar_at;
  // [timestamp]: bit s set where symbol s has a bar (the first 64 symbols).
  std::vector<std::uint64_t> trading;
  double periods_per_year = 0;
};
PortfolioLayout portfolio_layout(const std::vector<Bars>& symbols, const ExecutionOptions& options);

// One symbol's signals (SignalBits) as the bars that hold any, in bar order: what the portfolio
// engine reads, most bars holding none.
struct SymbolEvents {
  std::vector<std::uint32_t> bar;
  std::vector<std::uint8_t> signal;
  void clear() {
    bar.clear();
    signal.clear();
  }
  void add(std::size_t t, std::uint8_t bits) {
    bar.push_back(static_cast<std::uint32_t>(t));
    signal.push_back(bits);
  }
};
// The events of a symbol's signals, one SignalBits a bar, into `out` (cleared first).
void symbol_events(std::span<const std::uint8_t> signals, SymbolEvents& out);

// One combination's metrics from each symbol's events, with the combination's options
// (Strategy::options_for): run_portfolio's metrics without its paths, for the studies; with
// `blocks`, the equity's returns per block added to them.
Metrics portfolio_metrics(const std::vector<Bars>& symbols, const PortfolioLayout& layout,
                          std::span<const SymbolEvents> events, const ExecutionOptions& options,
                          const PortfolioOptions& portfolio, const BlockReturns* blocks = nullptr);

// The portfolio_metrics of up to kPortfolioLanes combinations at once, side by side in vector lanes
// (src/backtest/portfolio_lanes.cpp), equal to it to the bit: for options where only the rules
// move positions (portfolio_lanes_apply: no exit by price or time, no rebalancing, at most 64
// symbols), the same for every combination. events[c * symbols + s]: combination c's on symbol s;
// blocks: none, or one per combination (all with the same starts); out: one per combination. A
// combination whose equity reaches 0 (ruin) is run by portfolio_metrics.
inline constexpr std::size_t kPortfolioLanes = 8;
bool portfolio_lanes_apply(const ExecutionOptions& options, const PortfolioOptions& portfolio, std::size_t symbols);
void portfolio_metrics_lanes(const std::vector<Bars>& symbols, const PortfolioLayout& layout,
                             std::span<const SymbolEvents> events, const ExecutionOptions& options,
                             const PortfolioOptions& portfolio, std::span<const BlockReturns* const> blocks,
                             std::span<Metrics> out);

// The strategy with `values` on every symbol, one account. `series`: one cache of indicator series
// per symbol, shared by the runs of many combinations (none: each run computes its own).
PortfolioResult run_portfolio(const std::vector<Bars>& symbols, const Strategy& strategy, const ParamValues& values,
                              const ExecutionOptions& options, const PortfolioOptions& portfolio,
                              std::span<SeriesCache> series = {});

}  // namespace gt
