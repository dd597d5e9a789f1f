// Strategies and their parameter schemas: the one place the CLI, the optimizer and the Python
// package read names, types, ranges and defaults from.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "gt/backtest.hpp"
#include "gt/data.hpp"

namespace gt {

namespace rules {
struct Program;
}

// Indicator series of one symbol, each computed once and shared by every parameter combination
// that asks for it (the optimizer evaluates thousands of combinations over a few dozen series).
// Bounded: past `capacity_bytes` the oldest entries are dropped (a later request computes them
// again), so a grid whose every combination makes its own series (a band per period and width)
// keeps a bounded set, not one per combination. Entries in use stay alive with their holders.
class SeriesCache {
 public:
  using Group = std::vector<std::vector<double>>;  // the outputs of one indicator call
  explicit SeriesCache(std::size_t capacity_bytes = std::size_t{1} << 30) : capacity_(capacity_bytes) {}
  std::shared_ptr<const Group> get(const std::string& key, const std::function<Group()>& compute);

 private:
  std::mutex mutex_;
  std::unordered_map<std::string, std::shared_ptr<const Group>> entries_;
  std::deque<std::string> order_;  // keys, oldest first
  std::size_t bytes_ = 0, capacity_;
};

// One bar's fields, as a bar arriving on its own gives them.
struct BarValues {
  double open, high, low, close, volume;
};

// A strategy's signals computed bar by bar as bars arrive (the live engine): next() takes the next
// bar and returns its SignalBits, the value `signals` gives at the last of the bars so far.
class SignalStream {
 public:
  virtual ~SignalStream() = default;
  virtual std::uint8_t next(const BarValues& bar) = 0;
};

enum class ParamType { kInt, kFloat, kBool };

struct ParamSpec {
  std::string name;
  ParamType type;
  double min, max;  // inclusive
  double default_value;
  std::string help;
};

// Parameter values in schema order (booleans as 0/1, integers exactly representable).
using ParamValues = std::vector<double>;

// A constraint between parameters (e.g. fast < slow). `holds` is what the optimizer asks of every
// combination, so it builds no message; `explain` says why when it does not hold.
struct Constraint {
  std::function<bool(std::span<const double>)> holds;
  std::function<std::string(std::span<const double>)> explain;
};

// The grid engine a strategy's grids can run on, declared by the strategy (not found by its name).
// kRules: the rules' compiled grid engine (src/optimize/rules_evaluator.cpp).
enum class GridEngine { kReference, kMaCross, kRules };

struct Strategy {
  std::string name;
  std::string description;
  int code_version;  // bumped whenever the signals change: part of every cache key
  std::vector<ParamSpec> params;
  Constraint constraint;  // empty functions: every combination of valid values is valid
  // Per-bar SignalBits (see backtest.hpp) from data up to and including each bar's close.
  std::function<void(const Bars&, const ParamValues&, std::span<std::uint8_t>, SeriesCache&)> signals;
  // The signals bar by bar in O(1) a bar (a strategy written as rules); empty: the strategy has no
  // such form, and its signals as bars arrive are `signals` over the bars so far.
  std::function<std::unique_ptr<SignalStream>(const ParamValues&)> stream;
  // The first bar on which a signal can occur (its indicators' lookback); empty: 0.
  std::function<std::size_t(const ParamValues&)> first_signal_bar;
  GridEngine grid_engine = GridEngine::kReference;
  // Signals read from a trained model whose file this parameter names (empty: from rules). Such a
  // strategy has no `signals` until the model is loaded (ml::resolve_strategy).
  std::string model_parameter;
  // What identifies the signals beyond the name and code version (a rule strategy's canonical
  // rules; empty for the built-ins): part of every cache key.
  std::string signal_identity = {};
  // The parsed rules of a strategy written as rules (docs/SEMANTICS.md "Rules"); null otherwise.
  std::shared_ptr<const rules::Program> rules_program = {};

  std::size_t index_of(std::string_view param) const;  // throws ParamError when unknown
  // The parameters its signals read: the schema less the exit parameters every strategy ends with.
  std::size_t signal_param_count() const { return params.size() - kExitParamCount; }
  // The exits of one combination (its last kExitParamCount values), and `options` with them.
  Exits exits_of(std::span<const double> values) const;
  ExecutionOptions options_for(const ExecutionOptions& options, std::span<const double> values) const;
  // Throws ParamError saying which model file to give when the signals come from one not loaded.
  void require_signals() const;
  ParamValues defaults() const;
  // Range, type and constraint check; throws ParamError naming the parameter and its valid range.
  void validate(const ParamValues& values) const;
  // Throws DataError when `bars` end before the first bar that can signal: a run on them could
  // only report zeros.
  void require_enough_bars(const Bars& bars, const ParamValues& values) const;
  // `values` as "name=value name=value" (exits by price and time only where they are on).
  std::string describe(const ParamValues& values) const;
};

// The exit parameters (backtest.hpp exit_param_table) appended to a strategy's own: every strategy's
// schema ends with them. Throws ParamError when one of its own has such a name.
void add_exit_params(const std::string& strategy, std::vector<ParamSpec>& params);
bool is_exit_param(std::string_view name);

// A combination's backtest: the strategy's signals, then the fills with its exits.
BacktestResult run_strategy(const Bars& bars, const Strategy& strategy, const ParamValues& values,
                            const ExecutionOptions& options);

const std::vector<Strategy>& strategies();
const Strategy& find_strategy(std::string_view name);  // throws ParamError listing the names

// Parses one value for `spec` ("12", "1.5", "true"/"false"); throws ParamError naming it.
double parse_param_value(const ParamSpec& spec, std::string_view text);
// name=value pairs over the defaults, then validate().
ParamValues parse_params(const Strategy& s, const std::vector<std::pair<std::string, std::string>>& assignments);
std::string format_param_value(const ParamSpec& spec, double value);
std::string_view param_type_name(ParamType type);

}  // namespace gt
