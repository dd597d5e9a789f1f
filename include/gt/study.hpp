// One study, one way in: what a user asks of the optimizer, whichever front end they use (the
// CLI, the Python package, a Ray driver), and the one runner that does it. The runner owns the
// ranking, the results file, the summary and the store that makes a run resumable; an executor
// (Ray) only evaluates ranges of the grid and sends their states back.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "gt/backtest.hpp"
#include "gt/grid.hpp"
#include "gt/optimize.hpp"

namespace gt {

// Where a study records results as it goes (docs/SEMANTICS.md "Cache and resume").
struct StudyStore {
  std::string cache;              // a folder or redis://...; empty: no cache
  std::filesystem::path journal;  // with no cache: the folder of run journals (empty: none)
  bool resume = false;            // with a journal: keep what an interrupted run recorded
};

struct StudyRequest {
  std::vector<Bars> symbols;
  // A rule strategy (docs/SEMANTICS.md "Rules"), owned here; the built-ins live in the registry.
  std::shared_ptr<const Strategy> rule_strategy;
  nlohmann::ordered_json rules;  // its rules' JSON form (null for a built-in)
  std::optional<Grid> grid;
  ExecutionOptions execution;
  OptimizeOptions ranking;  // metric, top, min_trades, threads, device, gpus, reference, progress
  StudyStore store;
  std::filesystem::path out;  // the results CSV (empty: none)
  // An HTML report of the results (docs/SEMANTICS.md "Reports"), with its robustness panel when
  // robustness is asked for (empty: none).
  std::filesystem::path report;
  bool force = false;  // start even when the estimate says it does not fit
  // Told what a large study will take before it starts (none: not told).
  std::function<void(const std::string&)> notice;
};

// Execution options from a JSON object of option values ({"fill": "close", "commission": 0.001}),
// read by the library's one parser; checked. `with_exits`: the exit parameters (stop_loss, ...)
// may be given among them, as signal arrays take them; otherwise they are refused, being a
// strategy's parameters.
ExecutionOptions execution_options(const nlohmann::ordered_json& options, bool with_exits = false);
// Parameter assignments from a JSON object of values ({"fast": 10, "volume_filter": true}) as the
// NAME=VALUE texts the strategy's parser reads.
std::vector<std::pair<std::string, std::string>> assignments(const nlohmann::ordered_json& values);

// A request from its JSON form: the keys are the Python keyword arguments (docs/SEMANTICS.md
// "Studies"); the grid as `grid` (NAME=SPEC items), `grid_file` and `fixed`, or as resolved `axes`.
// Throws ParamError naming the key.
StudyRequest study_request(const nlohmann::ordered_json& request, std::vector<Bars> symbols);
// The request's JSON form with the grid resolved to its axes (no file needed to read it back).
nlohmann::ordered_json study_request_json(const StudyRequest& request);

// What a study ranks, each with the symbols it is made of: one unit per symbol, or one portfolio
// of them all (docs/SEMANTICS.md "Portfolios").
struct RankedUnit {
  std::string name;
  std::vector<Bars> symbols;
};
std::vector<RankedUnit> ranked_units(const StudyRequest& request);

// One task of a distributed study: a range of one ranked unit's grid, or the combinations a
// search chose (`indices`, ascending; first and count are then its first and its size).
struct RangeTask {
  std::size_t unit = 0;
  std::uint64_t first = 0, count = 0;
  std::vector<std::uint64_t> indices;
};
struct RangeOutcome {
  StudyState state;
  std::string rows;  // the range's rows of the results file, when asked for
};

// Evaluates ranges of a study somewhere else (Ray). The runner splits the grid, the executor
// runs the tasks on the study's ranked units (each run's own: a walk-forward's windows are studies
// of their bars) and hands back each range's state; the runner merges them.
class RangeExecutor {
 public:
  virtual ~RangeExecutor() = default;
  virtual std::string name() const = 0;
  virtual std::uint64_t task_size(std::uint64_t grid_size) = 0;  // combinations per task
  // Runs every task, calling done(i, outcome) once for each, in any order, on this thread.
  virtual void run(const nlohmann::ordered_json& request, const std::vector<RankedUnit>& units,
                   std::span<const RangeTask> tasks, bool rows,
                   const std::function<void(std::size_t, RangeOutcome&&)>& done) = 0;
  virtual nlohmann::ordered_json report() const { return nlohmann::ordered_json::object(); }  // merged into the summary
};

// The worker's side of a distributed study: one ranked unit's evaluator (a symbol's, or a
// portfolio's over all its symbols), built once, for many ranges. `unit` and `unit_names` place
// its results among the study's.
class RangeWorker {
 public:
  RangeWorker(const nlohmann::ordered_json& request, std::vector<Bars> symbols, std::size_t unit,
              std::vector<std::string> unit_names);
  ~RangeWorker();
  RangeOutcome evaluate(std::uint64_t first, std::uint64_t count, bool rows) const;
  RangeOutcome evaluate(std::span<const std::uint64_t> indices, bool rows) const;
  std::string_view evaluator() const;  // the engine's name

 private:
  RangeOutcome outcome(ChunkResults&& chunk, bool rows) const;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct StudyOutcome {
  OptimizeResult result;
  std::string store = "off";         // what recorded the results, for the user (never a password)
  std::uint64_t store_rejected = 0;  // damaged or foreign entries ignored and recomputed
  nlohmann::ordered_json executor = nlohmann::ordered_json::object();
  // A search's method, budget, seed, how many combinations it evaluated and its rounds (a grid: null).
  nlohmann::ordered_json search;
};

// Estimates the study (refusing one that cannot fit unless `force`), opens its store, runs it
// here or on `executor`, writes the results file atomically and closes a completed journal.
StudyOutcome run_study(const StudyRequest& request, RangeExecutor* executor = nullptr);

// The metric table's JSON form of one combination's metrics, and a combination's parameters by
// name with their types. Infinite values stay numbers here; json_text writes them as "inf".
nlohmann::ordered_json metrics_json(const Metrics& metrics);
nlohmann::ordered_json params_json(const Strategy& strategy, std::span<const double> values);
// Every ranked combination, symbol by symbol, best first: {symbol, index, parameters, metrics}.
nlohmann::ordered_json ranked_json(const StudyRequest& request, const StudyOutcome& outcome);
// The summary every front end shows: counts, rates, engine, store and each symbol's best.
nlohmann::ordered_json study_summary_json(const StudyRequest& request, const StudyOutcome& outcome);
// The summary as people read it: each symbol's table of the best, then a line of counts.
std::string study_summary_text(const StudyRequest& request, const StudyOutcome& outcome);
// JSON text with infinities as "inf"/"-inf" (JSON has no infinity), indented by 2.
std::string json_text(const nlohmann::ordered_json& value);

}  // namespace gt
