// The grid engine of strategies written as rules (long-only, whole-equity entries): conditions as
// bit masks, shared across the grid, and trades booked as ma_cross's are.
#pragma once

#include <memory>

#include "gt/optimize.hpp"

namespace gt {

// True for the studies this engine reproduces exactly: a rule strategy, long-only, whole-equity
// entries.
bool rules_engine_supports(const Grid& grid, const ExecutionOptions& options);

// nullptr when !rules_engine_supports(grid, options): the caller then uses the reference path.
std::unique_ptr<Evaluator> make_rules_evaluator(const Bars& bars, const Grid& grid, const ExecutionOptions& options);

}  // namespace gt
