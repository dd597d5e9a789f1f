#include <fmt/format.h>
#include <fmt/ranges.h>

#include <memory>

#include "commands.hpp"
#include "gt/rules.hpp"
#include "gt/strategy.hpp"

namespace gtrader {
namespace {

void print_param(const gt::ParamSpec& p) {
  fmt::print("    {:<14} {:<5} {:>8} .. {:<8} default {:<6} {}\n", p.name, gt::param_type_name(p.type),
             gt::format_param_value(p, p.min), gt::format_param_value(p, p.max),
             gt::format_param_value(p, p.default_value), p.help);
}

// A strategy's own parameters; the exits every strategy has are listed once (print_exit_params).
void print_schema(const gt::Strategy& s) {
  fmt::print("{}  (v{})\n  {}\n", s.name, s.code_version, s.description);
  for (std::size_t i = 0; i < s.signal_param_count(); ++i) print_param(s.params[i]);
}

void print_exit_params(const gt::Strategy& s) {
  fmt::print(
      "\nEvery strategy also has these exits (--param or --grid; 0 = off; docs/SEMANTICS.md \"Exits by price "
      "and time\"):\n");
  for (std::size_t i = s.signal_param_count(); i < s.params.size(); ++i) print_param(s.params[i]);
  fmt::print("  stop_loss and trailing_stop are below 1; risk needs stop_loss.\n");
}

}  // namespace

void add_strategies(CLI::App& app) {
  auto file = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand("strategies", "List the strategies and their parameters, or a strategy file's");
  cmd->add_option("--strategy-file", *file, "Print this strategy file's schema and its rules as the engine reads them")
      ->check(CLI::ExistingFile);
  cmd->callback([file] {
    if (file->empty()) {
      for (const auto& s : gt::strategies()) print_schema(s);
      print_exit_params(gt::strategies().front());
      fmt::print("\nRules may call: {}\n", fmt::join(gt::rules::function_names(), ", "));
      return;
    }
    const gt::rules::RuleTexts texts = gt::rules::read_strategy_file(*file);
    const auto strategy = gt::rules::compile(texts);
    print_schema(*strategy);
    print_exit_params(*strategy);
    if (!texts.series.empty()) fmt::print("  series of one's own: {}\n", fmt::join(texts.series, ", "));
    fmt::print("  rules, as the engine reads them:\n");
    const std::string& canonical = strategy->signal_identity;  // the canonical text, from the one parse
    for (std::size_t start = 0; start < canonical.size();) {
      const std::size_t end = canonical.find('\n', start);
      const std::string line = canonical.substr(start, end - start);
      if (!line.starts_with("param:") && !line.starts_with("series:")) fmt::print("    {}\n", line);
      start = end == std::string::npos ? canonical.size() : end + 1;
    }
  });
}

}  // namespace gtrader
