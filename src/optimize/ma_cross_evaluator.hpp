// The event-driven grid engine for ma_cross (long-only, whole-equity entries): per combination,
// O(bars / 64) to find the crossings and O(1) per trade for every metric.
#pragma once

#include <memory>
#include <vector>

#include "gt/optimize.hpp"

namespace gt {

// Everything a long-only, whole-equity trade of ma_cross reads of one bar, under given options:
// shared by the CPU engine and its CUDA twin (src/optimize/cuda), so both fill alike.
struct alignas(64) MaCrossBarFacts {
  double close = 0;
  double entry_cost = 0;                        // price of one unit bought at this bar's fill, costs included
  double exit_value = 0;                        // cash from one unit sold at this bar's fill, costs deducted
  double entry_return = 0;                      // return of the entry bar: close / entry_cost - 1
  double exit_return = 0;                       // return of the exit bar: exit_value / previous close - 1
  double sum_r = 0, sum_r2 = 0, sum_down2 = 0;  // prefix sums of close-to-close returns
};
// Running peak and deepest drawdown of an equity curve. `floor` = peak * (1 - max_drawdown) is
// kept so that most marks cost one comparison and no division.
struct DrawdownTracker {
  double peak, max_drawdown = 0, floor;
  GT_HOST_DEVICE explicit DrawdownTracker(double start) : peak(start), floor(start) {}
  GT_HOST_DEVICE void raise_peak(double value) {
    peak = value;
    floor = peak * (1.0 - max_drawdown);
  }
  GT_HOST_DEVICE void deepen(double drawdown) {
    max_drawdown = drawdown;
    floor = peak * (1.0 - max_drawdown);
  }
  // The equity at one close.
  GT_HOST_DEVICE void mark(double value) {
    if (value > peak)
      raise_peak(value);
    else if (value < floor)
      deepen(1.0 - value / peak);
  }
};

std::vector<MaCrossBarFacts> ma_cross_bar_facts(const Bars& bars, const ExecutionOptions& options);
// The moving-average periods and types an ma_cross grid needs (fast and slow values together).
std::vector<int> ma_cross_periods(const Grid& grid);
std::vector<int> ma_cross_types(const Grid& grid);

// True for the studies the event-driven engines (this one and its CUDA twin) reproduce exactly:
// ma_cross, long-only, whole-equity entries.
bool ma_cross_engine_supports(const Grid& grid, const ExecutionOptions& options);

// nullptr when !ma_cross_engine_supports(grid, options): the caller then uses the reference path.
std::unique_ptr<Evaluator> make_ma_cross_evaluator(const Bars& bars, const Grid& grid, const ExecutionOptions& options);

}  // namespace gt
