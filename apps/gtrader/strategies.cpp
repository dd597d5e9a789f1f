#include <fmt/format.h>

#include "commands.hpp"
#include "gt/strategy.hpp"

namespace gtrader {

void add_strategies(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand("strategies", "List the strategies and their parameters");
  cmd->callback([] {
    for (const auto& s : gt::strategies()) {
      fmt::print("{}  (v{})\n  {}\n", s.name, s.code_version, s.description);
      for (const auto& p : s.params)
        fmt::print("    {:<14} {:<5} {:>8} .. {:<8} default {:<6} {}\n", p.name, gt::param_type_name(p.type),
                   gt::format_param_value(p, p.min), gt::format_param_value(p, p.max),
                   gt::format_param_value(p, p.default_value), p.help);
    }
  });
}

}  // namespace gtrader
