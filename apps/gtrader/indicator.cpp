#include <fmt/format.h>

#include <cstdio>
#include <memory>

#include "commands.hpp"
#include "gt/indicators.hpp"

namespace gtrader {
namespace {

struct IndicatorCommand {
  std::string name;
  DataOptions data;
  gt::ind::IndicatorArgs args;
};

template <typename T>
void optional_option(CLI::App* cmd, const std::string& flag, std::optional<T>& target, const std::string& help) {
  cmd->add_option_function<T>(
      flag, [&target](const T& v) { target = v; }, help);
}

void run(const IndicatorCommand& c) {
  const std::vector<gt::Bars> all = c.data.load();
  const bool many = all.size() > 1;
  std::string out;
  bool header = false;
  for (const auto& bars : all) {
    const auto outputs = gt::ind::compute(c.name, bars, c.args);
    if (!header) {
      out += many ? "symbol,date" : "date";
      for (const auto& o : outputs) out += "," + o.name;
      out += '\n';
      header = true;
    }
    for (std::size_t i = 0; i < bars.size(); ++i) {
      if (many) out += gt::csv_field(bars.symbol) + ",";
      out += gt::format_time(bars.time[i], bars.intraday);
      for (const auto& o : outputs) {
        out += ',';
        out += gt::csv_number(o.values[i]);
      }
      out += '\n';
    }
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
}

}  // namespace

void add_indicator(CLI::App& app) {
  auto c = std::make_shared<IndicatorCommand>();
  CLI::App* cmd = app.add_subcommand("indicator", "Compute a TA-Lib indicator and print it as CSV");
  cmd->add_option("name", c->name, "SMA EMA WMA DEMA TEMA KAMA RSI MACD BBANDS ATR ADX STOCH ROC OBV")->required();
  c->data.add_to(*cmd);
  optional_option(cmd, "--period", c->args.period, "Time period (TA-Lib's default when omitted)");
  optional_option(cmd, "--fast", c->args.fast, "MACD fast period (12)");
  optional_option(cmd, "--slow", c->args.slow, "MACD slow period (26)");
  optional_option(cmd, "--signal", c->args.signal, "MACD signal period (9)");
  optional_option(cmd, "--nbdev", c->args.nbdev, "BBANDS deviations up and down (2)");
  optional_option(cmd, "--fastk", c->args.fastk, "STOCH fast %K period (5)");
  optional_option(cmd, "--slowk", c->args.slowk, "STOCH slow %K period (3)");
  optional_option(cmd, "--slowd", c->args.slowd, "STOCH slow %D period (3)");
  cmd->callback([c] { run(*c); });
}

}  // namespace gtrader
