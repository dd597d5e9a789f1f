// A compiled rule strategy as the engines read it (private to the library): the parsed rules, and
// their evaluation over every bar for one combination of parameter values. The reference signals
// (rules.cpp) and the grid engine (src/optimize/rules_evaluator.cpp) both evaluate through here.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "gt/strategy.hpp"

namespace gt::rules {

struct Node {
  enum Kind { kNumber, kBool, kName, kNegate, kNot, kBinary, kAnd, kOr, kCall, kIndex } kind = kNumber;
  double number = 0;
  std::string text;  // a name, a function or an operator
  std::vector<Node> args;
  std::size_t line = 1, column = 1;
};

struct Program {
  std::vector<ParamSpec> params;
  std::vector<std::string> user_series;  // the user's own series the rules may read
  Node entry, exit;
  std::optional<Node> short_entry, short_exit;
  std::vector<Node> constraints;
  std::vector<std::string> constraint_texts;
};

// `node` (a condition or a number) at every bar for these parameter values: 1 (true), 0 (false),
// NaN (undefined), or the number. Function calls are shared through `cache` by every combination
// that makes the same call.
// The result may be one of the bars' own columns or a series `cache` holds: read it while both live.
std::shared_ptr<const std::vector<double>> evaluate_over_bars(const Program& program, const Node& node,
                                                              const Bars& bars, std::span<const double> values,
                                                              SeriesCache& cache);

// An expression of the parameters alone (no series) for these values.
double evaluate_scalar(const Program& program, const Node& node, std::span<const double> values);

// The expression's canonical text with each parameter written as its value: what identifies one
// instance of it (the same text, the same values at every bar).
std::string instance_text(const Program& program, const Node& node, std::span<const double> values);

}  // namespace gt::rules
