// A compiled rule strategy as the engines read it (private to the library): the parsed rules, and
// their evaluation over every bar for one combination of parameter values. The reference signals
// (rules.cpp) and the grid engine (src/optimize/rules_evaluator.cpp) both evaluate through here.
#pragma once

#include <cmath>
#include <cstddef>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "gt/signal_rules.hpp"
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

// The operators and the per-bar functions on one bar's operands (1 true, 0 false, NaN undefined),
// shared by the evaluation over every bar and the one bar by bar (stream.cpp).
inline constexpr double kUndefined = std::numeric_limits<double>::quiet_NaN();
enum class Op { kAdd, kSubtract, kMultiply, kDivide, kLess, kLessEqual, kGreater, kGreaterEqual, kEqual, kNotEqual };
Op binary_op(std::string_view text);  // one of + - * / < <= > >= == !=

template <Op op>
inline double binary_value(double x, double y) {
  if constexpr (op == Op::kAdd) return x + y;
  if constexpr (op == Op::kSubtract) return x - y;
  if constexpr (op == Op::kMultiply) return x * y;
  if constexpr (op == Op::kDivide) return y == 0 ? kUndefined : x / y;
  if (std::isnan(x) || std::isnan(y)) return kUndefined;
  if constexpr (op == Op::kLess) return x < y ? 1.0 : 0.0;
  if constexpr (op == Op::kLessEqual) return x <= y ? 1.0 : 0.0;
  if constexpr (op == Op::kGreater) return x > y ? 1.0 : 0.0;
  if constexpr (op == Op::kGreaterEqual) return x >= y ? 1.0 : 0.0;
  if constexpr (op == Op::kEqual) return x == y ? 1.0 : 0.0;
  return x != y ? 1.0 : 0.0;
}
// f(std::integral_constant<Op, op>) for the operator `op`, so a loop over bars is compiled per operator.
template <class F>
auto with_op(Op op, F f) {
  switch (op) {
    case Op::kAdd:
      return f(std::integral_constant<Op, Op::kAdd>());
    case Op::kSubtract:
      return f(std::integral_constant<Op, Op::kSubtract>());
    case Op::kMultiply:
      return f(std::integral_constant<Op, Op::kMultiply>());
    case Op::kDivide:
      return f(std::integral_constant<Op, Op::kDivide>());
    case Op::kLess:
      return f(std::integral_constant<Op, Op::kLess>());
    case Op::kLessEqual:
      return f(std::integral_constant<Op, Op::kLessEqual>());
    case Op::kGreater:
      return f(std::integral_constant<Op, Op::kGreater>());
    case Op::kGreaterEqual:
      return f(std::integral_constant<Op, Op::kGreaterEqual>());
    case Op::kEqual:
      return f(std::integral_constant<Op, Op::kEqual>());
    case Op::kNotEqual:
      break;
  }
  return f(std::integral_constant<Op, Op::kNotEqual>());
}
inline double not_value(double a) {
  return std::isnan(a) ? a : (a != 0 ? 0.0 : 1.0);
}
inline double and_value(double a, double b) {
  if (a == 0 || b == 0) return 0.0;  // false whatever the other side is
  return std::isnan(a) || std::isnan(b) ? kUndefined : 1.0;
}
inline double or_value(double a, double b) {
  if ((a != 0 && !std::isnan(a)) || (b != 0 && !std::isnan(b))) return 1.0;  // true whatever the other
  return std::isnan(a) || std::isnan(b) ? kUndefined : 0.0;
}
inline double min_max_value(bool minimum, double a, double b) {
  return std::isnan(a) || std::isnan(b) ? kUndefined : (minimum ? std::min(a, b) : std::max(a, b));
}
// cross_above (above) or cross_below at a bar of a and b after a bar of a0 and b0: the crossing
// rule of docs/SEMANTICS.md "ma_cross", with its tie band.
inline double cross_value(bool above, double a, double b, double a0, double b0) {
  if (std::isnan(a) || std::isnan(b) || std::isnan(a0) || std::isnan(b0)) return kUndefined;
  return (above ? crosses(is_above(a, b), is_at_or_below(a0, b0)) : crosses(is_below(a, b), is_at_or_above(a0, b0)))
             ? 1.0
             : 0.0;
}
// A call's whole-number argument (a period, an MA type), checked: ParamError naming the call.
int whole_argument(const Node& argument, double value, std::string_view function, int minimum);
// The rules' events bar by bar (Strategy::stream): O(1) a bar, each function's incremental state
// (gt/incremental.hpp), equal to `signals` over the bars so far at their last bar. Throws
// ParamError when the rules read a series of the user's own (bars arriving carry the bar fields).
std::unique_ptr<SignalStream> stream(const Program& program, const ParamValues& values);

}  // namespace gt::rules
