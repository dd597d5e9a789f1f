// The execution options shared by backtest and optimize, as flags made from the library's one
// declaration of them (gt::execution_option_specs).
#pragma once

#include <CLI/CLI.hpp>
#include <array>
#include <string>

#include "commands.hpp"
#include "gt/backtest.hpp"

namespace gtrader {

class ExecutionFlags {
 public:
  void add_to(CLI::App& cmd) {
    const auto& specs = gt::execution_option_specs();
    for (std::size_t i = 0; i < specs.size(); ++i) {
      const gt::OptionSpec& spec = specs[i];
      const std::string help =
          std::string(spec.help) + (spec.default_text.empty() ? "" : " (" + std::string(spec.default_text) + ")");
      if (spec.kind == gt::OptionKind::kFlag) {
        flags_[i] = cmd.add_flag(flag_of(spec.name), help);
      } else {
        flags_[i] = cmd.add_option(flag_of(spec.name), text_[i], help);
        if (spec.kind == gt::OptionKind::kChoice) flags_[i]->type_name(std::string(spec.choices));
      }
    }
  }

  // The options given, read by the library's parser and checked.
  gt::ExecutionOptions resolve() const {
    gt::ExecutionOptions options;
    const auto& specs = gt::execution_option_specs();
    for (std::size_t i = 0; i < specs.size(); ++i) {
      if (flags_[i]->count() == 0) continue;
      gt::set_execution_option(options, specs[i].name,
                               specs[i].kind == gt::OptionKind::kFlag ? std::string("true") : text_[i]);
    }
    options.validate();
    return options;
  }

 private:
  std::array<std::string, gt::kExecutionOptionCount> text_;
  std::array<CLI::Option*, gt::kExecutionOptionCount> flags_{};
};

}  // namespace gtrader
