// The event-driven grid engine for ma_cross (long-only, whole-equity entries): per combination,
// O(bars / 64) to find the crossings and O(1) per trade for every metric.
#pragma once

#include <memory>

#include "gt/optimize.hpp"

namespace gt {

// nullptr when the strategy or the options are outside what this engine reproduces exactly
// (another strategy, allow_short, or size below 1): the caller then uses the reference path.
std::unique_ptr<Evaluator> make_ma_cross_evaluator(const Bars& bars, const Grid& grid, const ExecutionOptions& options);

}  // namespace gt
