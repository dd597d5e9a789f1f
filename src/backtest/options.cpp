// The execution options' one declaration and its one parser (backtest.hpp says who reads them).
#include <fmt/format.h>

#include <algorithm>

#include "gt/backtest.hpp"
#include "gt/error.hpp"
#include "gt/strategy.hpp"

namespace gt {

const std::array<OptionSpec, kExecutionOptionCount>& execution_option_specs() {
  static constexpr std::array<OptionSpec, kExecutionOptionCount> specs = {{
      {"fill", OptionKind::kChoice, "next_open", "next_open,close",
       "Fill price: next_open (the next bar's open, as backtrader) or close (the signal bar's close, as vectorbt)"},
      {"commission", OptionKind::kNumber, "0", "", "Commission, a fraction of traded notional per side"},
      {"slippage_bps", OptionKind::kNumber, "0", "", "Slippage in basis points against the trader, per side"},
      {"size", OptionKind::kNumber, "1", "", "Fraction of equity an entry commits, commission included"},
      {"allow_short", OptionKind::kFlag, "false", "", "Allow short positions"},
      {"cash", OptionKind::kNumber, "100000", "", "Starting equity"},
      {"periods_per_year", OptionKind::kOptionalNumber, "", "",
       "Bars per year for annualized metrics (inferred from the bar spacing when not given)"},
  }};
  return specs;
}

namespace {

const OptionSpec& spec_of(std::string_view name) {
  for (const auto& spec : execution_option_specs())
    if (spec.name == name) return spec;
  std::string allowed;
  for (const auto& spec : execution_option_specs())
    allowed += fmt::format("{}{}", allowed.empty() ? "" : ", ", spec.name);
  throw ParamError(fmt::format("unknown execution option '{}' (allowed: {})", name, allowed));
}

std::string choices_text(const OptionSpec& spec) {
  std::string out;
  for (const char c : spec.choices) {
    out += c;
    if (c == ',') out += ' ';
  }
  return out;
}

}  // namespace

void set_execution_option(ExecutionOptions& o, std::string_view name, std::string_view text) {
  const OptionSpec& spec = spec_of(name);
  if (spec.kind == OptionKind::kChoice) {
    if (name == "fill" && text == "next_open") {
      o.fill = Fill::kNextOpen;
    } else if (name == "fill" && text == "close") {
      o.fill = Fill::kClose;
    } else {
      throw ParamError({std::string(name)}, fmt::format("{} = '{}' (allowed: {})", name, text, choices_text(spec)));
    }
    return;
  }
  // Numbers and flags read as strategy parameters do: one parser for every typed value a user writes.
  const ParamSpec as_param{
      std::string(name), spec.kind == OptionKind::kFlag ? ParamType::kBool : ParamType::kFloat, 0, 0, 0, ""};
  double value = 0;
  try {
    value = parse_param_value(as_param, text);
  } catch (const ParamError& e) {
    throw ParamError({std::string(name)}, e.what());
  }
  if (name == "allow_short") o.allow_short = value != 0;
  if (name == "commission") o.commission = value;
  if (name == "slippage_bps") o.slippage_bps = value;
  if (name == "size") o.size = value;
  if (name == "cash") o.cash = value;
  if (name == "periods_per_year") o.periods_per_year = value;
}

std::string execution_option_text(const ExecutionOptions& o, std::string_view name) {
  spec_of(name);
  if (name == "fill") return o.fill == Fill::kClose ? "close" : "next_open";
  if (name == "allow_short") return o.allow_short ? "true" : "false";
  if (name == "commission") return fmt::format("{}", o.commission);
  if (name == "slippage_bps") return fmt::format("{}", o.slippage_bps);
  if (name == "size") return fmt::format("{}", o.size);
  if (name == "cash") return fmt::format("{}", o.cash);
  return o.periods_per_year ? fmt::format("{}", *o.periods_per_year) : std::string();
}

}  // namespace gt
