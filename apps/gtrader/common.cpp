#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "commands.hpp"
#include "gt/error.hpp"
#include "gt/ml.hpp"

namespace gtrader {

void DataOptions::add_to(CLI::App& cmd) {
  cmd.add_option("--data", inputs, "CSV file or folder of CSV files (repeatable)")->required();
  cmd.add_flag("--skip-bad-rows", skip_bad_rows, "Drop rows that fail validation and report how many");
}

std::vector<gt::Bars> DataOptions::load() const {
  gt::LoadOptions options;
  options.skip_bad_rows = skip_bad_rows;
  std::vector<gt::Bars> all = gt::load_many(inputs, options);
  constexpr std::size_t kShown = 5;
  for (const auto& bars : all) {
    if (!bars.skipped_rows) continue;
    fmt::print(stderr, "gtrader: warning: {}: skipped {} bad rows\n", bars.source, bars.skipped_rows);
    for (std::size_t i = 0; i < std::min(kShown, bars.skipped.size()); ++i)
      fmt::print(stderr, "  {}\n", bars.skipped[i]);
    if (bars.skipped.size() > kShown) fmt::print(stderr, "  ... and {} more\n", bars.skipped.size() - kShown);
  }
  return all;
}

void PortfolioFlags::add_to(CLI::App& cmd) {
  cmd.add_flag("--portfolio", portfolio,
               "Every --data symbol in one cash account (docs/SEMANTICS.md \"Portfolios\"), not each on its own");
  cmd.add_option("--weights", weights, "With --portfolio: each symbol's share of the equity, in order (1/k each)")
      ->delimiter(',');
  cmd.add_option("--rebalance", rebalance,
                 "With --portfolio: reset every position to its share at every N-th timestamp's close (0: never)");
}

std::optional<gt::PortfolioOptions> PortfolioFlags::resolve() const {
  if (!portfolio) {
    if (!weights.empty() || rebalance > 0)
      throw gt::ParamError("--weights and --rebalance allocate a portfolio's cash: give --portfolio too");
    return std::nullopt;
  }
  return gt::PortfolioOptions{weights, rebalance};
}

std::vector<std::pair<std::string, std::string>> split_assignments(const std::vector<std::string>& items,
                                                                   std::string_view flag) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& item : items) {
    const auto eq = item.find('=');
    if (eq == std::string::npos || eq == 0) throw gt::ParamError(fmt::format("{} '{}' is not NAME=VALUE", flag, item));
    for (const auto& [name, value] : out)
      if (name == item.substr(0, eq))
        throw gt::ParamError(
            fmt::format("{} {} is given twice ({} and {}): give it once", flag, name, value, item.substr(eq + 1)));
    out.emplace_back(item.substr(0, eq), item.substr(eq + 1));
  }
  return out;
}

void StrategyChoice::add_to(CLI::App& cmd, bool signals_file) {
  auto* group = cmd.add_option_group("strategy", "Which strategy: --strategy, --strategy-file, or --entry and --exit");
  group->add_option("--strategy", name, "Strategy name (see `gtrader strategies`)");
  group->add_option("--strategy-file", file, "A strategy written as rules (YAML: params, entry, exit, ...)")
      ->check(CLI::ExistingFile);
  auto* entry_flag = group->add_option("--entry", entry, "Inline rules: the entry rule (with --exit)");
  auto* exit_flag = group->add_option("--exit", exit, "Inline rules: the exit rule (with --entry)");
  group->add_option("--short-entry", short_entry, "Inline rules: the short entry rule (with --short-exit)")
      ->needs(entry_flag);
  group->add_option("--short-exit", short_exit, "Inline rules: the short exit rule (with --short-entry)")
      ->needs(entry_flag);
  entry_flag->needs(exit_flag);
  exit_flag->needs(entry_flag);
  if (signals_file)
    group
        ->add_option("--signals", signals,
                     "A file of signals, one row per bar: time, entry, exit[, short_entry, short_exit] (0/1)")
        ->check(CLI::ExistingFile);
  group->require_option(1, 4);
}

void StrategyChoice::require_one() const {
  if (!name.empty() + !file.empty() + !entry.empty() + !signals.empty() != 1)
    throw gt::ParamError(
        fmt::format("give one strategy: --strategy NAME, --strategy-file FILE, or --entry EXPR --exit "
                    "EXPR{}",
                    signals.empty() ? "" : ", or --signals FILE"));
}

gt::Strategy StrategyChoice::strategy(std::vector<std::pair<std::string, std::string>>& params) const {
  return is_rules() ? *gt::rules::compile(rules(params, {})) : gt::ml::resolve_strategy(name, params);
}

gt::rules::RuleTexts StrategyChoice::rules(const std::vector<std::pair<std::string, std::string>>& params,
                                           const std::vector<std::string>& grid) const {
  if (!file.empty()) return gt::rules::read_strategy_file(file);
  gt::rules::RuleTexts r;
  r.name = "inline";
  r.source = "--entry/--exit";
  r.entry = entry;
  r.exit = exit;
  r.short_entry = short_entry;
  r.short_exit = short_exit;
  // Each parameter's values as written: --param's value, a --grid's range ends and step or list.
  std::vector<std::pair<std::string, std::vector<std::string>>> values;
  const auto add = [&](const std::string& param, const std::string& text, char separator) {
    auto it = std::find_if(values.begin(), values.end(), [&](const auto& v) { return v.first == param; });
    if (it == values.end()) it = values.insert(values.end(), {param, {}});
    for (std::size_t start = 0;;) {
      const std::size_t end = text.find(separator, start);
      it->second.push_back(text.substr(start, end == std::string::npos ? std::string::npos : end - start));
      if (end == std::string::npos) break;
      start = end + 1;
    }
  };
  for (const auto& [param, value] : params) add(param, value, ',');
  for (const auto& [param, spec] : split_assignments(grid, "--grid"))
    add(param, spec, spec.find(',') != std::string::npos ? ',' : ':');
  for (const auto& [param, texts] : values) r.params.push_back(gt::rules::inferred_param(param, texts));
  return r;
}

CLI::Validator output_file() {
  return CLI::Validator(
      [](std::string& path) { return path.empty() ? std::string("an empty path: give a file name") : ""; }, "FILE");
}

std::string flag_of(std::string_view parameter) {
  if (parameter == "fixed") return "--param";  // the grid's fixed values are --param NAME=VALUE here
  std::string flag = "--" + std::string(parameter);
  std::replace(flag.begin(), flag.end(), '_', '-');
  return flag;
}

std::string phrase_for_cli(const gt::Error& e) {
  return gt::phrase_error(e, [](const std::string& name) { return flag_of(name); });
}

}  // namespace gtrader
