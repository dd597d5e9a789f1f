// The rule functions (docs/SEMANTICS.md "Rules"), each declared once: its arguments (what the
// type check reads), its outputs, its lookback, and its two evaluations, over every bar (rules.cpp)
// and bar by bar (stream.cpp), side by side in functions.cpp so that the two cannot drift apart.
#pragma once

#include <cstddef>
#include <functional>
#include <span>
#include <string_view>
#include <vector>

#include "gt/data.hpp"
#include "gt/strategy.hpp"
#include "program.hpp"

namespace gt::rules {

// A node's value at each new bar (the evaluation bar by bar).
using Next = std::function<double(const BarValues&)>;

// What a function's implementations read of one call, its arguments by position. `whole(i,
// minimum)` is argument i as a whole number of at least `minimum` (ParamError naming the call
// otherwise) and `scalar(i)` argument i as one value: arguments that are not series.
struct CallArguments {
  std::function<int(std::size_t, int)> whole;
  std::function<double(std::size_t)> scalar;
};

// The evaluation over every bar: the bars, the first argument of an 'x' function as a series (a
// number there a constant series), and each argument's values.
struct ArgumentOverBars {
  const double* series = nullptr;  // its value at every bar, or nullptr for one value
  double scalar = 0;
  double at(std::size_t t) const { return series ? series[t] : scalar; }
};
struct CallOverBars : CallArguments {
  const Bars* bars = nullptr;
  std::span<const double> x;
  std::vector<ArgumentOverBars> args;
};

// The evaluation bar by bar: argument i's own stream (built when asked: each function asks once
// per argument it reads) and the output of the call's family wanted.
struct CallBarByBar : CallArguments {
  std::function<Next(std::size_t)> series;
  std::size_t output = 0;
};

// The lookback (the first bar at which the call can be defined on bars without gaps): argument i's
// own, argument i as a period (1 where it is not one), and the largest of the arguments'.
struct CallLookback {
  std::function<std::size_t(std::size_t)> of, period;
  std::function<double(std::size_t)> scalar;
  std::size_t widest = 0;
};

// One output of a call: the call whose outputs it shares (MACD's three lines "macd", the three
// bands "bb", %K and %D "stoch"; any other function itself), which of its `count` outputs it is.
struct CallOutput {
  std::string_view family;
  std::size_t index, count;
};

struct Function {
  // args: 'x' a number series (a number is taken as a constant series), 'n' a whole number (a
  // period), 'k' a number, one letter an argument.
  std::string_view name, args, arg_names;
  bool returns_condition;  // the crossings; every other function returns a number series
  CallOutput output;       // the call whose outputs it shares, and which of them it is
  std::size_t (*lookback)(const CallLookback&);
  SeriesCache::Group (*over_bars)(const CallOverBars&);  // every output of the family
  Next (*bar_by_bar)(const CallBarByBar&);               // the output wanted
};

// Every function, in the order messages list them.
const std::vector<Function>& functions();
// The function called `name`; nullptr for none.
const Function* find_function(std::string_view name);
// The function of a call the type check has accepted (Error for a name it would have refused).
const Function& function_named(std::string_view name);

}  // namespace gt::rules
