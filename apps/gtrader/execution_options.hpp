// The SPEC §3 options shared by backtest and optimize.
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <optional>
#include <string>

#include "gt/backtest.hpp"

namespace gtrader {

struct ExecutionFlags {
  gt::ExecutionOptions options;
  std::string fill = "next_open";
  std::optional<double> periods_per_year;

  void add_to(CLI::App& cmd) {
    cmd.add_option("--fill", fill, "Fill price: next_open (default, as backtrader) or close (as vectorbt)")
        ->check(CLI::IsMember({"next_open", "close"}));
    cmd.add_option("--commission", options.commission, "Commission, fraction of traded notional (0)");
    cmd.add_option("--slippage-bps", options.slippage_bps, "Slippage in basis points against the trader (0)");
    cmd.add_option("--size", options.size, "Fraction of equity an entry commits, commission included (1)");
    cmd.add_flag("--allow-short", options.allow_short, "Allow short positions");
    cmd.add_option("--cash", options.cash, "Starting equity (100000)");
    cmd.add_option("--periods-per-year", periods_per_year, "Bars per year (inferred from the bar spacing)");
  }

  gt::ExecutionOptions resolve() {
    options.fill = fill == "close" ? gt::Fill::kClose : gt::Fill::kNextOpen;
    options.periods_per_year = periods_per_year;
    options.validate();
    return options;
  }
};

}  // namespace gtrader
