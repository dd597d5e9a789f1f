#include "gt/strategy.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>

#include "builtin_files.hpp"
#include "gt/error.hpp"
#include "gt/indicators.hpp"
#include "gt/rules.hpp"

namespace gt {

std::shared_ptr<const SeriesCache::Group> SeriesCache::get(const std::string& key,
                                                           const std::function<Group()>& compute) {
  {
    std::lock_guard lock(mutex_);
    if (auto it = entries_.find(key); it != entries_.end()) return it->second;
  }
  auto value = std::make_shared<const Group>(compute());  // outside the lock: others keep going
  std::size_t bytes = 0;
  for (const auto& series : *value) bytes += series.size() * sizeof(double);
  std::lock_guard lock(mutex_);
  const auto [it, added] = entries_.try_emplace(key, std::move(value));
  if (!added) return it->second;  // another thread made it meanwhile
  std::shared_ptr<const Group> result = it->second;
  order_.push_back(key);
  bytes_ += bytes;
  while (bytes_ > capacity_ && order_.size() > 1) {  // the newest always stays
    const auto oldest = entries_.find(order_.front());
    for (const auto& series : *oldest->second) bytes_ -= series.size() * sizeof(double);
    entries_.erase(oldest);
    order_.pop_front();
  }
  return result;
}

std::string_view param_type_name(ParamType type) {
  switch (type) {
    case ParamType::kInt:
      return "int";
    case ParamType::kFloat:
      return "float";
    case ParamType::kBool:
      return "bool";
  }
  return "?";
}

std::string format_param_value(const ParamSpec& spec, double value) {
  switch (spec.type) {
    case ParamType::kBool:
      return value != 0 ? "true" : "false";
    case ParamType::kInt:  // beyond 2^53 a double is no exact integer (and beyond 2^63 no long long)
      return std::fabs(value) < 9007199254740992.0 ? fmt::format("{}", static_cast<long long>(value))
                                                   : fmt::format("{:g}", value);
    case ParamType::kFloat:
      break;
  }
  return fmt::format("{}", value);
}

std::size_t Strategy::index_of(std::string_view param) const {
  for (std::size_t i = 0; i < params.size(); ++i)
    if (params[i].name == param) return i;
  std::vector<std::string> names;
  for (const auto& p : params) names.push_back(p.name);
  throw ParamError(
      fmt::format("strategy '{}' has no parameter '{}' (its parameters: {})", name, param, fmt::join(names, ", ")));
}

Exits Strategy::exits_of(std::span<const double> values) const {
  Exits exits;
  const std::size_t first = signal_param_count();
  for (std::size_t i = 0; i < kExitParamCount; ++i) exits.*exit_param_table()[i].field = values[first + i];
  return exits;
}

ExecutionOptions Strategy::options_for(const ExecutionOptions& options, std::span<const double> values) const {
  ExecutionOptions out = options;
  out.exits = exits_of(values);
  return out;
}

bool is_exit_param(std::string_view name) {
  return std::any_of(exit_param_table().begin(), exit_param_table().end(),
                     [&](const ExitParamInfo& p) { return p.name == name; });
}

void add_exit_params(const std::string& strategy, std::vector<ParamSpec>& params) {
  for (const ParamSpec& p : params)
    if (is_exit_param(p.name))
      throw ParamError(
          fmt::format("{}: parameter '{}' is one every strategy has (exits by price and time, "
                      "docs/SEMANTICS.md); give yours another name",
                      strategy, p.name));
  for (const ExitParamInfo& x : exit_param_table())
    params.push_back(
        {std::string(x.name), x.integer ? ParamType::kInt : ParamType::kFloat, 0, x.max, 0, std::string(x.help)});
}

BacktestResult run_strategy(const Bars& bars, const Strategy& strategy, const ParamValues& values,
                            const ExecutionOptions& options) {
  strategy.require_signals();
  std::vector<std::uint8_t> signals(bars.size());
  SeriesCache cache;
  strategy.signals(bars, values, signals, cache);
  return run_backtest(bars, signals, strategy.options_for(options, values));
}

ParamValues Strategy::defaults() const {
  ParamValues v;
  for (const auto& p : params) v.push_back(p.default_value);
  return v;
}

void Strategy::validate(const ParamValues& values) const {
  exits_of(values).validate();  // the exits' own rules (a stop below 1, risk)
  for (std::size_t i = 0; i < signal_param_count(); ++i) {
    const ParamSpec& p = params[i];
    const double v = values[i];
    if (!(v >= p.min && v <= p.max) || (p.type != ParamType::kFloat && v != std::floor(v)))
      throw ParamError(fmt::format("{}: {} = {} is out of range (allowed: {} {} to {})", name, p.name,
                                   format_param_value(p, v), param_type_name(p.type), format_param_value(p, p.min),
                                   format_param_value(p, p.max)));
  }
  if (constraint.holds && !constraint.holds(values))
    throw ParamError(fmt::format("{}: {}", name, constraint.explain(values)));
}

void Strategy::require_enough_bars(const Bars& bars, const ParamValues& values) const {
  const std::size_t first = first_signal_bar ? first_signal_bar(values) : 0;
  if (bars.size() <= first)
    throw DataError(fmt::format("{}: {} bars, but {} with {} signals from bar {} on: it needs at least {} bars",
                                bars.symbol, bars.size(), name, describe(values), first + 1, first + 1));
}

std::string Strategy::describe(const ParamValues& values) const {
  std::string out;
  for (std::size_t i = 0; i < params.size(); ++i) {
    if (i >= signal_param_count() && values[i] == 0) continue;  // an exit that is off
    out += fmt::format("{}{}={}", out.empty() ? "" : " ", params[i].name, format_param_value(params[i], values[i]));
  }
  return out;
}

double parse_param_value(const ParamSpec& spec, std::string_view text) {
  if (spec.type == ParamType::kBool) {  // any case, as YAML 1.1 and most configuration files read them
    std::string word(text);
    std::transform(word.begin(), word.end(), word.begin(), [](unsigned char c) { return std::tolower(c); });
    if (word == "true" || word == "1" || word == "yes" || word == "on") return 1.0;
    if (word == "false" || word == "0" || word == "no" || word == "off") return 0.0;
    throw ParamError(fmt::format("{} = '{}' is not a bool (allowed: true, false)", spec.name, text));
  }
  double v = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || ptr != text.data() + text.size() || text.empty() || !std::isfinite(v))
    throw ParamError(fmt::format("{} = '{}' is not a number", spec.name, text));
  if (spec.type == ParamType::kInt && v != std::floor(v))
    throw ParamError(fmt::format("{} = '{}' is not an integer", spec.name, text));
  return v;
}

ParamValues parse_params(const Strategy& s, const std::vector<std::pair<std::string, std::string>>& assignments) {
  ParamValues values = s.defaults();
  for (const auto& [key, text] : assignments) {
    const std::size_t i = s.index_of(key);
    values[i] = parse_param_value(s.params[i], text);
  }
  s.validate(values);
  return values;
}

const std::vector<Strategy>& strategies() {
  // The files of strategies/ (compiled in), then the model strategy, which reads a trained model.
  static const std::vector<Strategy> all = [] {
    std::vector<Strategy> out;
    for (const auto& file : builtin_strategy_files())
      out.push_back(*rules::compile(rules::parse_strategy_text(std::string(file.text), std::string(file.path))));
    std::vector<ParamSpec> model_params{{"threshold", ParamType::kFloat, 0, 1, 0, "margin around the neutral point"}};
    add_exit_params("model", model_params);
    Strategy model;
    model.name = "model";
    model.description =
        "A trained LSTM/GRU model's signals (`gtrader train`; the parameter model=FILE.pt names it): long while its "
        "output is above its neutral point (P(up) 0.5, or return 0) by more than `threshold`, short (with "
        "allow_short) while below by more than `threshold`, flat otherwise";
    model.code_version = 1;
    model.params = model_params;
    // The signals and the warm-up come from the model file (ml::resolve_strategy).
    model.model_parameter = "model";
    out.push_back(std::move(model));
    return out;
  }();
  return all;
}

void Strategy::require_signals() const {
  if (signals) return;
  throw ParamError({"param"}, fmt::format("the {} strategy needs a trained model: give param {}=FILE.pt (from "
                                          "`gtrader train`)",
                                          name, model_parameter));
}

const Strategy& find_strategy(std::string_view name) {
  for (const auto& s : strategies())
    if (s.name == name) return s;
  std::vector<std::string> names;
  for (const auto& s : strategies()) names.push_back(s.name);
  throw ParamError(fmt::format("unknown strategy '{}' (allowed: {})", name, fmt::join(names, ", ")));
}

}  // namespace gt
