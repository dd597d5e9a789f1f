#include <fmt/format.h>

#include <cmath>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "execution_options.hpp"
#include "gt/atomic_file.hpp"
#include "gt/error.hpp"
#include "gt/ml.hpp"
#include "gt/report.hpp"
#include "gt/rules.hpp"
#include "gt/signal_arrays.hpp"
#include "gt/strategy.hpp"
#include "gt/study.hpp"

namespace gtrader {
namespace {

struct BacktestCommand {
  DataOptions data;
  ExecutionFlags exec;
  StrategyChoice strategy;
  std::vector<std::string> params;
  std::string trades_path, equity_path, report_path, report_png;
  bool json = false;
};

std::string trades_csv(const std::vector<std::pair<const gt::Bars*, gt::BacktestResult>>& runs) {
  const bool many = runs.size() > 1;
  std::string out = many ? "symbol," : "";
  out += "entry_time,exit_time,side,entry_price,exit_price,units,pnl,return,bars_held,exit_reason\n";
  for (const auto& [bars, r] : runs) {
    const gt::TradeColumns t = gt::trade_columns(r.trades);
    const auto time_at = [&](double bar) {
      return std::isnan(bar) ? std::string()
                             : gt::format_time(bars->time[static_cast<std::size_t>(bar)], bars->intraday);
    };
    for (std::size_t i = 0; i < t.size(); ++i) {
      if (many) out += gt::csv_field(bars->symbol) + ",";
      out += fmt::format("{},{},{},{},{},{},{},{},{},{}\n", time_at(t.entry_bar[i]), time_at(t.exit_bar[i]),
                         t.side[i] > 0 ? "long" : "short", format_value(t.entry_price[i]),
                         format_value(t.exit_price[i]), format_value(t.units[i]), format_value(t.pnl[i]),
                         format_value(t.ret[i]), static_cast<std::size_t>(t.bars_held[i]), t.exit_reason[i]);
    }
  }
  return out;
}

std::string equity_csv(const std::vector<std::pair<const gt::Bars*, gt::BacktestResult>>& runs, double cash) {
  const bool many = runs.size() > 1;
  std::string out = many ? "symbol,time,equity,position,drawdown\n" : "time,equity,position,drawdown\n";
  for (const auto& [bars, r] : runs) {
    double peak = cash;  // the starting equity is the first peak (docs/SEMANTICS.md "Metrics")
    for (std::size_t t = 0; t < r.equity.size(); ++t) {
      peak = std::max(peak, r.equity[t]);
      if (many) out += gt::csv_field(bars->symbol) + ",";
      out += fmt::format("{},{},{},{}\n", gt::format_time(bars->time[t], bars->intraday), format_value(r.equity[t]),
                         format_value(r.position[t]), format_value(1.0 - r.equity[t] / peak));
    }
  }
  return out;
}

// A file of signals as a strategy without parameters, so that every output works as for rules.
gt::Strategy signals_strategy(const std::string& path) {
  gt::Strategy s{};
  s.name = "signals";
  s.description = "signals from " + path;
  s.code_version = 1;
  gt::add_exit_params(s.name, s.params);  // exits by price and time apply to any signals
  s.signals = [path](const gt::Bars& bars, const gt::ParamValues&, std::span<std::uint8_t> out, gt::SeriesCache&) {
    const std::vector<std::uint8_t> events = gt::read_signals_csv(path, bars);
    std::copy(events.begin(), events.end(), out.begin());
  };
  return s;
}

void run(BacktestCommand& c) {
  auto assignments = split_assignments(c.params);
  c.strategy.require_one();
  const gt::Strategy strategy = !c.strategy.signals.empty() ? signals_strategy(c.strategy.signals)
                                : c.strategy.is_rules()     ? *gt::rules::compile(c.strategy.rules(assignments, {}))
                                                            : gt::ml::resolve_strategy(c.strategy.name, assignments);
  const gt::ParamValues params = gt::parse_params(strategy, assignments);
  const gt::ExecutionOptions options = c.exec.resolve();
  // The charts' library is checked before any work, so a missing one fails fast.
  const std::string chart_js = c.report_path.empty() ? std::string() : gt::report::chart_library();
  if (!c.report_png.empty()) {
    if (c.report_path.empty()) throw gt::ParamError("--report-png draws the --report page: give --report too");
    (void)gt::report::chromium_path();
  }
  for (const std::string* path : {&c.trades_path, &c.equity_path, &c.report_path, &c.report_png})
    if (!path->empty()) gt::check_output_path(*path);  // every output before any work
  const auto all = c.data.load();
  std::vector<std::pair<const gt::Bars*, gt::BacktestResult>> runs;
  for (const auto& bars : all) strategy.require_enough_bars(bars, params);
  for (const auto& bars : all) runs.emplace_back(&bars, gt::run_strategy(bars, strategy, params, options));
  if (!c.trades_path.empty()) gt::write_file_atomically(c.trades_path, trades_csv(runs));
  if (!c.equity_path.empty()) gt::write_file_atomically(c.equity_path, equity_csv(runs, options.cash));
  if (!c.report_path.empty()) {
    std::vector<gt::report::BacktestReportInput> inputs;
    for (const auto& [bars, r] : runs)
      inputs.push_back({bars, &r, strategy.name, strategy.describe(params), options.cash});
    gt::write_file_atomically(c.report_path, gt::report::backtest_report_html(inputs, chart_js));
    fmt::print(stderr, "report written to {}\n", c.report_path);
    if (!c.report_png.empty()) {
      gt::report::render_png(c.report_path, c.report_png);
      fmt::print(stderr, "picture written to {}\n", c.report_png);
    }
  }
  if (c.json) {
    nlohmann::ordered_json out = nlohmann::ordered_json::array();
    for (const auto& [bars, r] : runs) {
      nlohmann::ordered_json j = gt::metrics_json(r.metrics);
      j["symbol"] = bars->symbol;
      j["strategy"] = strategy.name;
      j["parameters"] = gt::params_json(strategy, params);
      j["bars"] = bars->size();
      j["ruined"] = r.ruined_at.has_value();
      j["periods_per_year"] = gt::resolve_periods_per_year(*bars, options);
      out.push_back(j);
    }
    fmt::print("{}\n", gt::json_text(runs.size() == 1 ? out[0] : out));
    return;
  }
  for (const auto& [bars, r] : runs) {
    const auto& m = r.metrics;
    fmt::print("{} | {} {} | {} bars, {} to {}\n", bars->symbol, strategy.name, strategy.describe(params), bars->size(),
               gt::format_time(bars->time.front(), bars->intraday), gt::format_time(bars->time.back(), bars->intraday));
    fmt::print("  total return {:>10.2f} %     CAGR          {:>8.2f} %\n", 100 * m.total_return, 100 * m.cagr);
    fmt::print("  sharpe       {:>10.3f}       sortino       {:>8.3f}\n", m.sharpe, m.sortino);
    fmt::print("  max drawdown {:>10.2f} %     calmar        {:>8.3f}\n", 100 * m.max_drawdown, m.calmar);
    fmt::print("  trades       {:>10}       win rate      {:>8.2f} %\n", m.trades, 100 * m.win_rate);
    fmt::print("  profit factor{:>10.3f}       exposure      {:>8.2f} %\n", m.profit_factor, 100 * m.exposure);
    fmt::print("  avg trade    {:>10.3f} %     final equity  {:>12.2f}\n", 100 * m.avg_trade_return, m.final_equity);
    // Why the closed trades closed, when anything but the rules closed some.
    std::map<std::string_view, int> reasons;
    for (const gt::Trade& t : r.trades)
      if (!t.open) ++reasons[gt::exit_reason_name(t.exit_reason)];
    if (!reasons.empty() && !(reasons.size() == 1 && reasons.begin()->first == "rule")) {
      std::string text;
      for (const auto& [reason, count] : reasons)
        text += fmt::format("{}{} {}", text.empty() ? "" : ", ", reason, count);
      fmt::print("  exits        {}\n", text);
    }
    if (r.ruined_at)
      fmt::print("  RUINED: the equity reached 0 at {}; the position was closed there and nothing more traded\n",
                 gt::format_time(bars->time[*r.ruined_at], bars->intraday));
  }
}

}  // namespace

void add_backtest(CLI::App& app) {
  auto c = std::make_shared<BacktestCommand>();
  CLI::App* cmd = app.add_subcommand("backtest", "Backtest one parameter set of a strategy");
  c->data.add_to(*cmd);
  c->strategy.add_to(*cmd, true);
  cmd->add_option("--param", c->params,
                  "NAME=VALUE (repeatable); defaults from the strategy's schema; model=FILE.pt for --strategy model");
  c->exec.add_to(*cmd);
  cmd->add_option("--trades", c->trades_path, "Write the trade list to this CSV file")->check(output_file());
  cmd->add_option("--equity", c->equity_path, "Write the equity curve to this CSV file")->check(output_file());
  cmd->add_option("--report", c->report_path, "Write an HTML report (price and fills, equity, drawdown) to this file")
      ->check(output_file());
  cmd->add_option("--report-png", c->report_png, "Also draw the report into this PNG file (needs chromium)")
      ->check(output_file());
  cmd->add_flag("--json", c->json, "Print the metrics as JSON");
  cmd->callback([c] { run(*c); });
}

}  // namespace gtrader
