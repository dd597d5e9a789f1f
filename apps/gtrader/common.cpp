#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "commands.hpp"
#include "gt/error.hpp"

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

void add_strategy_options(CLI::App& cmd, std::string& name, std::string& file) {
  auto* group = cmd.add_option_group("strategy", "Which strategy: one of");
  group->add_option("--strategy", name, "Strategy name (see `gtrader strategies`)");
  group->add_option("--strategy-file", file, "A strategy written as rules (YAML: params, entry, exit, ...)")
      ->check(CLI::ExistingFile);
  group->require_option(1);
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

std::string format_value(double v) {
  if (std::isnan(v)) return {};
  return fmt::format("{}", v);
}

}  // namespace gtrader
