// Walk-forward analysis (docs/SEMANTICS.md "Walk-forward"): the grid optimized on each training
// window, its best run on the test window after it, the test windows chained.
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <vector>

#include "gt/backtest.hpp"
#include "gt/grid.hpp"
#include "gt/optimize.hpp"

namespace gt {

struct WalkForwardOptions {
  std::size_t train = 0, test = 0;  // bars
  bool anchored = false;            // every training window starts at the first bar
};

struct WalkForwardWindow {
  std::size_t train_start = 0, train_end = 0, test_start = 0, test_end = 0;  // bars, inclusive
  ParamValues parameters;                                                    // the training window's best
  Metrics in_sample, out_of_sample;
};

struct WalkForwardResult {
  std::vector<WalkForwardWindow> windows;
  Metrics out_of_sample;                 // of the stitched equity (docs/SEMANTICS.md "Metrics")
  std::vector<std::size_t> equity_bars;  // the test windows' bars, in order
  std::vector<double> equity;            // the stitched equity at each of them
  std::vector<double> position;          // units held at each of them (of its window's account)
  double efficiency = 0;                 // mean out-of-sample sharpe / mean in-sample sharpe; NaN when
                                         // the in-sample mean is 0
};

// The windows of `bars` bars: train then test bars, stepping by `test`, whole test windows only.
// Throws ParamError naming `train` or `test` when zero or too long, or when fewer than two whole
// windows fit.
std::vector<WalkForwardWindow> walk_forward_windows(std::size_t bars, const WalkForwardOptions& wf);

// The walk-forward of `grid` on one symbol, each training window ranked by `opt.metric` (top,
// min_trades and threads as in optimize; on the CPU engines).
WalkForwardResult walk_forward(const Bars& bars, const Grid& grid, const ExecutionOptions& options,
                               const OptimizeOptions& opt, const WalkForwardOptions& wf);

// The result as `gtrader walkforward --json` and Python show it: per window its times, bars,
// parameters and both metric sets; the stitched out-of-sample metrics; the efficiency (null when
// undefined).
nlohmann::ordered_json walk_forward_json(const Bars& bars, const Strategy& strategy, const WalkForwardResult& r);

}  // namespace gt
