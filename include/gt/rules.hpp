// Strategies written as rules (docs/SEMANTICS.md "Rules"): boolean expressions over the bars,
// parameters and TA-Lib-exact functions, compiled once and evaluated over every bar, with undefined
// values treated in three-valued logic. A rule strategy is a gt::Strategy like the built-ins, so
// every engine and front end that runs those runs it.
#pragma once

#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "gt/strategy.hpp"

namespace gt::rules {

// What a strategy file (YAML) holds, or what a caller gives inline.
struct RuleTexts {
  std::string name = "rules", description;
  std::vector<ParamSpec> params;
  std::string entry, exit, short_entry, short_exit;  // empty: absent (entry and exit are required)
  std::vector<std::string> constraints;
  // Series of the user's own the rules read by name (one value per bar, given with the data).
  std::vector<std::string> series;
  std::string source = "rules";  // names the file (or "rules") in messages
  // The line of each rule and constraint in the source (for messages), 0 when not from a file.
  std::size_t entry_line = 0, exit_line = 0, short_entry_line = 0, short_exit_line = 0;
  std::vector<std::size_t> constraint_lines;
};

// Reads a strategy file: name, description, params ({type: int|float|bool, default, min, max,
// doc}), entry, exit, optional short_entry, short_exit and constraints. Throws ParamError naming the
// file and line of anything it cannot use.
RuleTexts read_strategy_file(const std::filesystem::path& path);
// The same from a strategy file's text; `source` names it in messages.
RuleTexts parse_strategy_text(const std::string& yaml, const std::string& source);

// A parameter of inline rules (`--entry`/`--exit`), its type read off the values a user wrote for
// it (`--param`, `--grid`): bool when each is true or false, int when each is a whole number, else
// float; its default the first value, its range unbounded (functions check their periods).
ParamSpec inferred_param(const std::string& name, const std::vector<std::string>& values);

// Compiles the rules (parse, check types, arity, parameters) and returns the strategy. Throws
// ParamError: a syntax error names the source, line and column with a caret under the fault; an
// unknown function or series lists the known ones; a parameter used but not declared, or declared
// but unused, is refused.
std::shared_ptr<const Strategy> compile(const RuleTexts& rules);

// One expression (a number or a condition) over every bar, as rules read it: the parameters and
// series of `context` are its names (its rules are not needed), `values` their values in schema
// order. Conditions come out as 1, 0 or NaN (undefined); numbers as numbers, NaN where undefined.
// Throws ParamError as compile does.
std::vector<double> evaluate_expression(const Bars& bars, const RuleTexts& context, const std::string& expression,
                                        const ParamValues& values);

// The rules' canonical text (every rule and constraint reprinted from its parse, parameters by
// name): what identifies a rule strategy's signals, e.g. in cache keys.
std::string canonical_text(const RuleTexts& rules);

// The rules as JSON (what a study request carries to workers anywhere) and back.
nlohmann::ordered_json rules_json(const RuleTexts& rules);
RuleTexts rules_from_json(const nlohmann::ordered_json& json);

// The names of the functions a rule may call, and of the series it may read.
std::vector<std::string> function_names();
std::vector<std::string> series_names();

}  // namespace gt::rules
