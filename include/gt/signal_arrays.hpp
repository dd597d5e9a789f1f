// Backtests of signal arrays the caller made (docs/SEMANTICS.md "Signal arrays"): K columns of
// entry and exit booleans over one symbol's bars, each simulated as a strategy whose rules hold
// exactly where its arrays are true, every column at once on every core. The arrays are read in
// place, whatever their layout.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <vector>

#include "gt/backtest.hpp"
#include "gt/data.hpp"

namespace gt {

// One (bars x columns) array of booleans (one byte each, non-zero is true), read in place:
// element (t, k) at data[t * bar_stride + k * column_stride].
struct SignalArray {
  const std::uint8_t* data = nullptr;  // null: the array is absent
  std::ptrdiff_t bar_stride = 0, column_stride = 0;

  bool at(std::size_t t, std::size_t k) const {
    return data[static_cast<std::ptrdiff_t>(t) * bar_stride + static_cast<std::ptrdiff_t>(k) * column_stride] != 0;
  }
};

struct SignalColumns {
  std::size_t bars = 0, columns = 0;
  SignalArray entries, exits, short_entries, short_exits;  // the short arrays go together

  // Throws ParamError naming the array when the shapes are not usable for `bars` (one row per bar,
  // entries and exits required, short arrays both or neither, at least one column).
  void validate(const Bars& bars) const;
  // Column k's events at every bar (rule_events of its four arrays).
  void events(std::size_t column, std::span<std::uint8_t> out) const;
};

// Every column's metrics: options[k] for column k, or options[0] for all when it has one element.
// Long-only, whole-equity columns are booked as the grid engines book trades (O(1) a trade), the
// others by the reference engine; all agree with run_backtest within 1e-9.
std::vector<Metrics> signal_metrics(const Bars& bars, const SignalColumns& signals,
                                    std::span<const ExecutionOptions> options);

// One column's full backtest (trades, equity, position): run_backtest of its events.
BacktestResult signal_backtest(const Bars& bars, const SignalColumns& signals, std::size_t column,
                               const ExecutionOptions& options);

// A signals file for `bars`: columns time (the bars' times, in order, as the data file writes
// them), entry, exit and optionally short_entry, short_exit, each 0/1 or true/false. Returns the
// events of every bar. Throws ParamError naming the file, line and column of a fault.
std::vector<std::uint8_t> read_signals_csv(const std::filesystem::path& path, const Bars& bars);

}  // namespace gt
