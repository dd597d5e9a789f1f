// Walk-forward analysis (docs/SEMANTICS.md "Walk-forward"): the grid optimized on each training
// window, its best run on the test window after it, the test windows chained.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "gt/backtest.hpp"
#include "gt/grid.hpp"
#include "gt/optimize.hpp"
#include "gt/study.hpp"

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
  Metrics out_of_sample;                       // of the stitched equity (docs/SEMANTICS.md "Metrics")
  std::vector<std::size_t> equity_bars;        // the test windows' bars, in order
  std::vector<double> equity;                  // the stitched equity at each of them
  std::vector<double> position;                // units held at each of them (of its window's account)
  double efficiency = 0;                       // mean out-of-sample sharpe / mean in-sample sharpe; NaN when
                                               // the in-sample mean is 0
  std::uint64_t computed = 0, from_cache = 0;  // over the training windows' studies
};

// The windows of `bars` bars: train then test bars, stepping by `test`, whole test windows only.
// Throws ParamError naming `train` or `test` when zero or too long, or when fewer than two whole
// windows fit.
std::vector<WalkForwardWindow> walk_forward_windows(std::size_t bars, const WalkForwardOptions& wf);

// The walk-forward of a study on each of its symbols, in order: every training window a study of
// its own, run by run_study with the study's ranking (metric, min_trades, threads, device,
// reference), store and `executor` (with the cache a second walk-forward over the same data and
// grid computes nothing new; on Ray each window's grid is spread over the cluster); its best
// combination run on the test window after it. Every symbol's windows are checked first.
std::vector<WalkForwardResult> walk_forward(const StudyRequest& study, const WalkForwardOptions& wf,
                                            RangeExecutor* executor = nullptr);

// The result as `gtrader walkforward --json` and Python show it: per window its times, bars,
// parameters and both metric sets; the stitched out-of-sample metrics; the efficiency (null when
// undefined).
nlohmann::ordered_json walk_forward_json(const Bars& bars, const Strategy& strategy, const WalkForwardResult& r);
// Every symbol's: one object for one symbol, else an array of them.
nlohmann::ordered_json walk_forward_json(const StudyRequest& study, const std::vector<WalkForwardResult>& results);
// As people read it: per symbol a line per window and the stitched figures.
std::string walk_forward_text(const StudyRequest& study, const WalkForwardOptions& wf,
                              const std::vector<WalkForwardResult>& results);

// The files a walk-forward writes (empty: not written): the windows as CSV, the stitched equity
// as CSV, the HTML report.
struct WalkForwardFiles {
  std::filesystem::path windows, equity, report;
};
// Before any work: every path writable and, for the report, the chart library there.
void check_walk_forward_files(const WalkForwardFiles& files);
// Each file written atomically.
void write_walk_forward_files(const StudyRequest& study, const std::vector<WalkForwardResult>& results,
                              const WalkForwardFiles& files);

}  // namespace gt
