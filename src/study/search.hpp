// Searches beyond grids (docs/SEMANTICS.md "Search"): which combinations of a grid's space a study
// evaluates when it does not evaluate them all, chosen in rounds that an executor evaluates (Ray's,
// or this machine's cores), then ranked, written and judged exactly as a grid's results.
#pragma once

#include "gt/study.hpp"

namespace gt {

// Runs `tasks` on `executor`, handing each outcome to `done` with its task's position, and throws
// when one reports twice, is unknown or never reports (a grid's ranges and a search's rounds alike).
void run_tasks(RangeExecutor& executor, const nlohmann::ordered_json& request, const std::vector<RankedUnit>& units,
               std::span<const RangeTask> tasks, bool rows,
               const std::function<void(std::size_t, RangeOutcome&&)>& done);

// Refuses, before any work, a search its grid cannot take: an unknown method, a budget of 0, a
// non-grid method over a space with no range, halving over a portfolio.
void check_search(const SearchOptions& search, const Grid& grid, bool portfolio);

// Runs `request`'s search (its ranking.search, not a grid's, checked by check_search) on
// `executor` (nullptr: this machine), handing every evaluated combination to `sink` in grid
// order, unit by unit.
StudyOutcome run_search(const StudyRequest& request, RangeExecutor* executor, ResultSink* sink);

}  // namespace gt
